"""Independent validation of exported definitions: cfn-lint's Step Functions schema (rule E3601 and friends).

``cfn_lint_state_machine(definition)`` embeds the definition, as an object, in a
minimal CloudFormation template (one ``AWS::StepFunctions::StateMachine`` with a
``RoleArn``) and lints it through cfn-lint's Python API. It returns one string per
error or warning (informational matches are dropped), each starting with the rule
id (``E3601: ...``, ``W...: ...``) so tests can decide what to tolerate.

``assert_valid(definition)`` is what the export tests use: our own validator
(``exporters.validate``) and cfn-lint must both find nothing.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

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


def assert_valid(definition: dict[str, Any]) -> None:
    """Both validators accept ``definition``: ours (exporters.validate) and cfn-lint (errors and warnings)."""
    from exporters.validate import validate_definition

    ours = validate_definition(definition)
    assert ours == [], "exporters.validate found problems:\n" + "\n".join(ours)
    lint_problems = cfn_lint_state_machine(definition)
    assert lint_problems == [], "cfn-lint found problems:\n" + "\n".join(lint_problems)
