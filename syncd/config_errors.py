"""How a config file's problems are put into words: a YAML loader that refuses repeated keys, and
pydantic's validation errors rewritten as ``key.path: what is wrong; what is valid``."""

from __future__ import annotations

import difflib
import re
import types
from datetime import timedelta
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

DURATION_HINT = "write durations like 90s, 5m, 1h, 1d"
# Labels pydantic puts in an error's location for the member of a union that failed.
_UNION_MEMBER = re.compile(
    r"^(constrained-\w+|literal\[.*\]|function-\w+\[.*\]|int|str|float|bool|none|timedelta|list\[.*\]|dict\[.*\])$"
)

# What the patterns of the settings models mean, in words.
_PATTERNS = {
    r"^[a-z][a-z0-9_-]{0,31}$": "a name of lowercase letters, digits, _ and - that starts with a letter (at most 32)",
    r"^https?://": "a URL starting with http:// or https://",
    r"^[a-z0-9][a-z0-9-]*\.myshopify\.com$": "a shop's permanent domain such as example.myshopify.com",
    r"^(\d{4}-(01|04|07|10)|unstable)$": "a Shopify API version such as 2026-10 (YYYY-01, -04, -07 or -10)",
    r"^gid://shopify/Location/\d+$": "a location id such as gid://shopify/Location/123",
    r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$": "a name of letters, digits, spaces, _ . and - (at most 64)",
}

_BOUNDS = {
    "greater_than_equal": ("ge", "at least"),
    "greater_than": ("gt", "more than"),
    "less_than_equal": ("le", "at most"),
    "less_than": ("lt", "less than"),
}


class DuplicateKeyError(yaml.YAMLError):
    """The same key appears twice in one mapping; YAML would silently keep the last."""


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that raises on a repeated key, naming it and both lines."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in first_line:
                raise DuplicateKeyError(
                    f"duplicate key {key!r} at line {line} (first at line {first_line[key]}); "
                    "YAML would keep only the last one"
                )
            first_line[key] = line
        return super().construct_mapping(node, deep=deep)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _candidates(annotation: Any) -> list[Any]:
    """The types an annotation may hold, with Annotated, Optional and unions unwrapped."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _candidates(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return [t for arg in get_args(annotation) for t in _candidates(arg) if t is not type(None)]
    return [annotation]


def _tag_of(model: type[BaseModel]) -> str | None:
    field = model.model_fields.get("type")
    if field is None or get_origin(field.annotation) is not Literal:
        return None
    return str(get_args(field.annotation)[0])


def _step(types_here: list[Any], item: int | str) -> list[Any]:
    found: list[Any] = []
    for tp in types_here:
        origin, args = get_origin(tp), get_args(tp)
        if isinstance(item, int) and origin in (list, tuple) and args:
            found += _candidates(args[0])
        elif isinstance(tp, type) and issubclass(tp, BaseModel):
            if item in tp.model_fields:
                found += _candidates(tp.model_fields[item].annotation)
            elif _tag_of(tp) == item:
                found.append(tp)  # the discriminator tag pydantic adds after a union's position
        elif origin is dict and len(args) == 2:
            found += _candidates(args[1])
    return found


def _types_at(root: type[BaseModel], loc: tuple[int | str, ...]) -> list[Any]:
    here: list[Any] = [root]
    for item in loc:
        if isinstance(item, str) and _UNION_MEMBER.match(item):
            continue
        here = _step(here, item)
    return here


def _key_path(root: type[BaseModel], loc: tuple[int | str, ...]) -> str:
    """``('channels', 0, 'woocommerce', 'policy')`` -> ``channels[0].policy`` (union labels dropped)."""
    parts: list[str] = []
    here: list[Any] = [root]
    for item in loc:
        if isinstance(item, str) and _UNION_MEMBER.match(item):
            continue
        is_tag = isinstance(item, str) and any(
            isinstance(t, type) and issubclass(t, BaseModel) and _tag_of(t) == item and item not in t.model_fields
            for t in here
        )
        here = _step(here, item)
        if is_tag:
            continue
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(f".{item}" if parts else str(item))
    return "".join(parts) or "(top level)"


def _models(types_here: list[Any]) -> list[type[BaseModel]]:
    return [t for t in types_here if isinstance(t, type) and issubclass(t, BaseModel)]


def _message(root: type[BaseModel], error: Any) -> str:
    kind, loc, value, ctx = error["type"], error["loc"], error.get("input"), error.get("ctx") or {}
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        valid = sorted({f for m in _models(_types_at(root, loc[:-1])) for f in m.model_fields})
        close = difflib.get_close_matches(str(loc[-1]), valid, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"unknown key; {hint}valid keys here: {', '.join(valid)}"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tags = sorted({t for m in _models(_types_at(root, loc)) if (t := _tag_of(m))})
        if kind == "union_tag_invalid":
            return f"unknown type {ctx.get('tag')!r}; valid types: {', '.join(tags)}"
        return f"needs a type; valid types: {', '.join(tags)}"
    if kind in ("time_delta_parsing", "time_delta_type"):
        return f"{_show(value)} is not a duration: {DURATION_HINT}"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"must be a whole number (got {_show(value)})"
    if kind in ("float_parsing", "float_type"):
        return f"must be a number (got {_show(value)})"
    if kind in ("bool_parsing", "bool_type"):
        return f"must be true or false (got {_show(value)})"
    if kind in _BOUNDS:
        limit = ctx.get(_BOUNDS[kind][0])
        shown = f"{limit.total_seconds():g}s" if isinstance(limit, timedelta) else limit
        got = f"{value.total_seconds():g}s" if isinstance(value, timedelta) else _show(value)
        return f"must be {_BOUNDS[kind][1]} {shown} (got {got})"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')} (got {_show(value)})"
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern"))
        return f"{_show(value)} is not {_PATTERNS.get(pattern, f'of the form {pattern}')}"
    if kind == "timezone_aware":
        return "needs a time zone, e.g. 2026-11-27T18:00:00Z or 2026-11-27T18:00:00+01:00"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        got = "nothing" if value is None else type(value).__name__
        models = _models(_types_at(root, loc))
        if len(models) > 1:  # a choice of connectors: the type decides the keys
            tags = sorted({t for m in models if (t := _tag_of(m))})
            return f"must be a mapping of keys with a type (got {got}); valid types: {', '.join(tags)}"
        keys = sorted({f for m in models for f in m.model_fields})
        return f"must be a mapping of keys (got {got})" + (f"; keys here: {', '.join(keys)}" if keys else "")
    if kind in ("datetime_parsing", "datetime_from_date_parsing", "datetime_type", "datetime_object_invalid"):
        return f"{_show(value)} is not a date-time: write it like 2026-11-27T18:00:00Z"
    if kind == "string_too_short":
        least = ctx.get("min_length")
        return "must not be empty" if least == 1 else f"needs at least {least} characters"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    if kind == "too_short":
        return f"needs at least {ctx.get('min_length')} item(s) (got {ctx.get('actual_length')})"
    if kind == "string_type":
        return f"must be text (got {type(value).__name__}); quote it if YAML reads it as something else"
    if kind == "list_type":
        return f"must be a list (got {type(value).__name__})"
    return str(error["msg"]).removeprefix("Value error, ")


def explain_errors(root: type[BaseModel], exc: ValidationError) -> list[str]:
    """One ``key.path: message`` line per problem; a union's members' failures become one line."""
    lines: list[str] = []
    by_path: dict[str, list[Any]] = {}
    for error in exc.errors(include_url=False):
        by_path.setdefault(_key_path(root, error["loc"]), []).append(error)
    for path, errors in by_path.items():
        labels = {item for e in errors for item in e["loc"] if isinstance(item, str) and _UNION_MEMBER.match(item)}
        if "literal['auto']" in labels:
            lines.append(f"{path}: must be a whole number ≥ 0 or auto (got {_show(errors[0].get('input'))})")
            continue
        seen: list[str] = []
        for error in errors:
            message = _message(root, error)
            if message not in seen:
                seen.append(message)
        if labels:  # another union: any one of its members would do
            lines.append(f"{path}: {' or '.join(seen)}")
        else:
            lines.extend(f"{path}: {message}" for message in seen)
    return lines
