"""Least-privilege IAM in the exported template (exporters.iam, exporters.cloudformation).

Policies are checked as they appear in the built template (the real context: template
parameters as ``Ref``s), statement by statement: exact action sets and resources.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest

from exporters import cloudformation, iam
from exporters.api import export_dag_object
from exporters.cloudformation import _glue_requests, build_template
from exporters.errors import ExporterError
from exporters.loader import load_dag
from retraining import Format, ParamRef, RunUniqueName
from tests.conftest import ROOT as REPO

CFN_DAGS = Path(__file__).resolve().parent / "export_dags" / "cfn_dags" / "cfn_schedules.py"
NOW = dt.datetime(2026, 11, 25, tzinfo=dt.UTC)
HEAD = "arn:${AWS::Partition}"
REGIONAL = "${AWS::Region}:${AWS::AccountId}"


def sm(kind: str, name: str) -> dict:
    return {"Fn::Sub": f"{HEAD}:sagemaker:{REGIONAL}:{kind}/{name}"}


@pytest.fixture(scope="module")
def retraining():
    dag = load_dag("model_retraining", REPO / "dags")
    return dag, export_dag_object(dag)


@pytest.fixture(scope="module")
def cfn_dags():
    loaded = {}
    for dag_id in ("cfn_timedelta", "cfn_unscheduled", "cfn_paris", "cfn_assets"):
        dag = load_dag(dag_id, CFN_DAGS)
        loaded[dag_id] = (dag, export_dag_object(dag))
    return loaded


def template_for(dag_and_result, **options) -> dict:
    dag, result = dag_and_result
    options.setdefault("now", NOW)
    options.setdefault("allow_unsupported_schedule", True)
    return build_template(result, dag, **options)


def role_policy(template: dict, role: str = "StateMachineRole") -> list[dict]:
    policies = template["Resources"][role]["Properties"]["Policies"]
    return [s for p in policies for s in p["PolicyDocument"]["Statement"]]


def by_sid(statements: list[dict]) -> dict[str, dict]:
    return {s["Sid"]: s for s in statements}


# ---------------------------------------------------------------------------
# The retraining DAG: one statement per integration, exact
# ---------------------------------------------------------------------------

RETRAINING_EXPECTED = {
    # max_active_runs=1: the run-slot guard writes only the template's table (created, or named by RunSlotTable).
    "DynamoDBRunSlots": ({"dynamodb:UpdateItem"}, [cloudformation.RUN_SLOT_TABLE_ARN]),
    "GlueJobRunSync": (
        {"glue:StartJobRun", "glue:GetJobRun", "glue:GetJobRuns", "glue:BatchStopJobRun"},
        [{"Fn::Sub": f"{HEAD}:glue:{REGIONAL}:job/${{GlueJobName}}"}],
    ),
    "SageMakerTrainingJobSync": (
        {"sagemaker:CreateTrainingJob", "sagemaker:DescribeTrainingJob", "sagemaker:StopTrainingJob"},
        [sm("training-job", "${TrainingJobPrefix}-*")],
    ),
    # .sync tags the jobs it starts (MANAGED_BY_AWS): AddTags on those jobs only.
    "SageMakerTrainingJobTags": ({"sagemaker:AddTags"}, [sm("training-job", "${TrainingJobPrefix}-*")]),
    "SageMakerTrainingJobEvents": (
        {"events:PutTargets", "events:PutRule", "events:DescribeRule"},
        [{"Fn::Sub": f"{HEAD}:events:{REGIONAL}:rule/StepFunctionsGetEventsForSageMakerTrainingJobsRule"}],
    ),
    "LambdaInvoke": (
        {"lambda:InvokeFunction"},
        [{"Fn::Sub": f"{HEAD}:lambda:{REGIONAL}:function:${{MetricFunctionName}}"}],
    ),
    "PassRoleToSageMaker": ({"iam:PassRole"}, [{"Ref": "SagemakerRoleArn"}]),
    "SageMakerCreateModel": ({"sagemaker:CreateModel"}, [sm("model", "${ModelPrefix}-*")]),
    "SageMakerCreateEndpointConfig": ({"sagemaker:CreateEndpointConfig"}, [sm("endpoint-config", "${ModelPrefix}-*")]),
    "SageMakerCreateEndpoint": (
        {"sagemaker:CreateEndpoint"},
        [sm("endpoint-config", "${ModelPrefix}-*"), sm("endpoint", "${EndpointName}")],
    ),
    "SageMakerUpdateEndpoint": (
        {"sagemaker:UpdateEndpoint"},
        [sm("endpoint-config", "${ModelPrefix}-*"), sm("endpoint", "${EndpointName}")],
    ),
    "SageMakerDescribeEndpoint": ({"sagemaker:DescribeEndpoint"}, [sm("endpoint", "${EndpointName}")]),
}


def test_retraining_policy_has_exactly_the_statements_its_states_need(retraining):
    statements = by_sid(role_policy(template_for(retraining, logging_level="OFF")))
    assert set(statements) == set(RETRAINING_EXPECTED)
    for sid, (actions, resources) in RETRAINING_EXPECTED.items():
        assert set(statements[sid]["Action"]) == actions, sid
        assert len(statements[sid]["Action"]) == len(actions), sid
        assert statements[sid]["Resource"] == resources, sid
        assert statements[sid]["Effect"] == "Allow"


def test_pass_role_is_conditioned_on_sagemaker(retraining):
    statement = by_sid(role_policy(template_for(retraining)))["PassRoleToSageMaker"]
    assert statement["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    assert statement["Resource"] == [{"Ref": "SagemakerRoleArn"}]  # the SageMaker execution role only


def test_lambda_is_scoped_to_the_one_function(retraining):
    statements = [s for s in role_policy(template_for(retraining)) if any(a.startswith("lambda:") for a in s["Action"])]
    assert len(statements) == 1
    assert statements[0]["Action"] == ["lambda:InvokeFunction"]
    assert statements[0]["Resource"] == [{"Fn::Sub": f"{HEAD}:lambda:{REGIONAL}:function:${{MetricFunctionName}}"}]


def test_logging_and_tracing_add_only_their_own_statements(retraining):
    base = by_sid(role_policy(template_for(retraining, logging_level="OFF")))
    full = by_sid(role_policy(template_for(retraining, logging_level="ALL", tracing=True)))
    assert set(full) - set(base) == {"CloudWatchLogsDelivery", "XRayTracing"}
    assert set(full["CloudWatchLogsDelivery"]["Action"]) == set(iam.LOGGING_ACTIONS)
    assert set(full["XRayTracing"]["Action"]) == set(iam.TRACING_ACTIONS)
    assert full["CloudWatchLogsDelivery"]["Resource"] == ["*"] and full["XRayTracing"]["Resource"] == ["*"]


# ---------------------------------------------------------------------------
# Invariants over every template the tests build
# ---------------------------------------------------------------------------


def every_template(retraining, cfn_dags):
    yield (
        "retraining",
        template_for(retraining, logging_level="ALL", tracing=True, include_lambda=True, include_glue=True),
    )
    yield "retraining-events-rule", template_for(retraining, schedule_kind="events-rule")
    for dag_id, loaded in cfn_dags.items():
        yield dag_id, template_for(loaded, tracing=True, include_lambda=dag_id in ("cfn_timedelta", "cfn_paris"))
    yield "cfn_timedelta-glue", template_for(cfn_dags["cfn_timedelta"], include_glue=True)


def all_statements(template: dict):
    for logical, resource in template["Resources"].items():
        if resource["Type"] == "AWS::IAM::Role":
            for policy in resource["Properties"].get("Policies", []):
                for statement in policy["PolicyDocument"]["Statement"]:
                    yield logical, statement


def test_no_wildcard_actions_and_resource_star_only_where_unavoidable(retraining, cfn_dags):
    checked = 0
    for name, template in every_template(retraining, cfn_dags):
        for role, statement in all_statements(template):
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            where = f"{name}/{role}/{statement.get('Sid')}"
            assert statement["Effect"] == "Allow", where
            for action in actions:
                assert "*" not in action, f"{where}: wildcard action {action}"
                assert re.fullmatch(r"[a-z0-9-]+:[A-Za-z0-9]+", action), f"{where}: {action}"
            if "*" in resources:
                assert set(actions) <= iam.RESOURCE_STAR_ACTIONS, f"{where}: Resource '*' for {actions}"
                assert resources == ["*"], where
            for resource in resources:
                # A named resource is never "every resource of that type": its name keeps a literal or a parameter.
                text = resource if isinstance(resource, str) else json.dumps(resource)
                named = re.search(r":(training-job|model|endpoint-config|endpoint|job|function)[/:]([^\"]*)", text)
                if named:
                    assert named.group(2) not in ("", "*"), f"{where}: every {named.group(1)}: {text}"
            checked += 1
    assert checked > 40


def test_resource_star_actions_are_exactly_logging_and_tracing():
    assert iam.RESOURCE_STAR_ACTIONS == set(iam.LOGGING_ACTIONS) | set(iam.TRACING_ACTIONS)


def test_state_machine_arns_use_partition_region_and_account(retraining):
    for statement in role_policy(template_for(retraining, logging_level="OFF")):
        for resource in statement["Resource"]:
            if "Fn::Sub" in resource:
                text = resource["Fn::Sub"]
                text = text[0] if isinstance(text, list) else text  # [text, variables]
                assert text.startswith(f"{HEAD}:")
                assert "${AWS::AccountId}" in text
                assert "123456789012" not in text


def test_scheduler_and_rule_roles_may_only_start_this_state_machine(retraining):
    for kind, role, service in (
        ("scheduler", "ScheduleRole", "scheduler.amazonaws.com"),
        ("events-rule", "ScheduleRuleRole", "events.amazonaws.com"),
    ):
        template = template_for(retraining, schedule_kind=kind)
        statements = role_policy(template, role)
        assert statements == [
            {
                "Sid": "StartExecution",
                "Effect": "Allow",
                "Action": ["states:StartExecution"],
                "Resource": [{"Ref": "StateMachine"}],
            }
        ]
        trust = template["Resources"][role]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert [t["Principal"] for t in trust] == [{"Service": service}]
        assert trust[0]["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}


# ---------------------------------------------------------------------------
# Other shapes: Parallel branches, request/response training, tags, literal names
# ---------------------------------------------------------------------------


def test_states_inside_parallel_branches_are_covered(cfn_dags):
    dag, result = cfn_dags["cfn_timedelta"]
    top_level_tasks = [s for s in result.definition["States"].values() if s["Type"] == "Task"]
    assert top_level_tasks == []  # the Glue job and the Lambda call run in a Parallel state
    statements = by_sid(role_policy(template_for(cfn_dags["cfn_timedelta"], logging_level="OFF")))
    assert set(statements) == {"GlueJobRunSync", "LambdaInvoke"}
    assert statements["GlueJobRunSync"]["Resource"] == [{"Fn::Sub": f"{HEAD}:glue:{REGIONAL}:job/${{JobA}}"}]
    assert statements["LambdaInvoke"]["Resource"] == [{"Fn::Sub": f"{HEAD}:lambda:{REGIONAL}:function:${{Function}}"}]


def test_request_response_training_tags_and_literal_names(cfn_dags):
    statements = by_sid(role_policy(template_for(cfn_dags["cfn_unscheduled"], logging_level="OFF")))
    assert set(statements) == {
        "SageMakerCreateTrainingJob",
        "SageMakerTrainingJobTags",
        "SageMakerCreateModel",
        "PassRoleToSageMaker",
        # check_if_job_exists=True (the stock default) describes the name first (tests/test_export_14_stock.py)
        "SageMakerDescribeTrainingJob",
    }
    # Without .sync: CreateTrainingJob only (no Describe/Stop, no EventBridge rule)...
    assert statements["SageMakerCreateTrainingJob"]["Action"] == ["sagemaker:CreateTrainingJob"]
    # ... and AddTags because the request carries Tags.
    assert statements["SageMakerTrainingJobTags"]["Action"] == ["sagemaker:AddTags"]
    assert statements["SageMakerTrainingJobTags"]["Resource"] == [
        sm("training-job", "${JobName}"),
        sm("training-job", "${JobName}-*"),  # the per-run name when the job exists (action_if_job_exists)
    ]
    # A literal name is lower-cased, as SageMaker writes it in the ARN.
    assert statements["SageMakerCreateModel"]["Resource"] == [sm("model", "literal-model")]
    assert statements["PassRoleToSageMaker"]["Resource"] == [
        "arn:aws:iam::123456789012:role/LiteralModelRole",
        {"Ref": "RoleArn"},
    ]


def test_a_state_machine_without_tasks_gets_a_role_without_policy(cfn_dags):
    template = template_for(cfn_dags["cfn_assets"], logging_level="OFF")
    assert template["Resources"]["StateMachineRole"]["Properties"]["Policies"] == []


def test_unknown_integration_is_an_error_not_a_guess():
    definition = {
        "StartAt": "notify",
        "States": {
            "notify": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sns:publish",
                "Parameters": {"TopicArn": "arn:aws:sns:us-east-1:1:t"},
                "End": True,
            }
        },
    }
    with pytest.raises(iam.PolicyError, match="sns:publish"):
        iam.state_machine_policy(definition, iam.PolicyContext())


def test_run_time_names_fall_back_to_the_resource_type_with_a_warning():
    definition = {
        "StartAt": "train",
        "States": {
            "train": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sagemaker:createModel",
                "Parameters": {
                    "ModelName.$": "$.somewhere.name",
                    "ExecutionRoleArn": "arn:aws:iam::123456789012:role/R",
                },
                "End": True,
            }
        },
    }
    context = iam.PolicyContext()
    statements = by_sid(iam.state_machine_policy(definition, context)["Statement"])
    assert statements["SageMakerCreateModel"]["Resource"] == [sm("model", "*")]
    assert any("ModelName is only known at run time" in w for w in context.warnings)


def test_names_are_read_from_the_typed_references_and_through_pass_states():
    """Expressions map back to the references they were translated from (no parsing); paths a Pass filled
    are followed to what the Pass holds."""
    from exporters.translate import Translator

    translator = Translator({"env": "prod", "config": "Fixed-Config"}, {})
    endpoint = translator.expr(Format("{}-live", ParamRef("env"))).expr
    config = translator.expr(ParamRef("config")).expr
    definition = {
        "StartAt": "names",
        "States": {
            "names": {
                "Type": "Pass",
                "Parameters": {"endpoint.$": endpoint, "nested": {"config.$": config}},
                "ResultPath": "$.names",
                "Next": "update",
            },
            "update": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sagemaker:updateEndpoint",
                "Parameters": {"EndpointName.$": "$.names.endpoint", "EndpointConfigName.$": "$.names.nested.config"},
                "End": True,
            },
        },
    }
    context = iam.PolicyContext(params={"env": {"Ref": "Env"}, "config": "Fixed-Config"}, origins=translator.origins)
    statement = iam.state_machine_policy(definition, context)["Statement"][0]
    assert statement["Resource"] == [sm("endpoint-config", "fixed-config"), sm("endpoint", "${Env}-live")]
    assert context.usages == {"env": {"sagemaker-name"}}

    # Without the export's table an expression is not guessed at: the name is only known at run time.
    unknown = iam.PolicyContext(params=context.params)
    assert iam.state_machine_policy(definition, unknown)["Statement"][0]["Resource"][1] == sm("endpoint", "*")


def test_format_text_that_needs_escaping_in_asl_keeps_its_exact_literal_parts():
    from exporters.translate import Translator

    translator = Translator({"x": "v"}, {})
    value = Format("a{b}'c\\-{}-{}", ParamRef("x"), RunUniqueName("p"))
    expr = translator.expr(value).expr
    assert "\\{b\\}" in expr and "\\'" in expr  # escaped in the ASL text...
    pieces = iam._Resolver({"States": {}}, translator.origins).expr(expr)
    assert pieces == [iam.Lit("a{b}'c\\-"), iam.Par("x"), iam.Lit("-p-"), iam.ANY]  # ...exact in the names


# ---------------------------------------------------------------------------
# Parameters that scope permissions are constrained
# ---------------------------------------------------------------------------


def test_parameters_that_scope_permissions_are_constrained(retraining):
    parameters = template_for(retraining)["Parameters"]

    def allowed(name: str, value: str) -> bool:
        return re.fullmatch(parameters[name]["AllowedPattern"], value) is not None

    for name in parameters:
        assert allowed(name, parameters[name]["Default"]), name
        assert not allowed(name, parameters[name]["Default"] + '"'), name  # never breaks the definition's JSON
        assert not allowed(name, "${Other}"), name  # never re-substituted
    assert not allowed("TrainingJobPrefix", "Churn-XGB")  # SageMaker ARNs are lower case
    assert not allowed("EndpointName", "Churn-Endpoint")
    assert not allowed("ModelPrefix", "churn-*")
    assert not allowed("MetricFunctionName", "arn:aws:lambda:us-east-1:123456789012:function:f")
    assert not allowed("SagemakerRoleArn", "*")
    assert not allowed("SagemakerRoleArn", "arn:aws:iam::123456789012:role/*")
    assert allowed("SagemakerRoleArn", "arn:aws-cn:iam::210987654321:role/path/Other_Role")
    assert not allowed("GlueJobName", "*")


# ---------------------------------------------------------------------------
# The optional function and job have their own narrow roles
# ---------------------------------------------------------------------------


def test_lambda_role_reads_training_jobs_of_the_prefix_and_writes_its_own_logs(retraining):
    statements = by_sid(role_policy(template_for(retraining, include_lambda=True), "LambdaFunctionRole"))
    assert statements["DescribeTrainingJobs"]["Action"] == ["sagemaker:DescribeTrainingJob"]
    assert statements["DescribeTrainingJobs"]["Resource"] == [sm("training-job", "${TrainingJobPrefix}-*")]
    assert statements["WriteOwnLogs"]["Action"] == ["logs:CreateLogStream", "logs:PutLogEvents"]
    assert statements["WriteOwnLogs"]["Resource"] == [
        {"Fn::Sub": f"{HEAD}:logs:{REGIONAL}:log-group:/aws/lambda/${{MetricFunctionName}}:*"}
    ]
    assert set(statements) == {"DescribeTrainingJobs", "WriteOwnLogs"}


def test_glue_role_reads_its_script_and_its_data_and_writes_only_the_destination(retraining):
    statements = by_sid(role_policy(template_for(retraining, include_glue=True), "GlueJobRole"))
    assert statements["ReadScript"]["Resource"] == [
        {"Fn::Sub": "arn:${AWS::Partition}:s3:::${GlueScriptBucket}/${GlueScriptKey}"}
    ]

    def under(prefix: str) -> dict:
        return {"Fn::Sub": f"arn:${{AWS::Partition}}:s3:::${{{prefix}Bucket}}/${{{prefix}Key}}*"}

    # Objects: read under both prefixes the DAG's params name, write only under the destination's.
    assert statements["ReadData"]["Resource"] == [under("S3Dest"), under("S3Source")]
    assert statements["ReadData"]["Action"] == ["s3:GetObject"]
    assert statements["WriteData"]["Resource"] == [under("S3Dest")]
    assert set(statements["WriteData"]["Action"]) == {"s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"}
    # Listing: each bucket, only under its prefix.
    for sid, prefix in (("ListData", "S3Dest"), ("ListData2", "S3Source")):
        assert statements[sid]["Action"] == ["s3:ListBucket"]
        assert statements[sid]["Resource"] == [{"Fn::Sub": f"arn:${{AWS::Partition}}:s3:::${{{prefix}Bucket}}"}]
        assert statements[sid]["Condition"] == {"StringLike": {"s3:prefix": [{"Fn::Sub": f"${{{prefix}Key}}*"}]}}
    assert statements["WriteGlueLogs"]["Resource"] == [{"Fn::Sub": f"{HEAD}:logs:{REGIONAL}:log-group:/aws-glue/*"}]


# ---------------------------------------------------------------------------
# S3: every grant scoped to a prefix, in every template of the test corpus
# ---------------------------------------------------------------------------

EXPORT_DAGS = Path(__file__).resolve().parent / "export_dags"
# The key part up to the first wildcard is the prefix the grant is scoped to (e.g. features/*.csv → features/).
S3_OBJECT_ARN = re.compile(r"^arn:\$\{AWS::Partition\}:s3:::(?P<bucket>[^/*]+)/(?P<key>[^*]+)(\*[^*]*)*$")


def corpus_templates():
    """(label, template) for every DAG of the export corpus (the product's DAG, good/ and cfn_dags/) that has one.

    A DAG whose policy cannot be derived (a team-registered integration, a child state machine known only
    at run time) has its template refused rather than guessed: there is nothing to check for it.
    """
    from airflow.dag_processing.dagbag import DagBag

    from tests.golden_corpus import load_corpus, team_converters

    dags = {**load_corpus(), **DagBag(str(EXPORT_DAGS / "cfn_dags")).dags}
    refused = set()
    for dag_id, dag in sorted(dags.items()):
        with team_converters(dag):
            result = export_dag_object(dag)
        # A Glue job resource (and its role) where the DAG's Glue tasks all run one job.
        jobs = {json.dumps(r.get("JobName"), default=str) for _, r in _glue_requests(dag)}
        try:
            yield dag_id, template_for((dag, result), tracing=True, include_glue=len(jobs) == 1, include_lambda=False)
        except iam.PolicyError:
            refused.add(dag_id)
    assert "model_retraining" not in refused and len(refused) < len(dags) // 2, refused


def s3_resource_text(resource) -> str:
    """A resource as the text CloudFormation will substitute (``Fn::Sub`` string form)."""
    if isinstance(resource, str):
        return resource
    assert set(resource) == {"Fn::Sub"} and isinstance(resource["Fn::Sub"], str), resource
    return resource["Fn::Sub"]


# Grants bucket-wide by the operation itself: creating or deleting the bucket (on exactly its ARN),
# HeadBucket (s3:ListBucket with no prefix), and emptying a bucket before deleting it (force_delete).
BUCKET_ACTIONS = {"s3:CreateBucket", "s3:DeleteBucket"}
EMPTIES_A_BUCKET = {"s3_operators", "s3_teardown"}  # their S3DeleteBucketOperator(force_delete=True)
# Its aws-sdk PutObject's whole Key is an upstream result (a Glue run id): only its bucket is known at export.
KEY_KNOWN_PER_RUN = {"xcom_args"}
BUCKET_ARN = r"arn:\$\{AWS::Partition\}:s3:::(\$\{[A-Za-z]+\}|[a-z0-9.-]+)"


def test_every_s3_statement_of_every_corpus_template_is_scoped_to_a_prefix():
    checked = 0
    for label, template in corpus_templates():
        for role, statement in all_statements(template):
            s3_actions = [a for a in statement["Action"] if a.startswith("s3:")]
            if not s3_actions:
                continue
            checked += 1
            where = f"{label} {role} {statement['Sid']}"
            assert len(s3_actions) == len(statement["Action"]), where
            texts = [s3_resource_text(r) for r in statement["Resource"]]
            if set(s3_actions) <= BUCKET_ACTIONS or (
                s3_actions == ["s3:ListBucket"] and statement["Sid"] == "S3HeadBucket"
            ):
                assert all(re.fullmatch(BUCKET_ARN, t) for t in texts), (where, texts)
                continue
            if s3_actions == ["s3:DeleteObject"] and label in EMPTIES_A_BUCKET:
                texts = [t for t in texts if not re.fullmatch(BUCKET_ARN + r"/\*", t)]
            if s3_actions == ["s3:PutObject"] and label in KEY_KNOWN_PER_RUN:
                texts = [t for t in texts if not re.fullmatch(BUCKET_ARN + r"/\*", t)]
            if s3_actions == ["s3:ListBucket"]:
                # A bucket-level action: scoped by the s3:prefix condition to non-empty prefixes.
                prefixes = statement["Condition"]["StringLike"]["s3:prefix"]
                assert prefixes, where
                for prefix in prefixes:
                    text = s3_resource_text(prefix)
                    assert text.endswith("*") and text[:-1] and "*" not in text[:-1], (where, text)
                continue
            for text in texts:
                match = S3_OBJECT_ARN.match(text)
                assert match, f"{where}: {text} is not an object ARN under a key prefix"
                assert match["key"].strip("/"), f"{where}: {text} covers a whole bucket"
    assert checked >= 8  # the Glue roles (retraining, cfn, stock) and the aws-sdk S3 states


# ---------------------------------------------------------------------------
# Hostile literals: names that would become IAM wildcards, keys that Step Functions reads as paths
# ---------------------------------------------------------------------------


def small_dag(dag_id: str, build, params: dict | None = None):
    from airflow.sdk import DAG

    with DAG(dag_id=dag_id, schedule=None, params=params or {}) as dag:
        build()
    return dag


def test_a_literal_name_with_a_wildcard_is_refused_naming_state_and_field():
    from airflow.providers.amazon.aws.operators.glue import GlueJobOperator

    from retraining import SageMakerCreateModelOperator

    glue = small_dag("wild_glue", lambda: GlueJobOperator(task_id="etl", job_name="etl-*", wait_for_completion=False))
    with pytest.raises(iam.PolicyError) as refused:
        template_for((glue, export_dag_object(glue)), schedule_kind="none")
    assert "state 'etl', field JobName: the literal 'etl-*' contains '*' or '?'" in str(refused.value)
    assert refused.value.fix

    model = small_dag(
        "wild_model",
        lambda: SageMakerCreateModelOperator(
            task_id="model",
            request={"ModelName": "churn-?", "ExecutionRoleArn": "arn:aws:iam::123456789012:role/R"},
        ),
    )
    with pytest.raises(iam.PolicyError, match=r"state 'model', field ModelName: the literal 'churn-\?'"):
        template_for((model, export_dag_object(model)), schedule_kind="none")


def test_a_param_default_with_a_path_key_is_refused_naming_the_param():
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import Param

    from exporters.errors import ExportError

    dag = small_dag(
        "dollar_param",
        lambda: EmptyOperator(task_id="noop"),
        {"settings": Param({"ok": 1, "nested": [{"inner.$": "$$.Execution.Input"}]}, type="object")},
    )
    with pytest.raises(ExportError) as refused:
        export_dag_object(dag)
    assert "param default 'settings.nested[0].inner.$'" in str(refused.value) and "rename the key" in str(refused.value)


def test_a_literal_under_a_path_key_in_a_request_is_refused_naming_task_and_field():
    from airflow.sdk import Param

    from exporters.errors import ExportError
    from retraining import GlueJobRunOperator

    dag = small_dag(
        "dollar_argument",
        lambda: GlueJobRunOperator(task_id="etl", job_name="churn-etl", script_arguments={"--X.$": "$$.Execution"}),
    )
    with pytest.raises(ExportError) as refused:
        export_dag_object(dag)
    assert "task 'etl': field '--X.$' holds a literal under a name ending in '.$'" in str(refused.value)

    # A reference under such a name is faithful ("--X.$.$": the field "--X.$" gets the param's value).
    fine = small_dag(
        "dollar_reference",
        lambda: GlueJobRunOperator(task_id="etl", job_name="churn-etl", script_arguments={"--X.$": ParamRef("x")}),
        {"x": Param("v", type="string")},
    )
    arguments = export_dag_object(fine).definition["States"]["etl"]["Parameters"]["Arguments"]
    assert arguments == {"--X.$.$": "$.params.x"}


# ---------------------------------------------------------------------------
# The Glue role's S3 access comes from the script's declaration, never guessed
# ---------------------------------------------------------------------------


def glue_template(tmp_path, arguments: dict, declared: str | None = '{"--IN": "read", "--OUT": "write"}'):
    from airflow.sdk import Param

    from retraining import GlueJobRunOperator

    script = tmp_path / "etl.py"
    script.write_text(("" if declared is None else f"S3_ARGUMENTS = {declared}\n") + "import pyspark\n")
    dag = small_dag(
        "glue_scoping",
        lambda: GlueJobRunOperator(task_id="etl", job_name="etl", script_arguments=arguments),
        {"source": Param("s3://in-bucket/raw/", type="string")},
    )
    return template_for((dag, export_dag_object(dag)), schedule_kind="none", include_glue=True, glue_script=script)


def test_an_s3_argument_the_script_does_not_declare_is_refused_with_the_fix(tmp_path):
    with pytest.raises(ExporterError) as refused:
        glue_template(tmp_path, {"--IN": ParamRef("source"), "--EXTRA": "s3://other/x/"})
    assert "task 'etl': Glue argument '--EXTRA' is an S3 location" in refused.value.reason
    assert "add '--EXTRA': 'read' (or 'write') to S3_ARGUMENTS" in refused.value.fix


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"--OUT": "s3://out-bucket"}, "does not name a key prefix inside a bucket"),
        ({"--OUT": "s3://out-bucket/"}, "does not name a key prefix inside a bucket"),
        ({"--OUT": "s3://out-bucket/x*/"}, "contains '*' or '?'"),
        ({"--IN": "raw/"}, "is declared 'read' in the script's S3_ARGUMENTS but its value raw/ is not an s3:// URI"),
    ],
)
def test_glue_locations_that_cannot_be_scoped_are_refused(tmp_path, arguments, message):
    with pytest.raises(ExporterError, match=re.escape(message)):
        glue_template(tmp_path, arguments)


def test_declared_locations_get_exactly_their_access(tmp_path):
    template = glue_template(tmp_path, {"--IN": ParamRef("source"), "--OUT": "s3://out-bucket/clean/v2/", "--N": "3"})
    statements = by_sid(role_policy(template, "GlueJobRole"))
    source = {"Fn::Sub": f"{HEAD}:s3:::${{SourceBucket}}/${{SourceKey}}*"}
    out = {"Fn::Sub": f"{HEAD}:s3:::out-bucket/clean/v2/*"}
    assert statements["ReadData"]["Resource"] == [source, out] or statements["ReadData"]["Resource"] == [out, source]
    assert statements["WriteData"]["Resource"] == [out]
    listed = {json.dumps(s["Condition"], sort_keys=True) for s in (statements["ListData"], statements["ListData2"])}
    assert json.dumps({"StringLike": {"s3:prefix": [{"Fn::Sub": "clean/v2/*"}]}}, sort_keys=True) in listed


def test_params_that_name_s3_objects_or_tables_in_a_policy_cannot_widen_it():
    """A template parameter whose value lands in an S3 or DynamoDB resource refuses '*' and '?' at deploy time."""
    from tests.golden_corpus import load_corpus

    dag = load_corpus()["aws_sdk_calls"]
    parameters = template_for((dag, export_dag_object(dag)), schedule_kind="none")["Parameters"]
    for logical in ("Bucket", "RunLabel", "Table"):
        assert "no '*' or '?'" in parameters[logical]["ConstraintDescription"], logical
        assert re.fullmatch(parameters[logical]["AllowedPattern"], parameters[logical]["Default"])
        for widened in ("*", "reports-?", "a*b"):
            assert not re.fullmatch(parameters[logical]["AllowedPattern"], widened), (logical, widened)
