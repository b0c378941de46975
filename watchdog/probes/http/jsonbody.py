"""`body_json`: JMESPath assertions on a JSON response body. The expressions are compiled
when the config loads (a bad one is a config error with file:line); a run parses the body
once and evaluates each."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Annotated, Any

from pydantic import AfterValidator, Field, StringConstraints

from watchdog.config.fields import Says, Section, problem, regex_text

_SHOWN = 80  # characters of a value shown in a summary


def _expression(text: str) -> str:
    import jmespath  # on first use (~5 ms): configs without body_json never import it
    from jmespath.exceptions import JMESPathError

    try:
        jmespath.compile(text)
    except JMESPathError as exc:  # its text ends with the expression and a caret line
        said = str(exc).split("\n", 1)[0].removesuffix(", for expression:").rstrip(":")
        said = said.removeprefix("Invalid jmespath expression: ")
        raise problem(f"invalid JMESPath expression: {said}") from None
    return text


class JsonAssertion(Section):
    """One assertion on the JSON body: a JMESPath expression and what its value must be
    (`equals` a YAML value, or a string that matches `regex`)."""

    path: Annotated[
        str, StringConstraints(min_length=1), AfterValidator(_expression),
        Says("must be a JMESPath expression such as status or checks[0].state",
             missing="required: the JMESPath expression to evaluate"),
    ] = Field(description="a JMESPath expression (jmespath.org), e.g. status, "
              "checks[?status!='UP'] | length(@)")
    equals: Any = Field(None, description="the value it must have (YAML value compared as "
                        "JSON: 1 equals 1.0, true is not 1)")
    regex: Annotated[
        str, StringConstraints(min_length=1), AfterValidator(regex_text),
        Says("must be a non-empty regular expression string"),
    ] | None = Field(None, description="a regular expression the value must match (a "
                     "non-string value is matched as its JSON text)")

    @classmethod
    def rules(cls, data: dict[str, Any]) -> Iterable[tuple[tuple, str]]:
        if "equals" in data and "regex" in data:
            yield ("regex",), "use either equals or regex, not both"
        elif "equals" not in data and "regex" not in data:
            yield (), "needs equals: or regex: (what the value must be)"


JsonAssertions = Annotated[
    list[JsonAssertion], Field(min_length=1),
    Says("must be a list of {{path: ..., equals: ...}} or {{path: ..., regex: ...}}",
         too_short="must list at least one assertion"),
]


class JsonCheck:
    """One compiled assertion."""

    __slots__ = ("path", "expression", "equals", "regex")

    def __init__(self, path: str, equals: Any = None, regex: str | None = None):
        import jmespath

        self.path = path
        self.expression = jmespath.compile(path)
        self.equals = equals
        self.regex = None if regex is None else re.compile(regex)

    @classmethod
    def of(cls, spec: JsonAssertion) -> JsonCheck:
        return cls(spec.path, spec.equals, spec.regex)


def failed_assertion(checks: tuple[JsonCheck, ...], body: bytes, truncated: bool,
                     details: dict[str, Any]) -> str | None:
    """The first assertion that does not hold, in words (and in details["body_json"]);
    None when all do."""
    from jmespath.exceptions import JMESPathError  # imported by the checks' compile

    if truncated:
        return "body is longer than 1 MiB: cannot read it as JSON"
    try:
        document = json.loads(body)
    except json.JSONDecodeError as exc:
        return f"body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno} " \
               f"(char {exc.pos})"
    except UnicodeDecodeError as exc:
        return f"body is not JSON: not UTF-8 text at byte {exc.start}"
    for check in checks:
        try:
            value = check.expression.search(document)
        except JMESPathError as exc:  # a function given the wrong type: length(5)
            return f"body_json {check.path}: {' '.join(str(exc).split())[:200]}"
        if check.regex is not None:
            text = value if isinstance(value, str) else _json(value)
            if check.regex.search(text):
                continue
            expected = f"/{check.regex.pattern}/"
            summary = f"body_json {check.path}: {_shown(value)} does not match {expected}"
        elif _same(value, check.equals):
            continue
        else:
            expected = _shown(check.equals)
            summary = f"body_json {check.path}: expected {expected}, got {_shown(value)}"
        details["body_json"] = {"path": check.path, "expected": expected,
                                "actual": _shown(value)}
        return summary
    return None


def _same(found: Any, wanted: Any) -> bool:
    """Equal as JSON values: 1 == 1.0, but true is not 1 and "1" is not 1."""
    if isinstance(found, bool) or isinstance(wanted, bool):
        return type(found) is type(wanted) and found == wanted
    if isinstance(found, (int, float)) and isinstance(wanted, (int, float)):
        return found == wanted
    if isinstance(found, list) and isinstance(wanted, list):
        return len(found) == len(wanted) and all(map(_same, found, wanted))
    if isinstance(found, dict) and isinstance(wanted, dict):
        return found.keys() == wanted.keys() and all(_same(found[k], wanted[k]) for k in found)
    return type(found) is type(wanted) and found == wanted


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _shown(value: Any) -> str:
    text = _json(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN - 3] + "..."
