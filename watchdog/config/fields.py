"""The vocabulary the config models are written in: one base class, field types, markers.

A field says everything about itself once: its type and range (pydantic), its default,
its help (`description`), our sentence for a bad value (`Says`), and whether a change
needs a restart (`RESTART`). The JSON Schema, the docs table, the error messages and the
runner's restart-only list are all read from there.
"""

from __future__ import annotations

import functools
import re
import typing
from collections.abc import Callable, Iterable
from typing import Annotated, Any, ClassVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from watchdog import durations

PROBLEM = "pdw"  # the pydantic error type of every message we wrote ourselves
RELOAD = "x-reload"  # JSON Schema keyword: "restart" when a change needs a restart
RESTART: dict[str, Any] = {RELOAD: "restart"}
DOC_DEFAULT = "x-default"  # JSON Schema keyword: the default, in words, when it is computed
DOC_TYPE = "x-type"  # JSON Schema keyword: the type, in words, when JSON's types say too little
DOC_RANGE = "x-range"  # JSON Schema keyword: the range, in words
DEF_NAME = "x-def"  # schema.py moves a subschema marked so to $defs, under this name...
DEF_ABOUT = "x-about"  # ...with this as its description (a field's own would replace it)
ENV_REF: dict[str, Any] = {
    "type": "string",
    "pattern": r"\$\{",
    DEF_NAME: "EnvReference",
    DEF_ABOUT: "a ${VAR} reference, checked once expanded",
}
NO_CONTROL = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]*$"
NO_NUL = r"^[^\x00]*$"
_INT_TEXT = re.compile(r"[-+]?[0-9]+")


class EnvText(str):
    """A string that ${VAR} expansion produced. Our own numeric settings accept its digits
    (`workers: ${WORKERS}`); a literal "12" stays a string, as YAML wrote it."""

    __slots__ = ()


class Says:
    """Our sentence for a value pydantic refuses at this place, instead of pydantic's.

    `text` may use {value!r} (the value as written), {type} ("a number") and {keys} (the
    keys of the mapping expected here); `by_type` overrides it per pydantic error type.
    `missing` is said when the key is absent, at the parent's path if `at_parent`;
    `null_is_unset` makes `key: null` mean the key is absent (its default, or `missing`).
    """

    __slots__ = ("text", "missing", "at_parent", "null_is_unset", "by_type")

    def __init__(self, text: str, *, missing: str | None = None, at_parent: bool = False,
                 null_is_unset: bool = False, **by_type: str):
        self.text = text
        self.missing = missing
        self.at_parent = at_parent
        self.null_is_unset = null_is_unset
        self.by_type = by_type

    def __repr__(self) -> str:
        return f"Says({self.text!r})"

    def sentence(self, error_type: str) -> str:
        return self.by_type.get(error_type, self.text)


class EnvAlternative:
    """Schema marker: a value written as a ${VAR} reference is also fine (checked later)."""

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: Any) -> dict[str, Any]:
        return {"anyOf": [handler(core_schema), ENV_REF]}

    def __repr__(self) -> str:
        return "EnvAlternative()"


# what validate() does before pydantic, per Section: None (nothing), or (rules, null-means-
# unset keys, nested lists of sections, nested sections); read from here, not from the
# class, as an attribute of a pydantic model class costs three times a plain one
_PLANS: dict[type, tuple[Any, tuple[str, ...], tuple, tuple] | None] = {}


class Section(BaseModel):
    """Base of every config model: strict types, unknown keys refused, immutable.

    `rules` are the checks that involve several keys; they read the mapping as written
    and validate() reports them together with the field errors, so one run lists every
    problem. validate() is the way in: it also drops `key: null` where `Says` makes null
    mean "not set", and does both for the sections nested in this one.
    """

    # defer_build: a validator is built when a model is first validated on its own, so the
    # sections only ever validated inside another (pagerduty:, defaults:, an http: request)
    # never get one of their own, and `schema` alone pays for the schema-only models
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, defer_build=True)
    _null_unset: ClassVar[frozenset[str]] = frozenset()
    _nested: ClassVar[dict[str, type[Section]]] = {}
    _nested_lists: ClassVar[dict[str, type[Section]]] = {}  # lists of sections (maintenance)
    _has_rules: ClassVar[bool] = False
    _plain: ClassVar[bool] = True  # nothing for validate() to do before pydantic

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls._null_unset = frozenset(
            name for name, field in cls.model_fields.items()
            if (says := says_of(field.metadata)) is not None and says.null_is_unset
        )
        cls._nested = {}
        cls._nested_lists = {}
        for name, field in cls.model_fields.items():
            inner, in_list = _section_in(field.annotation)
            if inner is not None and not inner._plain:
                (cls._nested_lists if in_list else cls._nested)[field.alias or name] = inner
        cls._has_rules = cls.rules.__func__ is not Section.rules.__func__
        cls._plain = not (cls._has_rules or cls._null_unset or cls._nested
                          or cls._nested_lists)
        _PLANS[cls] = None if cls._plain else (
            cls.rules if cls._has_rules else None, tuple(cls._null_unset),
            tuple(cls._nested_lists.items()), tuple(cls._nested.items()))

    @classmethod
    def rules(cls, data: dict[str, Any]) -> Iterable[tuple[tuple, str]]:
        """(path under this mapping, message) for each cross-key problem in `data`."""
        return ()


def _section_in(hint: Any) -> tuple[type[Section] | None, bool]:
    """(the Section a field holds, whether in a list): `X | None` and `list[X] | None`,
    Annotated or not; (None, False) for anything else."""
    members = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    if len(members) != 1:
        return None, False
    member = members[0]
    if typing.get_origin(member) is Annotated:
        member = typing.get_args(member)[0]
    in_list = typing.get_origin(member) is list
    if in_list:
        member = typing.get_args(member)[0]
    if isinstance(member, type) and issubclass(member, Section):
        return member, in_list
    return None, False


def validate(model: Any, data: Any, context: dict[str, Any] | None = None) -> Any:
    """`data` validated as `model` (a Section, or any type): the value, or a ValidationError
    with every problem, the sections' rules among them. `context` reaches the validators
    (`base_dir`: the folder of the file the data comes from, for paths in it)."""
    if model not in _PLANS:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return _adapter(model).validate_python(data, context=context)
        return model.model_validate(data, context=context)
    prepared, found = _prepare(model, data)
    try:  # what model_validate does, without its Python frame (once per section a check)
        value = model.__pydantic_validator__.validate_python(prepared, context=context)
    except ValidationError as exc:
        if not found:
            raise
        raise problems(found + [(e["loc"], e, e["input"]) for e in exc.errors()]) from None
    if found:
        raise problems(found)
    return value


def validate_sections(model: Any, parts: dict[str, tuple[Any, Any]],
                      context: dict[str, Any] | None = None) -> Any:
    """`model` (fields: field -> (Section, data)) in one pass, each part prepared as its
    own section; None on any problem: the caller validate()s each part for the messages."""
    data = {}
    for key, (section, value) in parts.items():
        prepared, found = _prepare(section, value)
        if found:
            return None
        data[key] = prepared
    try:
        return model.__pydantic_validator__.validate_python(data, context=context)
    except ValidationError:
        return None


def _prepare(model: type[BaseModel], data: Any) -> tuple[Any, list[tuple[tuple, Any, Any]]]:
    """`data` with null-means-unset keys dropped, and the rules' problems, for `model` and
    the sections nested in it (copied only where something is dropped)."""
    plan = _PLANS.get(model)
    if plan is None or not isinstance(data, dict):
        return data, []
    rules, null_unset, nested_lists, nested = plan
    found: list[tuple[tuple, Any, Any]] = []
    if rules is not None:
        found = [(loc, message, data) for loc, message in rules(data)]
    if null_unset and None in data.values():
        for key in null_unset:
            if data.get(key, 0) is None:
                data = {k: v for k, v in data.items() if v is not None or k not in null_unset}
                break
    for key, inner in nested_lists:
        items = data.get(key)
        if isinstance(items, list):
            prepared_items = []
            for index, item in enumerate(items):
                prepared, more = _prepare(inner, item)
                prepared_items.append(prepared)
                found += [((key, index, *loc), message, at) for loc, message, at in more]
            if any(p is not i for p, i in zip(prepared_items, items, strict=True)):
                data = {**data, key: prepared_items}
    for key, inner in nested:
        value = data.get(key)
        if isinstance(value, dict):
            prepared, more = _prepare(inner, value)
            if prepared is not value:
                data = {**data, key: prepared}
            found += [((key, *loc), message, at) for loc, message, at in more]
    return data, found


@functools.cache
def _adapter(hint: Any) -> TypeAdapter:
    return TypeAdapter(hint)


def says_of(metadata: Iterable[Any]) -> Says | None:
    for item in metadata:
        if isinstance(item, Says):
            return item
    return None


def regex_text(pattern: str) -> str:
    """A validator: the pattern, if it compiles as a Python regular expression."""
    try:
        re.compile(pattern)
    except re.error as exc:
        raise problem(f"invalid regular expression: {exc}; quote it in YAML") from None
    return pattern


def problem(message: str) -> PydanticCustomError:
    """One of our messages, to raise from a validator; given no context, pydantic keeps
    its braces as they are (`${VAR}`, `{runbook: ...}`)."""
    return PydanticCustomError(PROBLEM, message)


def problems(found: list[tuple[tuple, Any, Any]]) -> ValidationError:
    """A ValidationError of several (path, message or pydantic error dict, input) at once;
    raised in a validator, pydantic puts each under the validator's own path."""
    details: list[InitErrorDetails] = []
    for loc, what, value in found:
        if isinstance(what, str):
            details.append(InitErrorDetails(type=problem(what), loc=tuple(loc), input=value))
        elif what["type"] == PROBLEM:
            details.append(InitErrorDetails(type=problem(what["msg"]), loc=tuple(loc),
                                            input=value))
        else:
            details.append(InitErrorDetails(type=what["type"], loc=tuple(loc), input=value,
                                            ctx=what.get("ctx", {})))
    return ValidationError.from_exception_data("config", details)


# --------------------------------------------------------------------------- durations

DURATION_PATTERN = (
    r"^\s*(?:[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
    r"|(?:(?:\d+(?:\.\d+)?|\.\d+)d)?(?:(?:\d+(?:\.\d+)?|\.\d+)h)?(?:(?:\d+(?:\.\d+)?|\.\d+)m(?!s))?"
    r"(?:(?:\d+(?:\.\d+)?|\.\d+)s)?(?:(?:\d+(?:\.\d+)?|\.\d+)ms)?)\s*$"
)
_durations: dict[tuple[type, Any, float], float] = {}  # 10,000 checks say "30s" 10,000 times


def _duration_parser(minimum: float) -> Callable[[Any], float]:
    def parse(value: Any) -> float:
        key = (type(value), value, minimum) if isinstance(value, (str, int, float)) else None
        seconds = _durations.get(key) if key is not None else None
        if seconds is not None:
            return seconds
        try:
            seconds = durations.parse_duration(value, minimum)
        except ValueError as exc:
            raise problem(str(exc)) from None
        if key is not None and len(_durations) < 4096:
            _durations[key] = seconds
        return seconds

    return parse


def duration_schema(minimum: float, name: str) -> dict[str, Any]:
    """The JSON Schema of a duration of at least `minimum` seconds, as a named $def."""
    least = durations.format_duration(minimum)
    return {
        "anyOf": [
            {"type": "number", "exclusiveMinimum": 0},
            {"type": "string", "pattern": DURATION_PATTERN},
            ENV_REF,
        ],
        DOC_TYPE: "duration",
        DOC_RANGE: f"{least} to 365d",
        DEF_NAME: name,
        DEF_ABOUT: f"a duration such as 500ms, 30s, 5m, 1h, 1m30s or a number of seconds; "
                   f"{least} to 365d",
    }


Duration = Annotated[
    float, BeforeValidator(_duration_parser(durations.MIN_SECONDS)),
    WithJsonSchema(duration_schema(durations.MIN_SECONDS, "Duration")),
]
"""Seconds, written "30s", "1m30s", "500ms" or as a number; at least 100ms (a faster
check is a busy loop), at most 365d."""

ShortDuration = Annotated[
    float, BeforeValidator(_duration_parser(0.001)),
    WithJsonSchema(duration_schema(0.001, "ShortDuration")),
]
"""A duration of at least 1ms: a latency limit may be 50ms."""


# --------------------------------------------------------------------------- scalars


def _env_int(value: Any) -> Any:
    if isinstance(value, EnvText) and _INT_TEXT.fullmatch(value.strip()):
        return int(value)
    return value


def env_int(ge: int, le: int, says: Says) -> Any:
    """An integer from `ge` to `le`; also the digits a ${VAR} expanded to (expansions are
    strings, and `workers: ${WORKERS}` must work)."""
    return Annotated[int, Field(ge=ge, le=le), BeforeValidator(_env_int), EnvAlternative(), says]


def _one_or_many(single: type | tuple[type, ...]) -> Callable[[Any], Any]:
    def wrap(value: Any) -> Any:
        return [value] if isinstance(value, single) and not isinstance(value, list) else value

    return wrap


class _OneOrManySchema:
    def __get_pydantic_json_schema__(self, core_schema: Any, handler: Any) -> dict[str, Any]:
        schema = handler(core_schema)
        return {"anyOf": [schema["items"], schema]} if "items" in schema else schema


def one_or_many(item: Any, says: Says, *, min_length: int = 0,
                single: type | tuple[type, ...] = object) -> Any:
    """A list of `item`, or one `item` meaning a list of one (`expect_status: 200`); only
    values of type `single` are taken as one item (anything else must be a list)."""
    return Annotated[list[item], Field(min_length=min_length),
                     BeforeValidator(_one_or_many(single)), _OneOrManySchema(), says]


def _scalar_text(value: Any) -> Any:
    """A number as text; anything else unchanged (bool too: `yes` turning into "True"
    would surprise; it is refused as not a string)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return value


ScalarText = Annotated[str, BeforeValidator(_scalar_text, json_schema_input_type=str | float)]
"""Text, or a number taken as its text (`X-Retries: 3`)."""

Flag = Annotated[bool, Says("must be true or false", null_is_unset=True)]
"""true or false; null means the default."""
