"""Unit tests of the exporter's graph analysis (``exporters.structure.TaskGraph``): order, reachability and
the control-flow tree (sequences, parallel regions, branches, or topological waves) of real Airflow DAGs."""

from __future__ import annotations

import itertools

import pytest
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporters.structure import Branch, Par, Seq, Step, StructureProblem, TaskGraph, tasks_in

_dag_ids = itertools.count()


def dag_of(edges: list[tuple[str, str]], tasks: list[str] | None = None) -> DAG:
    """A DAG of EmptyOperators with these edges (task ids in ``tasks`` first, in that order)."""
    names = list(tasks or [])
    for a, b in edges:
        names += [n for n in (a, b) if n not in names]
    with DAG(dag_id=f"graph_{next(_dag_ids)}", schedule=None) as dag:
        ops = {name: EmptyOperator(task_id=name) for name in names}
        for a, b in edges:
            ops[a] >> ops[b]
    return dag


def steps(*task_ids: str) -> list[Step]:
    return [Step(t) for t in task_ids]


def test_order_puts_every_task_after_its_upstream_and_is_deterministic():
    edges = [("a", "c"), ("b", "c"), ("c", "d"), ("a", "d")]
    graph = TaskGraph(dag_of(edges))
    assert graph.order == ["a", "b", "c", "d"] == TaskGraph(dag_of(list(reversed(edges)))).order
    assert graph.leaves == ["d"]


def test_upstream_is_transitive_and_never_sideways():
    graph = TaskGraph(dag_of([("a", "b"), ("b", "c"), ("a", "x")]))
    assert graph.is_upstream("a", "c") and graph.is_upstream("b", "c")
    assert not graph.is_upstream("x", "c") and not graph.is_upstream("c", "a") and not graph.is_upstream("c", "c")
    assert graph.descendants("a") == {"b", "c", "x"}


def test_a_chain_is_a_sequence():
    assert TaskGraph(dag_of([("a", "b"), ("b", "c")])).tree() == Seq(steps("a", "b", "c"))


def test_fan_out_and_in_is_a_parallel_region_between_fork_and_join():
    graph = TaskGraph(dag_of([("start", "x"), ("start", "y"), ("x", "join"), ("y", "join")]))
    assert graph.tree() == Seq([Step("start"), Par([Seq(steps("x")), Seq(steps("y"))]), Step("join")])


def test_two_roots_start_side_by_side():
    graph = TaskGraph(dag_of([("a", "end"), ("b", "end")]))
    assert graph.tree() == Seq([Par([Seq(steps("a")), Seq(steps("b"))]), Step("end")])


def test_a_graph_that_is_not_series_parallel_runs_in_topological_waves():
    # The N shape: b needs a and c, d needs c only; no fork/join nesting describes it.
    graph = TaskGraph(dag_of([("a", "b"), ("c", "b"), ("c", "d")]))
    assert graph.tree() == Seq([Par([Seq(steps("a")), Seq(steps("c"))]), Par([Seq(steps("b")), Seq(steps("d"))])])


def test_a_branch_holds_one_closed_region_per_target_up_to_the_join():
    edges = [("choose", "x1"), ("x1", "x2"), ("choose", "y"), ("x2", "join"), ("y", "join")]
    graph = TaskGraph(dag_of(edges), branch_targets={"choose": ["x1", "y"]})
    assert graph.tree() == Seq([Branch("choose", {"x1": Seq(steps("x1", "x2")), "y": Seq(steps("y"))}), Step("join")])


def test_branch_targets_must_be_the_downstream_tasks():
    graph = TaskGraph(dag_of([("choose", "x"), ("choose", "y")]), branch_targets={"choose": ["x"]})
    with pytest.raises(StructureProblem) as caught:
        graph.tree()
    assert caught.value.task_id == "choose" and "must be exactly its downstream tasks" in caught.value.reason


@st.composite
def random_dags(draw) -> tuple[list[str], list[tuple[str, str]]]:
    """Edges i -> j (i < j) over up to 9 tasks: every DAG shape, series-parallel or not."""
    count = draw(st.integers(min_value=1, max_value=9))
    pairs = [(i, j) for i in range(count) for j in range(i + 1, count)]
    chosen = draw(st.lists(st.sampled_from(pairs), unique=True, max_size=len(pairs))) if pairs else []
    return [f"t{i}" for i in range(count)], [(f"t{i}", f"t{j}") for i, j in chosen]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_dags())
def test_any_dag_becomes_a_tree_holding_every_task_once_after_its_upstream(shape):
    tasks, edges = shape
    graph = TaskGraph(dag_of(edges, tasks))
    order = tasks_in(graph.tree())
    assert sorted(order) == sorted(tasks)
    position = {task: i for i, task in enumerate(order)}
    for a, b in edges:
        assert position[a] < position[b], (a, b, order)
