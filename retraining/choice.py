"""Stage 4: a declarative metric rule that picks a branch."""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Any

from airflow.providers.standard.operators.branch import BaseBranchOperator
from airflow.sdk.exceptions import AirflowFailException

from retraining.refs import TAG, Ref, TaggedValueError, from_tagged, iter_refs, resolve_value, tagged, to_tagged
from retraining.serialized import ExportSerialized

COMPARISONS = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
}


class RuleError(ValueError):
    """The rule cannot be evaluated for this run (missing metric, non-numeric value)."""


@tagged
@dataclass(frozen=True)
class MetricRule:
    """``<metric> <comparison> <threshold>`` → ``if_true`` task, otherwise ``if_false`` task.

    ``metrics`` points at a list of ``{"MetricName": ..., "Value": ...}`` records
    (what the metric-check function returns); the metric is looked up by name.
    """

    metrics: Ref
    metric: str
    comparison: str
    threshold: Any  # a number or a Ref (e.g. ParamRef("threshold"))
    if_true: str
    if_false: str

    def __post_init__(self) -> None:
        if self.comparison not in COMPARISONS:
            raise ValueError(f"MetricRule: comparison {self.comparison!r} is not one of {', '.join(COMPARISONS)}")
        if not isinstance(self.threshold, Ref) and not _is_number(self.threshold):
            raise ValueError(f"MetricRule: threshold {self.threshold!r} is not a number")
        if self.if_true == self.if_false:
            raise ValueError("MetricRule: if_true and if_false must be different tasks")

    def __str__(self) -> str:
        return f"{self.metric} {self.comparison} {self.threshold}"

    def serialize(self) -> dict[str, Any]:
        return {
            TAG: "MetricRule",
            "metrics": to_tagged(self.metrics),
            "metric": self.metric,
            "comparison": self.comparison,
            "threshold": to_tagged(self.threshold),
            "if_true": self.if_true,
            "if_false": self.if_false,
        }

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> MetricRule:
        texts = {}
        for key in ("metric", "comparison", "if_true", "if_false"):
            if not isinstance(data.get(key), str):
                raise TaggedValueError(f"MetricRule: {key!r} must be a string, not {data.get(key)!r}")
            texts[key] = data[key]
        if "metrics" not in data or "threshold" not in data:
            raise TaggedValueError("MetricRule: 'metrics' and 'threshold' are required")
        return cls(metrics=from_tagged(data["metrics"]), threshold=from_tagged(data["threshold"]), **texts)

    def evaluate(self, metrics: Any, threshold: Any) -> tuple[bool, float]:
        """(passed, metric value) for resolved metrics and threshold."""
        value = metric_value(metrics, self.metric)
        if not _is_number(threshold):
            raise RuleError(f"threshold {threshold!r} is not a number")
        return COMPARISONS[self.comparison](value, float(threshold)), value


def metric_value(metrics: Any, name: str) -> float:
    if not isinstance(metrics, list):
        raise RuleError(f"expected a list of metrics, got {type(metrics).__name__}")
    for record in metrics:
        if isinstance(record, dict) and record.get("MetricName") == name:
            value = record.get("Value")
            if not _is_number(value):
                raise RuleError(f"metric {name!r} has a non-numeric value {value!r}")
            return float(value)
    names = [r.get("MetricName") for r in metrics if isinstance(r, dict)]
    raise RuleError(f"metric {name!r} not found; the check reported: {names or 'no metrics'}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class MetricChoiceOperator(ExportSerialized, BaseBranchOperator):
    """Follow ``rule.if_true`` when the rule holds, else ``rule.if_false``; the other branch is skipped."""

    ui_color = "#fff3b0"
    export_attributes = ("rule",)

    def __init__(self, *, rule: MetricRule, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rule = rule

    @property
    def references(self) -> list[Ref]:
        return [*iter_refs(self.rule.metrics), *iter_refs(self.rule.threshold)]

    def choose_branch(self, context: Any) -> str:
        rule = self.rule
        try:
            metrics = resolve_value(rule.metrics, context)
            threshold = resolve_value(rule.threshold, context)
            passed, value = rule.evaluate(metrics, threshold)
        except (RuleError, LookupError) as err:
            raise AirflowFailException(f"task {self.task_id!r}: cannot evaluate rule '{rule}': {err}") from None
        verdict = "holds" if passed else "does not hold"
        target = rule.if_true if passed else rule.if_false
        self.log.info(
            "%s = %.6g; rule %s %s %s %s -> %s",
            rule.metric,
            value,
            rule.metric,
            rule.comparison,
            threshold,
            verdict,
            target,
        )
        return target
