"""Nested pipelines deploy together: the parent's CloudFormation template holds the child's state machine
(its definition and its own role) and ``python -m exporters deploy`` creates the child before the parent.

Which state machine the parent starts, and that a failing child fails the parent's task (retries included),
is tested in ``tests/test_export_14_nested.py`` (the parent and child machines in moto's interpreter against
the child's own ``dag.test()``: Airflow's ``dag.test()`` runs no scheduler, so a run it triggers never starts).
"""

from __future__ import annotations

import datetime
import json

from tests.export14_harness import GOOD, load

HEAD = "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}"


def _template() -> dict:
    from exporters.api import export_dag_object
    from exporters.cloudformation import build_template

    parent = load("nested_parent")
    return build_template(export_dag_object(parent), parent, now=datetime.datetime(2026, 11, 25, tzinfo=datetime.UTC))


def test_the_template_holds_the_child_state_machine_and_its_role():
    from exporters.api import export_dag_object
    from tests.test_export_cloudformation import cfn_lint

    template = _template()
    assert cfn_lint(template) == []
    resources = template["Resources"]
    child = resources["PipelineNestedChild"]
    assert child["Type"] == "AWS::StepFunctions::StateMachine"
    # Named where the parent's definition finds it: arn:...:stateMachine:nested_child in the same account.
    assert child["Properties"]["StateMachineName"] == "nested_child"
    assert child["Properties"]["Definition"] == export_dag_object(load("nested_child")).definition
    assert child["Properties"]["RoleArn"] == {"Fn::GetAtt": ["PipelineNestedChildRole", "Arn"]}
    assert resources["StateMachine"]["DependsOn"] == ["PipelineNestedChild"]
    # The child's own least privilege: it writes objects where the conf says. Both triggers pass the parent's
    # bucket param, whose default is the child's own (the grant keeps that bucket); the label differs from
    # the child's default, so the key part it scopes covers any value.
    (child_policy,) = resources["PipelineNestedChildRole"]["Properties"]["Policies"]
    statements = {s["Sid"]: s for s in child_policy["PolicyDocument"]["Statement"]}
    assert statements["S3PutObject"]["Resource"] == [
        {"Fn::Sub": "arn:${AWS::Partition}:s3:::nested-demo/features/*.csv"}
    ]
    assert not any(a.startswith("states:") for s in statements.values() for a in s["Action"])
    warnings = template["Metadata"]["AirflowExport"]["Warnings"]
    assert any(
        "params ['label'] are set by the trigger's conf" in w and "other than its defaults" in w for w in warnings
    )
    # The parent's role: start the child, follow and stop its executions, and the rule .sync:2 waits through.
    (parent_policy,) = resources["StateMachineRole"]["Properties"]["Policies"]
    parent = {s["Sid"]: s for s in parent_policy["PolicyDocument"]["Statement"]}
    assert parent["StartChildExecution"]["Resource"] == [{"Fn::Sub": f"{HEAD}:stateMachine:nested_child"}]
    assert parent["FollowChildExecution"]["Resource"] == [{"Fn::Sub": f"{HEAD}:execution:nested_child:*"}]
    assert parent["ChildExecutionEvents"] == {
        "Sid": "ChildExecutionEvents",
        "Effect": "Allow",
        "Action": ["events:DescribeRule", "events:PutRule", "events:PutTargets"],
        "Resource": [
            {
                "Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:rule/"
                "StepFunctionsGetEventsForStepFunctionsExecutionRule"
            }
        ],
    }


def test_deploy_creates_the_child_before_the_parent(aws, capsys):
    from exporters.__main__ import main
    from exporters.api import export_dag_object
    from tests.test_deploy_on_moto import make_role, recording_clients

    for name in ("nested_child", "nested_parent"):
        make_role(aws, f"{name}-sfn-role", "states.amazonaws.com")
    clients, calls = recording_clients(aws.endpoint_url)
    created: list[str] = []
    clients.client("stepfunctions").meta.events.register(
        "provide-client-params.sfn.CreateStateMachine", lambda params, **_: created.append(params["name"])
    )
    code = main(
        ["deploy", "nested_parent", "--dags-folder", str(GOOD), "--endpoint-url", aws.endpoint_url], clients=clients
    )
    out = capsys.readouterr().out
    assert code == 0, out
    sfn = aws.client("stepfunctions")
    machines = {m["name"]: m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]}
    assert set(machines) == {"nested_child", "nested_parent"}
    child = sfn.describe_state_machine(stateMachineArn=machines["nested_child"])
    assert child["roleArn"].endswith(":role/nested_child-sfn-role")
    assert json.loads(child["definition"]) == export_dag_object(load("nested_child")).definition
    assert created == ["nested_child", "nested_parent"]
    assert out.index("Nested pipeline of DAG 'nested_parent':") < out.index("state machine 'nested_child'")
    assert out.index("state machine 'nested_child'") < out.index("as state machine 'nested_parent'")
    # Idempotent: a second deploy changes neither.
    calls.clear()
    assert (
        main(
            ["deploy", "nested_parent", "--dags-folder", str(GOOD), "--endpoint-url", aws.endpoint_url], clients=clients
        )
        == 0
    )
    assert "Done: nothing to change." in capsys.readouterr().out
    assert not {"CreateStateMachine", "UpdateStateMachine"} & set(calls)


def test_the_ui_view_reads_the_child_as_airflow_stored_it_never_its_file(airflow_db, monkeypatch):
    """In the UI view (Airflow's stored parent, no parsed DAG) the child comes from the metadata database."""
    from exporters import loader
    from exporters.api import export_dag_object
    from exporters.cloudformation import build_template
    from exporters.serialized import from_serialized, serialize
    from tests.export14_harness import _serialize_to_db

    parent, child_dag = load("nested_parent"), load("nested_child")
    _serialize_to_db(parent)  # what the DAG processor does: both DAGs of the file stored
    cli = export_dag_object(parent).definition
    now = datetime.datetime(2026, 11, 25, tzinfo=datetime.UTC)
    cli_template = build_template(export_dag_object(parent), parent, now=now)

    def no_dag_files(*args, **kwargs):
        raise AssertionError("a DAG file was loaded: the API server must not run DAG code")

    monkeypatch.setattr(loader, "load_dag", no_dag_files)
    view = from_serialized(serialize(parent))  # the stored form alone, as the view has it
    result = export_dag_object(view)
    assert result.definition == cli
    template = build_template(result, view, now=now)
    child = template["Resources"]["PipelineNestedChild"]["Properties"]
    # The child as the view exports it on its own page (replace=True is not kept in Airflow's stored form: the
    # view assumes the default, as for any DAG; the CLI template reads it from the file).
    assert child["Definition"] == export_dag_object(from_serialized(serialize(child_dag))).definition
    assert (
        child["StateMachineName"] == cli_template["Resources"]["PipelineNestedChild"]["Properties"]["StateMachineName"]
    )
