"""Graph analysis: the DAG's tasks as a control-flow tree the compiler emits, without looking at any state.

A series-parallel DAG becomes nested :class:`Seq` (one after another), :class:`Par`
(side by side until they meet) and :class:`Branch` (a branch operator and one
closed sub-graph per target, up to the task where they meet). Any other DAG
becomes waves: its topological levels one after another, the tasks of a level
side by side. Either way every task appears once, after all its upstream tasks;
what runs is decided by each task's gate over recorded outcomes, so the shape
only decides what runs side by side.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

_END = "\0end"


@dataclass
class Step:
    task_id: str


@dataclass
class Seq:
    items: list[Any] = field(default_factory=list)


@dataclass
class Par:
    branches: list[Seq]


@dataclass
class Branch:
    """A branch operator followed by one sub-graph per target (empty when the target is where they meet)."""

    task_id: str
    regions: dict[str, Seq]


class NotSeriesParallel(Exception):
    pass


class StructureProblem(Exception):
    def __init__(self, task_id: str, reason: str, fix: str = ""):
        super().__init__(reason)
        self.task_id, self.reason, self.fix = task_id, reason, fix


class TaskGraph:
    """Upstream/downstream sets, topological order and the control-flow tree of a DAG's tasks."""

    def __init__(self, dag: Any, branch_targets: dict[str, list[str]] | None = None):
        self.dag = dag
        self.tasks = {t.task_id: t for t in dag.tasks}
        self.upstream = {tid: frozenset(t.upstream_task_ids) for tid, t in self.tasks.items()}
        self.downstream = {tid: frozenset(t.downstream_task_ids) for tid, t in self.tasks.items()}
        self.branch_targets = branch_targets or {}
        self.order = self._topological_order()
        self.rank = {tid: i for i, tid in enumerate(self.order)}
        self.leaves = [tid for tid in self.order if not self.downstream[tid]]
        self.leaf_set = frozenset(self.leaves)

    def _topological_order(self) -> list[str]:
        indegree = {tid: len(up) for tid, up in self.upstream.items()}
        ready = deque(sorted(tid for tid, d in indegree.items() if d == 0))
        out = []
        while ready:
            tid = ready.popleft()
            out.append(tid)
            for nxt in sorted(self.downstream[tid]):
                indegree[nxt] -= 1
                if indegree[nxt] == 0:
                    ready.append(nxt)
        return out

    def is_upstream(self, target: str, reader: str) -> bool:
        """Whether ``target`` runs before ``reader`` (walks up from the reader only as far as needed)."""
        seen: set[str] = set()
        # Breadth first: the task read is nearly always close above the reader.
        queue = deque(self.upstream.get(reader, ()))
        while queue:
            tid = queue.popleft()
            if tid == target:
                return True
            if tid not in seen:
                seen.add(tid)
                queue.extend(self.upstream[tid])
        return False

    def descendants(self, tid: str) -> set[str]:
        seen: set[str] = set()
        stack = list(self.downstream[tid])
        while stack:
            t = stack.pop()
            if t not in seen:
                seen.add(t)
                stack.extend(self.downstream[t])
        return seen

    # -- the control-flow tree ---------------------------------------------------------------------------
    def tree(self) -> Seq:
        """Series-parallel decomposition, or waves over topological levels when the graph is not one."""
        roots = [tid for tid in self.order if not self.upstream[tid]]
        self._post_dominators()
        try:
            tree = self._region(roots, None)
        except NotSeriesParallel:
            self.series_parallel = False
            return self.waves()
        self.series_parallel = True
        return tree

    def cut_points(self, tree: Seq) -> set[str]:
        """The tasks of ``tree`` that every task before them reaches (none for waves).

        In a series-parallel tree these are the steps of the top-level sequence: each post-dominates
        everything before it, so a later task depends on earlier ones only through it, and no
        earlier task is a leaf. What happens after such a task depends only on its outcome.
        """
        if not getattr(self, "series_parallel", False):
            return set()
        return {item.task_id for item in tree.items if isinstance(item, Step)}

    def waves(self) -> Seq:
        for tid in self.branch_targets:
            raise StructureProblem(
                tid,
                "a branch in a graph that is not series-parallel cannot be exported",
                "make each branch a closed sub-graph that joins at one task",
            )
        level: dict[str, int] = {}
        for tid in self.order:
            level[tid] = 1 + max((level[u] for u in self.upstream[tid]), default=-1)
        by_level: dict[int, list[str]] = {}
        for tid in self.order:
            by_level.setdefault(level[tid], []).append(tid)
        out = Seq()
        for n in sorted(by_level):
            tasks = by_level[n]
            if len(tasks) == 1:
                out.items.append(Step(tasks[0]))
            else:
                out.items.append(Par([Seq([Step(t)]) for t in tasks]))
        return out

    def _post_dominators(self) -> None:
        """Immediate post-dominators (Cooper-Harvey-Kennedy on the reversed DAG, one pass)."""
        self._prank = dict(self.rank)
        self._prank[_END] = len(self.order)
        self._ipdom = {_END: _END}
        for tid in reversed(self.order):
            succ = sorted(self.downstream[tid])
            self._ipdom[tid] = self._intersect(succ) if succ else _END

    def _intersect(self, tasks: list[str]) -> str:
        current = tasks[0]
        for other in tasks[1:]:
            a, b = current, other
            while a != b:
                while self._prank[a] < self._prank[b]:
                    a = self._ipdom[a]
                while self._prank[b] < self._prank[a]:
                    b = self._ipdom[b]
            current = a
        return current

    def _join(self, tasks: list[str]) -> str | None:
        meet = self._intersect(tasks)
        return None if meet == _END else meet

    def _region(self, starts: list[str], stop: str | None) -> Seq:
        out = Seq()
        current: str | None = starts[0]
        if len(starts) > 1:
            join = self._join(starts)
            out.items.append(self._par(None, starts, join))
            current = join
        while current is not None and current != stop:
            succ = sorted(self.downstream[current])
            join = None if self._ipdom[current] == _END else self._ipdom[current]
            targets = self.branch_targets.get(current)
            if targets is not None:
                if set(targets) != set(succ):
                    raise StructureProblem(
                        current, f"the branch targets {sorted(targets)} must be exactly its downstream tasks {succ}"
                    )
                regions: dict[str, Seq] = {}
                for target in sorted(targets):
                    if target == join:
                        regions[target] = Seq()
                        continue
                    self._check_closed(current, target, join)
                    regions[target] = self._region([target], join)
                out.items.append(Branch(current, regions))
                current = join
                continue
            out.items.append(Step(current))
            if not succ:
                current = None
            elif len(succ) == 1:
                nxt = succ[0]
                if len(self.upstream[nxt]) > 1 and nxt != stop:
                    raise NotSeriesParallel()
                current = nxt
            else:
                # A direct edge to the join (e.g. from an XComArg) adds no branch: the join runs after the others.
                starts = [s for s in succ if s != join]
                if len(starts) == 1:
                    self._check_closed(current, starts[0], join)
                    out.items.extend(self._region(starts, join).items)
                else:
                    out.items.append(self._par(current, starts, join))
                current = join
        return out

    def _par(self, fork: str | None, starts: list[str], join: str | None) -> Par:
        for start in starts:
            self._check_closed(fork, start, join)
        return Par([self._region([start], join) for start in starts])

    def _check_closed(self, fork: str | None, start: str, join: str | None) -> None:
        """Tasks between ``start`` and ``join`` may only depend on ``fork`` or each other."""
        inside: set[str] = set()
        stack = [start]
        while stack:
            tid = stack.pop()
            if tid in inside or tid == join:
                continue
            inside.add(tid)
            stack.extend(self.downstream[tid])
        for tid in inside:
            for up in self.upstream[tid]:
                if up not in inside and up != fork:
                    raise NotSeriesParallel()


def tasks_in(node: Any) -> list[str]:
    """Task ids under a tree node, in control order."""
    if isinstance(node, Step):
        return [node.task_id]
    if isinstance(node, Seq):
        return [t for item in node.items for t in tasks_in(item)]
    if isinstance(node, Par):
        return [t for branch in node.branches for t in tasks_in(branch)]
    return [node.task_id, *(t for region in node.regions.values() for t in tasks_in(region))]
