"""Pydantic's errors, said our way: the path the user wrote and one sentence of ours each.

pydantic names where a value failed (`loc`) and why (`type`); the sentence comes from the
field's `Says` (see fields.py), found by walking the model along `loc`. Unknown keys get
a did-you-mean, missing ones the field's `missing` sentence. The YAML layer then turns
the path into file:line.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any

from pydantic import BaseModel, ValidationError

from watchdog.config.fields import PROBLEM, Says, says_of

MAPPING_TYPES = frozenset({"model_type", "model_attributes_type", "dict_type"})


def did_you_mean(key: str, allowed: Iterable[str]) -> str:
    allowed = list(allowed)
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    return "allowed here: " + ", ".join(allowed)


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (int, float)):
        return "a number"
    return type(value).__name__


def fmt_path(path: Iterable[Any]) -> str:
    """("checks", 3, "http", "url") -> "checks[3].http.url"."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


class Place:
    """What the model expects at one path: the type there and the field's `Says`."""

    __slots__ = ("hint", "says")

    def __init__(self, hint: Any, says: Says | None):
        self.hint = hint
        self.says = says

    @property
    def model(self) -> type[BaseModel] | None:
        hint = unwrap(self.hint)[0]
        return hint if isinstance(hint, type) and issubclass(hint, BaseModel) else None


def place_at(model: Any, loc: Iterable[Any]) -> Place | None:
    """Walk `model` along `loc` through fields, list items and mapping keys or values."""
    hint: Any = model
    says: Says | None = None
    parts = list(loc)
    for index, part in enumerate(parts):
        if part == "[key]":
            continue  # taken with the key before it
        hint, _ = unwrap(hint)
        says = None
        origin = typing.get_origin(hint)
        if isinstance(hint, type) and issubclass(hint, BaseModel):
            field = _field(hint, part)
            if field is None:
                return None
            hint, says = field.annotation, says_of(field.metadata)
        elif origin is list and isinstance(part, int):
            hint = typing.get_args(hint)[0]
        elif origin is dict and isinstance(part, str):
            is_key = parts[index + 1:index + 2] == ["[key]"]
            hint = typing.get_args(hint)[0 if is_key else 1]
        else:
            return None
    hint, found = unwrap(hint)
    return Place(hint, says or found)


def _field(model: type[BaseModel], key: Any) -> Any:
    """The field written `key` (its alias, if it has one)."""
    for name, field in model.model_fields.items():
        if (field.alias or name) == key:
            return field
    return None


def unwrap(hint: Any) -> tuple[Any, Says | None]:
    """Annotated and Optional taken off `hint`, and the `Says` found on the way."""
    says = None
    while True:
        if typing.get_origin(hint) is typing.Annotated:
            says = says_of(hint.__metadata__) or says
            hint = typing.get_args(hint)[0]
            continue
        if typing.get_origin(hint) in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(hint) if a is not type(None)]
            if len(members) == 1:
                hint = members[0]
                continue
        return hint, says


def keys_of(model: type[BaseModel] | None) -> list[str]:
    """The keys a mapping of `model` may have, as written (aliases)."""
    if model is None:
        return []
    return [field.alias or name for name, field in model.model_fields.items()]


def translate(
    exc: ValidationError,
    model: Any,
    data: Any,
    *,
    prefix: tuple = (),
    unknown_note: Callable[[tuple], str] = lambda loc: "",
) -> list[tuple[tuple, str]]:
    """(path as written, message) for each error of validating `data` as `model` (a model
    class, or any type). `prefix` is where `data` sits in the file (e.g. ("checks", 3));
    `unknown_note(loc)` may add a word on an unknown key at `loc`."""
    out = []
    for error in exc.errors(include_url=False):
        loc, message = _one(error, model, data, unknown_note)
        out.append((prefix + loc, message))
    return out


def _one(error: dict, model: Any, data: Any,
         unknown_note: Callable[[tuple], str]) -> tuple[tuple, str]:
    kind, loc, value = error["type"], tuple(error["loc"]), error["input"]
    if kind == PROBLEM:
        return _written(loc, data), error["msg"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        parent = place_at(model, loc[:-1])
        allowed = keys_of(parent.model if parent else None)
        return loc, f"unknown key {key!r}{unknown_note(loc)} — {did_you_mean(key, allowed)}"
    place = place_at(model, loc)
    says = place.says if place else None
    if kind == "missing":
        name = str(loc[-1])
        if says is not None and says.missing:
            return (loc[:-1] if says.at_parent else loc), says.missing
        return loc[:-1], f"{name} is required"
    loc = _written(loc, data)
    if says is None and kind in MAPPING_TYPES and place is not None and place.model:
        return loc, f"must be a mapping ({', '.join(keys_of(place.model))})"
    if says is None:
        text = error["msg"]
        return loc, text[:1].lower() + text[1:]
    keys = ", ".join(keys_of(place.model if place else None))
    return loc, says.sentence(kind).format(value=value, type=type_name(value), keys=keys)


def _written(loc: tuple, data: Any) -> tuple:
    """The longest start of `loc` that exists in `data`: pydantic's own steps (a mapping
    key's "[key]", the [0] of a single value taken as a list of one) are not the user's."""
    out = []
    for part in loc:
        in_mapping = isinstance(data, dict) and part in data
        if in_mapping or isinstance(data, list) and isinstance(part, int) \
                and 0 <= part < len(data):
            data = data[part]
        else:
            break
        out.append(part)
    return tuple(out)
