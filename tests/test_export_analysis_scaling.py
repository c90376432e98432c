"""The failure analysis stays exact on long DAGs: proofs that stop at cut points equal the unbounded simulation.

The compiler proves "once this task ends so, nothing else runs and the run fails" by simulating
the later tasks only up to the next cut point (a top-level task every earlier task reaches) and
reusing that task's answer. Here every DAG of the golden and differential corpora, and a fan-out
longer than the simulation bound, is compiled twice: as shipped, and with no cut points and no
bound (the plain, quadratic simulation). The definitions must be identical: the shortcut changes
speed, never behaviour (which the differential test checks against Airflow for the corpus).
"""

from __future__ import annotations

import json

import pytest

from tests import golden_corpus

ROOT = golden_corpus.ROOT
STAGES = 15  # 15 stages of 1 hub + 10 workers: far more later tasks than the simulation bound


def long_fan_out(handled: bool):
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG, Param

    from retraining import GlueJobRunOperator, LambdaInvokeOperator, ParamRef, ResultRef

    dag_id = "long_fan_out_handled" if handled else "long_fan_out"
    with DAG(dag_id=dag_id, schedule=None, params={"job": Param("etl", type="string")}) as dag:
        workers: list = []
        for stage in range(STAGES):
            if stage == 0:
                hub = EmptyOperator(task_id="s00_hub")
            else:
                hub = LambdaInvokeOperator(
                    task_id=f"s{stage:02d}_hub",
                    function_name="check",
                    payload={"first": ResultRef(workers[0].task_id, "JobRunId")},
                )
                workers >> hub
            workers = [
                GlueJobRunOperator(task_id=f"s{stage:02d}_w{j}", job_name=ParamRef("job"), script_arguments={"--W": j})
                for j in range(10)
            ]
            hub >> workers
        if handled:  # any failure reaches this handler (one_failed also fires on upstream_failed): all recorded
            EmptyOperator(task_id="on_failure", trigger_rule="one_failed") << workers[0]
    return dag


@pytest.fixture(scope="module")
def corpus():
    from airflow.dag_processing.dagbag import DagBag

    dags = golden_corpus.load_corpus()
    bag = DagBag(str(ROOT / "tests" / "export_dags" / "differential"))
    assert not bag.import_errors, bag.import_errors
    dags.update(bag.dags)
    for handled in (False, True):
        dag = long_fan_out(handled)
        dags[dag.dag_id] = dag
    return dags


def _definition(dag) -> dict:
    from exporters.api import export_dag_object

    with golden_corpus.team_converters(dag):
        return export_dag_object(dag).definition


def test_cut_point_proofs_give_the_definition_of_the_unbounded_simulation(corpus, monkeypatch):
    from exporters import compiler, structure

    shipped = {dag_id: _definition(dag) for dag_id, dag in corpus.items()}
    monkeypatch.setattr(structure.TaskGraph, "cut_points", lambda self, tree: set())
    monkeypatch.setattr(compiler, "SIMULATION_LIMIT", 10**9)
    reference = {dag_id: _definition(dag) for dag_id, dag in corpus.items()}
    differ = sorted(dag_id for dag_id in corpus if shipped[dag_id] != reference[dag_id])
    assert not differ, differ
    assert len(corpus) > 20 and "model_retraining" in corpus


def test_a_long_fan_out_keeps_its_bookkeeping_at_the_gates(corpus):
    """Only the hubs are gated (a failed worker ends the run there); workers run ungated in their branches.

    (Before cut points, the proof gave up after 64 later tasks, so every stage but the last few carried
    a gate and a mark per worker: 1.6x the bytes.)
    """
    definition = _definition(corpus["long_fan_out"])
    states = definition["States"]
    parallels = [s for s in states.values() if s["Type"] == "Parallel"]
    assert len(parallels) == STAGES
    for parallel in parallels:
        for branch in parallel["Branches"]:
            kinds = sorted(s["Type"] for s in branch["States"].values())
            assert kinds == ["Succeed", "Task"], kinds  # the worker, and where its caught failure ends the branch
    gates = {name: s for name, s in states.items() if name.endswith(": all_success?")}
    assert len(gates) == STAGES - 1
    for gate in gates.values():
        assert [rule["Next"] for rule in gate["Choices"]] == ["Run failed"]
    size = len(json.dumps(definition, separators=(",", ":")))
    assert size / (STAGES * 11) < 800, size


def test_the_compile_leaves_the_garbage_collector_as_it_found_it(corpus, monkeypatch):
    """The compile keeps the objects alive at its start out of collections, and gives them back at its end.

    It also leaves alone a process that froze objects itself (the view's build processes do, after fork).
    """
    import gc

    from exporters import compiler
    from exporters.serialized import as_view

    view = as_view(corpus["long_fan_out"])
    frozen_during: list[int] = []
    real_compile = compiler.Compiler.compile

    def compile_watching(self):
        frozen_during.append(gc.get_freeze_count())
        return real_compile(self)

    monkeypatch.setattr(compiler.Compiler, "compile", compile_watching)
    assert gc.get_freeze_count() == 0
    first = compiler.compile_dag(view).definition
    assert frozen_during[-1] > 0  # the DAG and everything else alive were frozen for the compile
    assert gc.get_freeze_count() == 0  # and handed back
    gc.freeze()  # a process with its own frozen set
    own = gc.get_freeze_count()
    try:
        assert compiler.compile_dag(view).definition == first
        # Untouched: nothing more frozen, nothing handed back (frozen objects may still be freed by refcount).
        assert frozen_during[-1] <= own and 0 < gc.get_freeze_count() <= own
    finally:
        gc.unfreeze()
