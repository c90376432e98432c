"""Render a state machine like the Step Functions console graph (Graphviz)."""

from __future__ import annotations

from typing import Any

OPERATOR_SYMBOLS = {
    "LessThan": "<",
    "LessThanEquals": "<=",
    "GreaterThan": ">",
    "GreaterThanEquals": ">=",
    "Equals": "==",
}
STYLE = {
    "Task": {"shape": "box", "style": "rounded,filled", "fillcolor": "#e8f0fe"},
    "Pass": {"shape": "box", "style": "rounded,dashed"},
    "Choice": {"shape": "diamond", "style": "filled", "fillcolor": "#fff3b0"},
    "Wait": {"shape": "box", "style": "rounded,filled", "fillcolor": "#f1f3f4"},
    "Fail": {"shape": "box", "style": "rounded,filled", "fillcolor": "#f4c7c3", "color": "#c5221f"},
    "Succeed": {"shape": "box", "style": "rounded,filled", "fillcolor": "#ceead6", "color": "#137333"},
    "Parallel": {"shape": "box", "style": "rounded"},
    "Map": {"shape": "box", "style": "rounded"},
}


def _short_path(path: str) -> str:
    return path[2:] if path.startswith("$.") else path


def rule_label(rule: dict[str, Any]) -> str:
    """A choice rule as people read it: ``accuracy_check.value < params.threshold``."""
    alternatives = rule.get("Or")
    if alternatives and all(set(r) == {"Variable", "StringEquals"} for r in alternatives):
        variables = {r["Variable"] for r in alternatives}
        if len(variables) == 1:
            return f"{_short_path(variables.pop())} in ({', '.join(r['StringEquals'] for r in alternatives)})"
    for combinator, joiner in (("And", " and "), ("Or", " or ")):
        if combinator in rule:
            return joiner.join(
                f"({rule_label(r)})" if ("And" in r or "Or" in r) else rule_label(r) for r in rule[combinator]
            )
    if "Not" in rule:
        return f"not ({rule_label(rule['Not'])})"
    variable = _short_path(rule.get("Variable", "?"))
    for key, value in rule.items():
        if key in ("Variable", "Next"):
            continue
        base = key[:-4] if key.endswith("Path") else key
        shown = _short_path(value) if key.endswith("Path") else repr(value) if isinstance(value, str) else value
        for kind in ("Numeric", "String", "Timestamp", "Boolean"):
            if base.startswith(kind):
                symbol = OPERATOR_SYMBOLS.get(base[len(kind) :])
                if symbol:
                    return f"{variable} {symbol} {shown}"
        return f"{variable} {key} {shown}"
    return variable


def _label(name: str, state: dict[str, Any]) -> str:
    kind = state["Type"]
    if kind == "Task":
        resource = state.get("Resource", "")
        service = resource.split(":::")[-1] if ":::" in resource else resource
        return f"{name}\n{service}"
    if kind == "Fail" and state.get("Error"):
        return f"{name}\nFail: {state['Error']}"
    if kind == "Wait" and "Seconds" in state:
        return f"{name}\nWait {state['Seconds']} s"
    return f"{name}\n{kind}"


def to_graphviz(definition: dict[str, Any], title: str | None = None):
    import graphviz

    dot = graphviz.Digraph(
        "state_machine", graph_attr={"rankdir": "TB", "fontname": "Helvetica", "label": title or "", "labelloc": "t"}
    )
    dot.attr("node", fontname="Helvetica", fontsize="11")
    dot.attr("edge", fontname="Helvetica", fontsize="10")
    dot.node("__start__", "Start", shape="circle", style="filled", fillcolor="#5f6368", fontcolor="white", width="0.6")
    dot.node(
        "__end__", "End", shape="doublecircle", style="filled", fillcolor="#5f6368", fontcolor="white", width="0.5"
    )
    _add_machine(dot, definition, "", "__start__", "__end__")
    return dot


def _node_id(prefix: str, name: str) -> str:
    # Graphviz reads ':' in an edge end as a port; state names may contain it.
    import hashlib

    return "s" + hashlib.sha1(f"{prefix}\0{name}".encode()).hexdigest()[:12]


def group_path(state_name: str) -> tuple[str, ...]:
    """The task groups a state belongs to, outermost first: ``prep.checks.rows: run failed`` → (prep, prep.checks).

    A task in an Airflow task group has the group path in its id, and its states are named after the id.
    """
    task = state_name.split(": ", 1)[0]
    if " " in task:  # not a task's state ("Apply params", "Parallel: a, b", "Run time: ...")
        return ()
    parts = task.split(".")[:-1]
    return tuple(".".join(parts[: i + 1]) for i in range(len(parts)))


def _add_machine(dot: Any, machine: dict[str, Any], prefix: str, start_from: str, end_to: str) -> None:
    states = machine["States"]
    # A task group is drawn as a cluster holding its tasks' states (nested groups nested).
    groups: dict[str, Any] = {}

    def container(name: str) -> Any:
        path = group_path(name)
        for group in path:
            if group not in groups:
                cluster = type(dot)(name=f"cluster_{_node_id(prefix, 'group ' + group)}")
                cluster.attr(label=f"task group {group}", style="rounded", color="#1a73e8", fontcolor="#1a73e8")
                groups[group] = cluster
        return groups[path[-1]] if path else dot

    # A Parallel is drawn as a cluster: transitions enter at its fork point and leave from its join.
    entry_of = {
        name: _node_id(prefix, name) + ("_fork" if state["Type"] == "Parallel" else "")
        for name, state in states.items()
    }
    dot.edge(start_from, entry_of[machine["StartAt"]])
    for name, state in states.items():
        node = _node_id(prefix, name)
        kind = state["Type"]
        if kind == "Parallel":
            with dot.subgraph(name=f"cluster_{node}") as cluster:
                cluster.attr(label=name, style="rounded,dashed", color="#5f6368")
                cluster.node(node + "_fork", "", shape="point", width="0.1")
                cluster.node(node, "join", shape="point", width="0.1")
                for i, branch in enumerate(state["Branches"]):
                    _add_machine(cluster, branch, f"{node}_{i}_", node + "_fork", node)
        else:
            container(name).node(node, _label(name, state), **STYLE.get(kind, {}))
        for rule in state.get("Choices", []) or []:
            dot.edge(node, entry_of[rule["Next"]], label=rule_label(rule), color="#188038")
        if "Default" in state:
            dot.edge(node, entry_of[state["Default"]], label="Default", color="#c5221f")
        for catcher in state.get("Catch", []) or []:
            dot.edge(
                node,
                entry_of[catcher["Next"]],
                label="Catch " + ", ".join(catcher["ErrorEquals"]),
                style="dashed",
                color="#c5221f",
            )
        if "Next" in state:
            dot.edge(node, entry_of[state["Next"]])
        if state.get("End") or kind == "Succeed":
            dot.edge(node, end_to)
    for group in sorted(groups, key=lambda g: g.count("."), reverse=True):  # innermost first, into its parent
        parent = group.rpartition(".")[0]
        (groups[parent] if parent else dot).subgraph(groups[group])


def render(definition: dict[str, Any], fmt: str = "svg", title: str | None = None) -> bytes:
    """The rendered graph as bytes (svg or png). Needs Graphviz's ``dot`` program."""
    import shutil

    if fmt not in ("svg", "png"):
        raise ValueError(f"format {fmt!r}: use svg or png")
    if shutil.which("dot") is None:
        raise RuntimeError("Graphviz's 'dot' program is not installed (Debian: apt-get install graphviz)")
    return to_graphviz(definition, title).pipe(format=fmt)
