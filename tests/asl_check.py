"""Independent validation of exported definitions: cfn-lint's Step Functions schema (rule E3601 and friends).

``cfn_lint_state_machine(definition)`` embeds the definition, as an object, in a
minimal CloudFormation template (one ``AWS::StepFunctions::StateMachine`` with a
``RoleArn``) and lints it through cfn-lint's Python API. It returns one string per
error or warning (informational matches are dropped), each starting with the rule
id (``E3601: ...``, ``W...: ...``) so tests can decide what to tolerate.

``aws_asl_problems(definitions)`` runs AWS's own ASL validator, the npm package
``amazon-states-language-service`` the AWS Toolkit for VS Code uses (pinned by
``tests/asl_validator/package-lock.json``, installed by ``make asl-validator``), over
several definitions in one Node process.

``assert_valid(definition)`` is what the export tests use: our own validator
(``exporters.validation``), cfn-lint and AWS's ASL validator must all find nothing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

ASL_VALIDATOR = Path(__file__).resolve().parent / "asl_validator"
ROLE_ARN = "arn:aws:iam::123456789012:role/StepFunctionsExecutionRole"
REGION = "us-east-1"


def template_for(definition: dict[str, Any]) -> dict[str, Any]:
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "Exported state machine (lint harness)",
        "Resources": {
            "StateMachine": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {"Definition": definition, "RoleArn": ROLE_ARN},
            }
        },
    }


@lru_cache(maxsize=1)
def _runner():
    """cfn-lint's default rule set and config, built once (about a second) and reused."""
    from cfnlint.api import ManualArgs
    from cfnlint.config import ConfigMixIn
    from cfnlint.runner import Runner

    return Runner(ConfigMixIn(**ManualArgs(regions=[REGION])))


def cfn_lint_state_machine(definition: dict[str, Any]) -> list[str]:
    """cfn-lint errors and warnings for ``definition`` (empty: clean). Informational matches are ignored.

    Same as ``cfnlint.api.lint(template, config=ManualArgs(regions=[REGION]))``, with the
    rule collection loaded once per process instead of once per call.
    """
    from cfnlint.decode.decode import decode_str
    from cfnlint.runner import run_template_by_data

    template, errors = decode_str(json.dumps(template_for(definition), indent=1))
    if errors:
        return [f"{getattr(e.rule, 'id', '')}: {e.message}" for e in errors]
    runner = _runner()
    matches = run_template_by_data(template, runner.config, runner.rules)
    out = []
    for match in matches:
        rule_id = str(getattr(match.rule, "id", "") or "")
        if rule_id.startswith("I"):
            continue
        out.append(f"{rule_id}: {match.message} (template line {match.linenumber})")
    return out


def aws_asl_problems(definitions: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """AWS's ASL validator on each named definition: name -> problems (errors and warnings; empty: valid)."""
    node = shutil.which("node")
    if node is None or not (ASL_VALIDATOR / "node_modules" / "amazon-states-language-service").is_dir():
        raise RuntimeError("AWS's ASL validator is not installed: run `make asl-validator` (Node.js and npm needed)")
    request = [{"name": name, "definition": json.dumps(d, indent=2)} for name, d in definitions.items()]
    done = subprocess.run(
        [node, str(ASL_VALIDATOR / "validate.js")],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the ASL validator failed: {done.stderr.strip()}")
    return {
        r["name"]: [f"line {p['line']}: {p['message']}" for p in r["problems"] if p["severity"] in (1, 2)]
        for r in json.loads(done.stdout)
    }


def assert_valid(definition: dict[str, Any]) -> None:
    """Every validator accepts ``definition``: ours, cfn-lint (errors and warnings) and AWS's ASL validator."""
    from exporters.validation import validate_definition

    ours = validate_definition(definition)
    assert ours == [], "exporters.validation found problems:\n" + "\n".join(ours)
    lint_problems = cfn_lint_state_machine(definition)
    assert lint_problems == [], "cfn-lint found problems:\n" + "\n".join(lint_problems)
    aws = aws_asl_problems({"definition": definition})["definition"]
    assert aws == [], "AWS's ASL validator found problems:\n" + "\n".join(aws)
