"""A pydantic validation error of the policy file, as one line naming the key.

`environments.production.timeouts: must be one of off, notice, warning, error (got 'loud')`:
the first problem (and how many more there are), the key path as the file writes it, and a
suggestion for a misspelt key.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from bot.policy.checklist import ENVIRONMENTS
from bot.policy.fields import did_you_mean, show_value
from bot.policy.model import Policy, StrictModel


def describe_errors(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    key, message = _describe(errors[0])
    more = len(errors) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{key}: {message}{suffix}" if key else f"{message}{suffix}"


def _describe(error: ErrorDetails) -> tuple[str, str]:
    loc = tuple(error["loc"])
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    if "[key]" in loc:  # a bad mapping key: report it at the mapping
        parent = loc[: loc.index("[key]") - 1]
        if kind == "value_error":
            return _key_path(parent), str(ctx.get("error"))
        return _key_path(parent), f"keys must be strings (got {show_value(value)})"
    if kind == "extra_forbidden":
        return _key_path(loc[:-1]), _unknown_key(loc[:-1], str(loc[-1]))
    return _key_path(loc), _message(kind, value, ctx, error["msg"])


def _message(kind: str, value: object, ctx: dict[str, Any], fallback: str) -> str:
    got = f" (got {show_value(value)})"
    if kind == "value_error":
        return str(ctx.get("error"))
    if kind == "literal_error":
        found = re.findall(r"'([^']*)'|(\d+)", str(ctx.get("expected", "")))
        allowed = [quoted or number for quoted, number in found]
        one_of = allowed[0] if len(allowed) == 1 else f"one of {', '.join(allowed)}"
        return f"must be {one_of}{got}"
    simple = {
        "dict_type": "must be a mapping",
        "model_type": "must be a mapping",
        "model_attributes_type": "must be a mapping",
        "list_type": "must be a list",
        "string_type": "must be a string",
        "int_type": "must be a whole number",
        "int_parsing": "must be a whole number",
        "int_from_float": "must be a whole number",
        "bool_type": "must be true or false",
        "bool_parsing": "must be true or false",
        "string_too_short": "must not be empty",
        "string_too_long": f"must be at most {ctx.get('max_length')} characters",
        "greater_than_equal": f"must be at least {ctx.get('ge')}",
        "less_than_equal": f"must be at most {ctx.get('le')}",
    }
    if kind in simple:
        return simple[kind] + got
    return fallback[:1].lower() + fallback[1:] + got


def _unknown_key(parent: tuple[int | str, ...], key: str) -> str:
    model = _model_at(parent)
    if model is None:
        return f"unknown key {key!r}"
    if model.unknown_key_noun == "environment":
        return f"unknown environment {key!r} (must be one of {', '.join(ENVIRONMENTS)})"
    allowed = list(model.model_fields)
    hint = did_you_mean(key, allowed) or f" (expected one of {', '.join(allowed)})"
    return f"unknown key {key!r}{hint}"


def _model_at(loc: tuple[int | str, ...]) -> type[StrictModel] | None:
    model: type[StrictModel] = Policy
    for segment in loc:
        field = model.model_fields.get(str(segment))
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, StrictModel)):
            return None
        model = annotation
    return model


def _key_path(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for segment in loc:
        if isinstance(segment, int):
            parts.append(f"[{segment}]")
        else:
            text = segment if re.fullmatch(r"[A-Za-z0-9_-]+", segment) else repr(segment)
            parts.append(("." if parts else "") + text)
    return "".join(parts)
