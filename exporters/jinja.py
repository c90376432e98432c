"""The few Jinja forms stock operators use that have an exact Step Functions meaning.

``{{ params.NAME }}`` / ``{{ params['NAME'] }}`` → ParamRef;
``{{ ti.xcom_pull(task_ids='T')['F'] }}`` (also ``task_instance``, ``["F"]["G"]``) → ResultRef;
text around such expressions → Format. Anything else is free-form Jinja and is refused.
"""

from __future__ import annotations

import re
from typing import Any

from retraining.refs import Format, ParamRef, Ref, ResultRef

_EXPR = re.compile(r"\{\{(.*?)\}\}", re.S)
_PARAM = re.compile(r"""^params(?:\.([A-Za-z_][A-Za-z0-9_]*)|\[\s*['"]([^'"]+)['"]\s*\])$""")
_XCOM = re.compile(
    r"""^(?:ti|task_instance)\.xcom_pull\(\s*(?:task_ids\s*=\s*)?['"]([^'"]+)['"]\s*(?:,\s*key\s*=\s*['"]return_value['"]\s*)?\)((?:\[\s*['"][^'"]+['"]\s*\])+)$"""
)
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
    m = _XCOM.match(body)
    if m:
        return ResultRef(m.group(1), *_SUBSCRIPT.findall(m.group(2)))
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
        if type(value).__name__.endswith("XComArg"):
            raise JinjaTranslationError("an XComArg (task.output) is not a named field of the upstream result")
        return value
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
