"""The CloudFormation template written next to the definition (exporters.cloudformation).

Every template built here passes cfn-lint (Python API, errors and warnings; no
exceptions are configured). The definition in the template, once CloudFormation has
applied DefinitionSubstitutions with the parameters' defaults, must be the exported
definition exactly; the schedule's constant input must be the DAG's param defaults.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from functools import lru_cache
from pathlib import Path

import pytest

from exporters import cloudformation, concurrency
from exporters.api import export_dag_object
from exporters.aws_clients import IAM_ROLE_ARN_RE
from exporters.cloudformation import (
    INLINE_CODE_LIMIT,
    TEMPLATE_FILE,
    TemplateError,
    build_template,
    template_json,
    write_template,
)
from exporters.compiler import param_defaults
from exporters.loader import load_dag
from exporters.schedule import ScheduleError
from tests.conftest import ROOT as REPO

CFN_DAGS = Path(__file__).resolve().parent / "export_dags" / "cfn_dags" / "cfn_schedules.py"
NOW = dt.datetime(2026, 11, 25, tzinfo=dt.UTC)  # after model_retraining's start_date (2026-01-01)
REGION = "us-east-1"


# ---------------------------------------------------------------------------
# cfn-lint
# ---------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _runner():
    """cfn-lint's default rules and config, built once per process (as cfnlint.api.lint does per call)."""
    from cfnlint.api import ManualArgs
    from cfnlint.config import ConfigMixIn
    from cfnlint.runner import Runner

    return Runner(ConfigMixIn(**ManualArgs(regions=[REGION])))


def cfn_lint(template: dict) -> list[str]:
    """cfn-lint errors and warnings (informational matches dropped) for the template as written to disk."""
    from cfnlint.decode.decode import decode_str
    from cfnlint.runner import run_template_by_data

    decoded, errors = decode_str(template_json(template))
    if errors:
        return [f"{e.rule.id}: {e.message}" for e in errors]
    runner = _runner()
    return [
        f"{m.rule.id}: {m.message} (line {m.linenumber})"
        for m in run_template_by_data(decoded, runner.config, runner.rules)
        if not str(m.rule.id).startswith("I")
    ]


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def retraining():
    dag = load_dag("model_retraining", REPO / "dags")
    return dag, export_dag_object(dag)


@pytest.fixture(scope="module")
def cfn_dags():
    return {dag_id: _load(dag_id) for dag_id in ("cfn_timedelta", "cfn_unscheduled", "cfn_paris", "cfn_assets")}


def _load(dag_id: str):
    dag = load_dag(dag_id, CFN_DAGS)
    return dag, export_dag_object(dag)


def build(loaded, **options) -> dict:
    dag, result = loaded
    options.setdefault("now", NOW)
    return build_template(result, dag, **options)


def substituted_definition(template: dict) -> dict:
    """What Step Functions receives: CloudFormation's DefinitionSubstitutions applied (parameter defaults)."""
    props = template["Resources"]["StateMachine"]["Properties"]
    text = json.dumps(props["Definition"])
    for key, value in props.get("DefinitionSubstitutions", {}).items():
        if key == "RunSlotTableName":  # the table the stack creates (or RunSlotTable names): the export's default name
            assert value == cloudformation.RUN_SLOT_TABLE_NAME
            text = text.replace("${" + key + "}", concurrency.DEFAULT_TABLE)
            continue
        assert value == {"Ref": key}
        text = text.replace("${" + key + "}", template["Parameters"][key]["Default"])
    assert "${" not in text
    return json.loads(text)


def substituted_input(template: dict, target: dict) -> dict:
    """The schedule's constant input as CloudFormation's Fn::Sub renders it with the parameters' defaults."""
    value = target["Input"]
    if isinstance(value, str):
        return json.loads(value)
    text = value["Fn::Sub"]
    for name, spec in template.get("Parameters", {}).items():
        text = text.replace("${" + name + "}", spec["Default"])
    assert "${" not in text.replace("${!", "")
    return json.loads(text.replace("${!", "${"))


# ---------------------------------------------------------------------------
# cfn-lint on every template shape
# ---------------------------------------------------------------------------

LINT_CASES = {
    "default": ("retraining", {}),
    "events-rule": ("retraining", {"schedule_kind": "events-rule"}),
    "lambda-and-glue": ("retraining", {"include_lambda": True, "include_glue": True}),
    "logging-all-and-tracing": ("retraining", {"logging_level": "ALL", "tracing": True}),
    "logging-off": ("retraining", {"logging_level": "OFF"}),
    "no-schedule": ("retraining", {"schedule_kind": "none"}),
    "future-start": ("retraining", {"now": dt.datetime(2025, 6, 1, tzinfo=dt.UTC)}),
    "timedelta-dag": ("cfn_timedelta", {"include_lambda": True, "include_glue": True}),
    "unscheduled-dag": ("cfn_unscheduled", {"include_lambda": False}),
    "paris-cron-dag": ("cfn_paris", {"include_lambda": True, "logging_level": "FATAL"}),
    "asset-dag-allowed": ("cfn_assets", {"allow_unsupported_schedule": True}),
}


@pytest.mark.parametrize("case", sorted(LINT_CASES))
def test_template_passes_cfn_lint(case, retraining, cfn_dags):
    dag_id, options = LINT_CASES[case]
    loaded = retraining if dag_id == "retraining" else cfn_dags[dag_id]
    template = build(loaded, **options)
    assert cfn_lint(template) == []


# ---------------------------------------------------------------------------
# The state machine and its parameters
# ---------------------------------------------------------------------------


def test_definition_after_substitution_is_the_exported_definition(retraining, cfn_dags):
    for loaded in [retraining, *cfn_dags.values()]:
        template = build(loaded, allow_unsupported_schedule=True)
        assert substituted_definition(template) == loaded[1].definition


def test_account_specific_params_are_template_parameters_with_dag_defaults(retraining):
    dag, _ = retraining
    template = build(retraining)
    parameters = template["Parameters"]
    defaults = param_defaults(dag)
    expected = {
        "SagemakerRoleArn": "sagemaker_role_arn",
        "GlueJobName": "glue_job_name",
        "MetricFunctionName": "metric_function_name",
        "TrainingJobPrefix": "training_job_prefix",
        "ModelPrefix": "model_prefix",
        "EndpointName": "endpoint_name",
        "TrainingImage": "training_image",
    }
    for logical, name in expected.items():
        assert parameters[logical]["Type"] == "String"
        assert parameters[logical]["Default"] == defaults[name], logical
    # Numbers and objects stay literals in the definition (and in the schedule input).
    defaults_state = template["Resources"]["StateMachine"]["Properties"]["Definition"]["States"]["Param defaults"]
    literal = defaults_state["Parameters"]["param_defaults"]
    assert literal["threshold"] == 0.1 and literal["hyperparameters"] == defaults["hyperparameters"]
    assert literal["sagemaker_role_arn"] == "${SagemakerRoleArn}"
    # The param's own schema carries over.
    assert parameters["EndpointName"]["MaxLength"] == 63
    assert parameters["GlueJobName"]["MinLength"] == 1
    # An S3 URI param is carried by its bucket and its key, each constrained on its own, so IAM can be
    # scoped to the key prefix; the definition and the schedule get the URI put back together.
    for logical, name in {"S3Source": "s3_source", "S3Dest": "s3_dest", "TrainingOutput": "training_output"}.items():
        bucket, key = parameters[f"{logical}Bucket"], parameters[f"{logical}Key"]
        assert f"s3://{bucket['Default']}/{key['Default']}" == defaults[name]
        assert literal[name] == f"s3://${{{logical}Bucket}}/${{{logical}Key}}"
        assert logical not in parameters
    for key, hostile in [
        ("S3DestKey", "../x/"),
        ("S3DestKey", "a//b/"),
        ("S3DestKey", "processed"),  # a prefix param keeps its trailing "/"
        ("S3DestKey", ""),  # the whole bucket
        ("S3SourceKey", "raw/*"),
        ("S3SourceBucket", "a..b"),
        ("S3SourceBucket", "192.168.0.1"),
    ]:
        assert not re.fullmatch(parameters[key]["AllowedPattern"], hostile), (key, hostile)
    assert re.fullmatch(parameters["S3SourceKey"]["AllowedPattern"], "raw/2026/churn.csv")


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:iam::123456789012:role/churn",
        "arn:aws:iam::123456789012:role/service-role/team/churn-sfn",
        "arn:aws-cn:iam::123456789012:role/x+y=z,a.b@c_d-e",
        "arn:aws:iam::123456789012:role/" + "r" * 65,
        "arn:aws:iam::123456789012:role/",
        "arn:aws:iam::123456789012:user/churn",
        "arn:aws:iam::12345:role/churn",
        "arn:aws:iam::123456789012:role/*",
    ],
)
def test_role_param_accepts_exactly_the_role_arns_deploy_accepts(retraining, arn):
    pattern = build(retraining)["Parameters"]["SagemakerRoleArn"]["AllowedPattern"]
    assert bool(re.fullmatch(pattern, arn)) == bool(IAM_ROLE_ARN_RE.match(arn)), arn


def test_state_machine_properties(retraining):
    props = build(retraining, logging_level="ALL", tracing=True)["Resources"]["StateMachine"]["Properties"]
    assert props["StateMachineType"] == "STANDARD"
    assert props["RoleArn"] == {"Fn::GetAtt": ["StateMachineRole", "Arn"]}
    assert props["TracingConfiguration"] == {"Enabled": True}
    logging = props["LoggingConfiguration"]
    assert logging["Level"] == "ALL" and logging["IncludeExecutionData"] is False
    assert logging["Destinations"] == [
        {"CloudWatchLogsLogGroup": {"LogGroupArn": {"Fn::GetAtt": ["StateMachineLogGroup", "Arn"]}}}
    ]


def test_logging_defaults_to_error_and_can_be_off(retraining):
    default = build(retraining)["Resources"]
    assert default["StateMachine"]["Properties"]["LoggingConfiguration"]["Level"] == "ERROR"
    assert "StateMachineLogGroup" in default
    assert "TracingConfiguration" not in default["StateMachine"]["Properties"]
    off = build(retraining, logging_level="OFF")["Resources"]
    assert "LoggingConfiguration" not in off["StateMachine"]["Properties"] and "StateMachineLogGroup" not in off
    with pytest.raises(TemplateError):
        build(retraining, logging_level="LOUD")
    with pytest.raises(TemplateError):
        build(retraining, schedule_kind="cron-job")


# ---------------------------------------------------------------------------
# The schedule
# ---------------------------------------------------------------------------


def test_default_schedule_is_an_eventbridge_scheduler_schedule(retraining):
    dag, _ = retraining
    template = build(retraining)
    schedule = template["Resources"]["Schedule"]
    assert schedule["Type"] == "AWS::Scheduler::Schedule"
    props = schedule["Properties"]
    assert props["ScheduleExpression"] == "cron(0 * * * ? *)"
    assert props["ScheduleExpressionTimezone"] == "UTC"
    assert props["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert props["State"] == "ENABLED"
    assert props["Target"]["Arn"] == {"Ref": "StateMachine"}
    assert props["Target"]["RoleArn"] == {"Fn::GetAtt": ["ScheduleRole", "Arn"]}
    # The DAG's param defaults as constant input, account-specific ones from the template parameters.
    assert substituted_input(template, props["Target"]) == param_defaults(dag)
    # start_date 2026-01-01 has passed: EventBridge rejects a StartDate older than 5 minutes; a cron loses nothing.
    assert "StartDate" not in props and "EndDate" not in props
    assert "ScheduleRule" not in template["Resources"]


def test_future_start_date_becomes_start_date(retraining):
    props = build(retraining, now=dt.datetime(2025, 6, 1, tzinfo=dt.UTC))["Resources"]["Schedule"]["Properties"]
    assert props["StartDate"] == "2026-01-01T00:00:00Z"


def test_timedelta_dag_gets_a_rate_with_start_and_end_dates(cfn_dags):
    dag, _ = cfn_dags["cfn_timedelta"]
    template = build(cfn_dags["cfn_timedelta"])
    props = template["Resources"]["Schedule"]["Properties"]
    assert props["ScheduleExpression"] == "rate(90 minutes)"
    assert "ScheduleExpressionTimezone" not in props  # rates have no timezone
    assert props["StartDate"] == "2031-01-01T00:00:00Z"
    # 364 days is a whole number of 90 minutes: a run falls on end_date itself, which Airflow runs;
    # so EndDate is one second later.
    assert props["EndDate"] == "2031-12-31T00:00:01Z"
    assert substituted_input(template, props["Target"]) == param_defaults(dag)


def test_dag_timezone_reaches_the_schedule(cfn_dags):
    dag, result = cfn_dags["cfn_paris"]
    template = build(cfn_dags["cfn_paris"])
    props = template["Resources"]["Schedule"]["Properties"]
    assert props["ScheduleExpression"] == "cron(30 2 ? * 2-6 *)"
    assert props["ScheduleExpressionTimezone"] == "Europe/Paris"
    assert props["Target"]["Input"] == "{}"  # no params: a plain string, no Fn::Sub
    assert any("daylight saving time" in w for w in result.warnings)
    assert template["Metadata"]["AirflowExport"]["Warnings"]


def test_no_schedule_resources_without_a_schedule(cfn_dags):
    template = build(cfn_dags["cfn_unscheduled"])
    assert not {"Schedule", "ScheduleRole", "ScheduleRule", "ScheduleRuleRole"} & set(template["Resources"])
    assert template["Metadata"]["AirflowExport"]["Schedule"] == "none"


def test_unsupported_schedule_is_an_error_unless_allowed(cfn_dags):
    dag, result = cfn_dags["cfn_assets"]
    with pytest.raises(ScheduleError) as caught:
        build(cfn_dags["cfn_assets"])
    assert "cfn_assets" in str(caught.value) and "asset" in str(caught.value)
    template = build(cfn_dags["cfn_assets"], allow_unsupported_schedule=True)
    assert "Schedule" not in template["Resources"]
    assert any("WITHOUT a schedule" in w for w in result.warnings)


def test_events_rule_flag_emits_a_classic_rule_in_utc(retraining):
    dag, _ = retraining
    template = build(retraining, schedule_kind="events-rule")
    assert "Schedule" not in template["Resources"]
    rule = template["Resources"]["ScheduleRule"]
    assert rule["Type"] == "AWS::Events::Rule"
    props = rule["Properties"]
    assert props["ScheduleExpression"] == "cron(0 * * * ? *)"
    assert props["State"] == "ENABLED"
    (target,) = props["Targets"]
    assert target["Arn"] == {"Ref": "StateMachine"} and target["RoleArn"] == {"Fn::GetAtt": ["ScheduleRuleRole", "Arn"]}
    assert substituted_input(template, target) == param_defaults(dag)


def test_events_rule_refuses_what_a_rule_cannot_express(cfn_dags):
    with pytest.raises(ScheduleError, match="fixed offset"):
        build(cfn_dags["cfn_paris"], schedule_kind="events-rule")  # Europe/Paris: DST
    with pytest.raises(ScheduleError, match="no start date"):
        build(cfn_dags["cfn_timedelta"], schedule_kind="events-rule")  # starts in 2031
    template = build(cfn_dags["cfn_timedelta"], schedule_kind="events-rule", allow_unsupported_schedule=True)
    assert "ScheduleRule" not in template["Resources"] and "ScheduleRuleRole" not in template["Resources"]


def test_schedule_whose_end_date_has_passed_is_not_exported(cfn_dags):
    dag, result = cfn_dags["cfn_timedelta"]
    template = build(cfn_dags["cfn_timedelta"], now=dt.datetime(2032, 6, 1, tzinfo=dt.UTC))
    assert "Schedule" not in template["Resources"]
    assert any("end_date has passed" in w for w in result.warnings)


# ---------------------------------------------------------------------------
# Optional resources
# ---------------------------------------------------------------------------


def test_lambda_function_is_inlined_when_small(retraining):
    source = REPO / "lambda" / "query_training_status.py"
    assert len(source.read_bytes()) <= INLINE_CODE_LIMIT  # the reason it can be inline
    resources = build(retraining, include_lambda=True)["Resources"]
    function = resources["LambdaFunction"]
    props = function["Properties"]
    assert props["FunctionName"] == {"Ref": "MetricFunctionName"}  # the name the state machine invokes
    assert props["Code"] == {"ZipFile": source.read_text()}
    assert props["Handler"] == "index.lambda_handler"
    assert props["Role"] == {"Fn::GetAtt": ["LambdaFunctionRole", "Arn"]}
    assert function["DependsOn"] == ["LambdaFunctionLogGroup"]
    assert resources["LambdaFunctionLogGroup"]["Properties"]["LogGroupName"] == {
        "Fn::Sub": "/aws/lambda/${MetricFunctionName}"
    }
    assert "LambdaFunction" in resources["StateMachine"]["DependsOn"]


def test_a_template_too_large_to_deploy_inline_says_so(retraining):
    dag, result = retraining
    template = build(retraining, include_lambda=True, include_glue=True)
    if len(template_json(template).encode()) > 51200:
        assert any("--s3-bucket" in w for w in result.warnings)


def test_large_lambda_source_is_an_s3_location(retraining, tmp_path):
    big = tmp_path / "big_handler.py"
    big.write_text("def lambda_handler(event, context):\n    return event\n" + "#" * INLINE_CODE_LIMIT + "\n")
    template = build(retraining, include_lambda=True, lambda_source=big)
    props = template["Resources"]["LambdaFunction"]["Properties"]
    assert props["Code"] == {"S3Bucket": {"Ref": "LambdaCodeBucket"}, "S3Key": {"Ref": "LambdaCodeKey"}}
    assert props["Handler"] == "big_handler.lambda_handler"
    assert {"LambdaCodeBucket", "LambdaCodeKey"} <= set(template["Parameters"])
    assert cfn_lint(template) == []


def test_glue_job_matches_the_reference(retraining):
    resources = build(retraining, include_glue=True)["Resources"]
    props = resources["GlueJob"]["Properties"]
    assert props["Name"] == {"Ref": "GlueJobName"}
    assert props["Command"] == {
        "Name": "glueetl",
        "PythonVersion": "3",
        "ScriptLocation": {"Fn::Sub": "s3://${GlueScriptBucket}/${GlueScriptKey}"},
    }
    assert props["GlueVersion"] == "5.0"
    assert (props["WorkerType"], props["NumberOfWorkers"]) == ("G.1X", 2)
    assert props["Timeout"] == 60
    assert props["ExecutionProperty"] == {"MaxConcurrentRuns": 2}
    assert props["Role"] == {"Fn::GetAtt": ["GlueJobRole", "Arn"]}
    assert "GlueJob" in resources["StateMachine"]["DependsOn"]


def test_lambda_needs_a_lambda_state(cfn_dags):
    with pytest.raises(TemplateError, match="lambda:invoke"):
        build(cfn_dags["cfn_unscheduled"], include_lambda=True)


# ---------------------------------------------------------------------------
# Serialisation, files, secrets
# ---------------------------------------------------------------------------


def test_template_json_is_deterministic_and_keeps_the_state_order(retraining):
    first = template_json(build(retraining, include_lambda=True, include_glue=True))
    second = template_json(build(retraining, include_lambda=True, include_glue=True))
    assert first == second and first.endswith("\n")
    parsed = json.loads(first)
    assert list(parsed) == [
        "AWSTemplateFormatVersion",
        "Description",
        "Metadata",
        "Parameters",
        "Conditions",  # max_active_runs=1: create the run-slot table unless RunSlotTable names one
        "Resources",
        "Outputs",
    ]
    assert list(parsed["Resources"]) == sorted(parsed["Resources"])
    assert list(parsed["Parameters"]) == sorted(parsed["Parameters"])
    states = parsed["Resources"]["StateMachine"]["Properties"]["Definition"]["States"]
    assert list(states) == list(retraining[1].definition["States"])  # the exporter's order, not sorted


def test_write_template(retraining, tmp_path):
    target = write_template(build(retraining), tmp_path, "model_retraining")
    assert target == tmp_path / "model_retraining" / TEMPLATE_FILE
    assert json.loads(target.read_text())["Resources"]["StateMachine"]["Type"] == "AWS::StepFunctions::StateMachine"


def test_no_connection_secret_reaches_the_template(monkeypatch):
    connection = {
        "conn_type": "aws",
        "login": "AKIAEXAMPLEKEYID0000",
        "password": "s3cr3t-pa55",
        "extra": {"aws_secret_access_key": "extra-s3cr3t-key", "region_name": "eu-west-3"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(connection))
    dag = load_dag("model_retraining", REPO / "dags")
    result = export_dag_object(dag)
    texts = [json.dumps(result.definition), result.to_json()]
    for options in (
        {},
        {"include_lambda": True, "include_glue": True, "logging_level": "ALL", "tracing": True},
        {"schedule_kind": "events-rule"},
    ):
        texts.append(template_json(build_template(result, dag, now=NOW, **options)))
    for text in texts:
        for secret in ("s3cr3t-pa55", "extra-s3cr3t-key", "aws_secret_access_key", "AKIAEXAMPLEKEYID0000"):
            assert secret not in text
