"""Text to look for, as the `file` and `process` kinds take it: a plain string (found as
is, case-sensitive) or `{regex: ...}` (a Python regular expression, searched), compiled
once when the config loads."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import PlainValidator, WithJsonSchema

from watchdog.config.fields import Says, problem

_SHOWN = 80  # characters of a pattern quoted in a summary


class TextMatch:
    """A string or a compiled regular expression; search() tells whether text has it."""

    __slots__ = ("text", "regex")

    def __init__(self, text: str | None = None, regex: re.Pattern | None = None):
        self.text = text
        self.regex = regex

    def __repr__(self) -> str:
        return f"TextMatch({self.describe()})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TextMatch) and self.describe() == other.describe()

    def __hash__(self) -> int:
        return hash(self.describe())

    def search(self, text: str) -> bool:
        if self.regex is not None:
            return self.regex.search(text) is not None
        return self.text in text

    def describe(self) -> str:
        """'"status":"ok"' or /^ok$/, shortened to fit a summary."""
        if self.regex is not None:
            pattern = self.regex.pattern
            return f"/{pattern if len(pattern) <= _SHOWN else pattern[:_SHOWN - 3] + '...'}/"
        text = self.text or ""
        return repr(text if len(text) <= _SHOWN else text[:_SHOWN - 3] + "...")


def _text_match(value: Any) -> TextMatch:
    if isinstance(value, TextMatch):
        return value
    if isinstance(value, str):
        if not value:
            raise problem("must not be empty")
        return TextMatch(text=value)
    if isinstance(value, dict) and set(value) == {"regex"}:
        pattern = value["regex"]
        if not isinstance(pattern, str) or not pattern:
            raise problem("regex: must be a non-empty regular expression string")
        try:
            return TextMatch(regex=re.compile(pattern))
        except re.error as exc:
            raise problem(f"regex: invalid regular expression: {exc}; quote it in YAML") \
                from None
    raise problem("must be a string (found as is) or {regex: '...'}")


Match = Annotated[
    Any, PlainValidator(_text_match),
    WithJsonSchema({"anyOf": [
        {"type": "string", "minLength": 1},
        {"type": "object", "properties": {"regex": {
            "type": "string", "minLength": 1,
            "description": "a Python regular expression, searched (not anchored)"}},
         "required": ["regex"], "additionalProperties": False},
    ]}),
    Says("must be a string (found as is) or {regex: '...'}", null_is_unset=True),
]
"""A plain string, or {regex: ...}: a TextMatch once validated."""
