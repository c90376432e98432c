"""The few Jinja forms stock operators use that have an exact Step Functions meaning.

``{{ params.NAME }}`` / ``{{ params['NAME'] }}`` → ParamRef;
``{{ ti.xcom_pull(task_ids='T')['F'] }}`` (also ``task_instance``, ``["F"]["G"]``) → ResultRef;
Airflow's schedule-time values (``ds``, ``ds_nodash``, ``ts``, ``ts_nodash``, ``ts_nodash_with_tz``,
``logical_date``, ``data_interval_start``, ``data_interval_end``, ``X.strftime('<a format of
retraining.refs.TIME_FORMATS>')``) → LogicalDate; ``run_id`` → RunId;
``{{ task_instance.xcom_pull(task_ids='T', dag_id='D', key='K') }}`` (how Airflow serializes ``T.output`` /
``T.output["K"]``, also written by hand) → XComArgRef, resolved by the translator;
text around such expressions → Format. Anything else is free-form Jinja and is refused.
"""

from __future__ import annotations

import re
from typing import Any

from exporters.translate import (
    DERIVED_XCOM_ARG,
    DERIVED_XCOM_ARG_TEXT,
    TranslationError,
    xcom_arg_from_text,
    xcom_arg_ref,
)
from retraining.refs import RUN_TIMES, TIME_FORMATS, Format, LogicalDate, ParamRef, Ref, ResultRef, RunId

_EXPR = re.compile(r"\{\{(.*?)\}\}", re.S)
_PARAM = re.compile(r"""^params(?:\.([A-Za-z_][A-Za-z0-9_]*)|\[\s*['"]([^'"]+)['"]\s*\])$""")
_XCOM = re.compile(
    r"""^(?:ti|task_instance)\.xcom_pull\(\s*(?:task_ids\s*=\s*)?['"]([^'"]+)['"]\s*(?:,\s*key\s*=\s*['"]return_value['"]\s*)?\)((?:\[\s*['"][^'"]+['"]\s*\])+)$"""
)
_STRFTIME = re.compile(r"""^([a-z_]+)\.strftime\(\s*['"]([^'"]+)['"]\s*\)$""")
# Airflow's context names of a run's time → the LogicalDate that renders the same text.
_TIME_NAMES = {
    "ds": LogicalDate("%Y-%m-%d"),
    "ds_nodash": LogicalDate("%Y%m%d"),
    "ts": LogicalDate("iso"),
    "ts_nodash": LogicalDate("%Y%m%dT%H%M%S"),
    "ts_nodash_with_tz": LogicalDate("%Y%m%dT%H%M%S%z"),
    **{name: LogicalDate("str", of=name) for name in RUN_TIMES},
}
_SUBSCRIPT = re.compile(r"""\[\s*['"]([^'"]+)['"]\s*\]""")


class JinjaTranslationError(ValueError):
    pass


def _expression(text: str) -> Ref:
    body = text.strip()
    if "|" in body:
        raise JinjaTranslationError(f"Jinja filter in '{{{{{text}}}}}' has no Step Functions equivalent")
    m = _PARAM.match(body)
    if m:
        return ParamRef(m.group(1) or m.group(2))
    if body in _TIME_NAMES:
        return _TIME_NAMES[body]
    if body == "run_id":
        return RunId()
    m = _STRFTIME.match(body)
    if m and m.group(1) in RUN_TIMES:
        if m.group(2) not in TIME_FORMATS:
            raise JinjaTranslationError(
                f"'{{{{{text}}}}}': format {m.group(2)!r} is not one Step Functions builds "
                f"({', '.join(f for f in TIME_FORMATS if f.startswith('%'))})"
            )
        return LogicalDate(m.group(2), of=m.group(1))
    m = _XCOM.match(body)
    if m:
        return ResultRef(m.group(1), *_SUBSCRIPT.findall(m.group(2)))
    xcom_arg = xcom_arg_from_text("{{" + text + "}}")
    if xcom_arg is not None:
        return xcom_arg
    raise JinjaTranslationError(f"free-form Jinja '{{{{{text}}}}}' cannot be translated")


def jinja_to_ref(value: Any) -> Any:
    """Translate templated strings inside ``value`` (dicts/lists walked); literals unchanged."""
    if isinstance(value, Ref):
        return value
    if isinstance(value, dict):
        return {k: jinja_to_ref(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jinja_to_ref(v) for v in value]
    if not isinstance(value, str):
        return _xcom_arg_or_literal(value)
    if DERIVED_XCOM_ARG_TEXT.match(value):
        raise JinjaTranslationError(f"{value!r} is how Airflow stores a derived XComArg: {DERIVED_XCOM_ARG}")
    if "{%" in value or "{#" in value:
        raise JinjaTranslationError(f"Jinja statements in {value!r} cannot be translated")
    matches = list(_EXPR.finditer(value))
    if not matches:
        return value
    if len(matches) == 1 and matches[0].span() == (0, len(value)):
        return _expression(matches[0].group(1))
    refs = [_expression(m.group(1)) for m in matches]
    template = _EXPR.sub("{}", value.replace("{}", ""))
    if template.count("{}") != len(refs) or "{}" in value:
        raise JinjaTranslationError(f"cannot build a format string from {value!r}")
    return Format(template, *refs)


def _xcom_arg_or_literal(value: Any) -> Any:
    """An XComArg (``task.output``, ``task.output["key"]``) → its reference; any other literal unchanged."""
    try:
        return xcom_arg_ref(value) or value
    except TranslationError as err:
        raise JinjaTranslationError(str(err)) from None


def as_rendered(value: Any, task: Any) -> Any:
    """Literal text as Airflow's Jinja rendering leaves it: newlines normalised, one trailing newline dropped.

    Every string in a template field goes through Jinja, even without ``{{``; Jinja's defaults
    (``keep_trailing_newline=False``, ``newline_sequence="\\n"``) apply unless the task's DAG changes
    them (``jinja_environment_kwargs``: Airflow's serialized DAG does not keep it, so it is read from the
    parsed DAG when at hand; the UI view assumes the defaults).
    """
    parsed = getattr(task, "parsed", None) or task
    options = getattr(parsed.dag, "jinja_environment_kwargs", None) or {}
    return _rendered(value, options)


def _rendered(value: Any, options: dict[str, Any]) -> Any:
    if isinstance(value, str):
        text = value.replace("\r\n", "\n").replace("\r", "\n")
        if not options.get("keep_trailing_newline", False) and text.endswith("\n"):
            text = text[:-1]
        return text.replace("\n", options.get("newline_sequence", "\n"))
    if isinstance(value, dict):
        return {k: _rendered(v, options) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rendered(v, options) for v in value]
    return value
