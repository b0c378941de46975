"""The types of a program to run, shared by the command probe's keys and by `diagnose:` /
`remediate:` (config/remediation.py): the command as a string or argv list, and the
environment's names and values."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import PlainValidator, StringConstraints

from watchdog.config.fields import NO_NUL, Says, ScalarText, problem, problems


def _command(value: Any) -> str | list[str]:
    """The program: a string (split like a shell, none started) or an argv list."""
    if isinstance(value, str):
        if "\0" in value:
            raise problem("must not contain a NUL character")
        if not value.strip():
            raise problem("must not be empty: give the program to run")
        return value
    if not isinstance(value, list):
        raise problem("must be a string or a list of strings")
    if not value:
        raise problem("must not be empty: give the program to run")
    found: list[tuple[tuple, Any, Any]] = []
    for i, item in enumerate(value):
        if not isinstance(item, str):
            found.append(((i,), "must be a string; quote it in YAML (e.g. '5')", item))
        elif "\0" in item:
            found.append(((i,), "must not contain a NUL character", item))
    if isinstance(value[0], str) and not value[0]:
        found.append(((0,), "the program name must not be empty", value[0]))
    if found:
        raise problems(found)
    return value


Command = Annotated[
    str | list[str],
    PlainValidator(_command, json_schema_input_type=str | list[str]),
    Says("must be a string or a list of strings",
         missing="required: the program to run, as a string or argv list", null_is_unset=True),
]
EnvName = Annotated[
    str, StringConstraints(min_length=1, pattern=r"^[^=\x00]*$"),
    Says("names must be non-empty text without '=' or NUL"),
]
EnvValue = Annotated[
    ScalarText, StringConstraints(pattern=NO_NUL),
    Says("must be a string or number; quote it (write '' for empty)",
         string_pattern_mismatch="must not contain a NUL character"),
]
