"""The model layer on its own: pydantic's errors said our way, at the path as written."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Annotated, Any

import pytest
from pydantic import Field, ValidationError

from watchdog.config import ConfigError, load
from watchdog.config import checks as checks_module
from watchdog.config.errors import translate
from watchdog.config.fields import (
    EnvText,
    Flag,
    Says,
    Section,
    env_int,
    one_or_many,
    problems,
    validate,
)
from watchdog.model import Check
from watchdog.probes import http
from watchdog.probes.base import OptionError


class Inner(Section):
    """A nested mapping with a rule."""

    low: int = 0
    high: int = 10

    @classmethod
    def rules(cls, data: dict[str, Any]):
        if isinstance(data.get("low"), int) and isinstance(data.get("high"), int) \
                and data["low"] > data["high"]:
            yield ("low",), "must not be above high"


class Outer(Section):
    """A mapping of every shape the translator walks."""

    count: env_int(1, 5, Says("must be 1..5, not {value!r}")) = 1
    flag: Flag = True
    codes: one_or_many(Annotated[int, Says("each must be a code, not {type}")],
                       Says("must be codes", too_short="must list one"), min_length=1) = [1]
    names: dict[Annotated[str, Field(pattern="^[a-z]+$"), Says("lower-case names only")],
                Annotated[str, Says("must be text")]] = {}
    inner: Inner | None = None
    needed: Annotated[str, Says("must be text", missing="needed is a must", at_parent=True)]


def said(data: dict) -> list[tuple[tuple, str]]:
    with pytest.raises(ValidationError) as info:
        validate(Outer, data)
    return translate(info.value, Outer, data, prefix=("top",))


def test_each_error_is_our_sentence_at_the_path_as_written():
    assert said({"count": 9, "flag": "yes", "codes": "x", "names": {"Ab": 1},
                 "inner": {"low": "a"}, "needed": "n", "extra": 1}) == [
        (("top", "count"), "must be 1..5, not 9"),
        (("top", "flag"), "must be true or false"),
        (("top", "codes"), "each must be a code, not a string"),  # one value, a list of one
        (("top", "names", "Ab"), "lower-case names only"),  # the key's own "[key]" dropped
        (("top", "names", "Ab"), "must be text"),
        (("top", "inner", "low"), "input should be a valid integer"),  # no Says: pydantic's
        (("top", "extra"), "unknown key 'extra' — allowed here: count, flag, codes, names, "
                           "inner, needed"),
    ]


def test_missing_rules_null_and_env_digits():
    assert said({"codes": [], "inner": {"low": 7, "high": 3}, "flag": None}) == [
        (("top", "inner", "low"), "must not be above high"),  # a nested section's rule
        (("top", "codes"), "must list one"),
        (("top",), "needed is a must"),  # at the parent, as it says
    ]
    value = validate(Outer, {"count": EnvText(" 4 "), "needed": "n", "flag": None})
    assert (value.count, value.flag) == (4, True)  # null here means the default
    assert said({"count": "4", "needed": "n"}) == [(("top", "count"), "must be 1..5, not '4'")]


def test_messages_keep_their_braces():
    error = problems([((), "write ${NAME} or {runbook: x}", None)])
    assert error.errors()[0]["msg"] == "write ${NAME} or {runbook: x}"


def test_an_aliased_key_is_named_as_written():
    with pytest.raises(OptionError) as info:
        http.parse({"http": {"url": "http://h/", "jsn": {}}}, "/")
    assert info.value.problems == [("http.jsn", "unknown key 'jsn' — did you mean 'json'?")]
    with pytest.raises(OptionError) as info:
        http.parse({"http": {"url": "http://h/", "json": {1, 2}}}, "/")
    assert info.value.problems[0][0] == "http.json"
    assert info.value.problems[0][1].startswith("cannot be sent as JSON")


def test_fingerprints_keep_the_formula_the_store_compares(tmp_path):
    """sha256 of the canonical JSON of the definition as written (after ${VAR}): a change
    here would make every check of an upgraded runner look edited."""
    (tmp_path / "w.yaml").write_text(
        "pagerduty: {source: fp-host}\n"
        "defaults: {interval: 1m, details: {team: a}}\n"
        "checks:\n"
        "  - name: web\n"
        "    http: {url: 'http://127.0.0.1:1/health', expect_status: [200, 204]}\n"
        "    timeout: 5s\n"
    )
    (check,) = load(str(tmp_path / "w.yaml"), environ={}).checks
    definition = {
        "name": "web", "kind": "http", "base_dir": str(tmp_path), "source": "fp-host",
        "options": {"http": {"url": "http://127.0.0.1:1/health", "expect_status": [200, 204]}},
        "incident_key": "pd-watchdog/fp-host/web", "interval": 60.0, "timeout": 5.0,
        "fail_after": 3, "recover_after": 2, "retry_interval": None, "severity": "critical",
        "details": {"team": "a"},
    }
    canonical = json.dumps(definition, sort_keys=True, separators=(",", ":"))
    assert check.fingerprint == hashlib.sha256(canonical.encode()).hexdigest()


def test_a_fingerprint_is_made_when_first_read_and_kept(tmp_path, monkeypatch):
    """validate never reads fingerprints, so loading makes none; the first read makes it
    (from the definition as loaded), later reads return the same str without rehashing."""
    (tmp_path / "w.yaml").write_text(
        "checks:\n"
        "  - {name: a, http: {url: 'http://127.0.0.1:1/'}, depends_on: [b]}\n"
        "  - {name: b, command: 'true', component: db}\n"
    )
    made = []
    real = checks_module._fingerprint
    monkeypatch.setattr(checks_module, "_fingerprint", lambda *a: made.append(a[0]) or real(*a))
    config = load(str(tmp_path / "w.yaml"), environ={})
    assert made == []
    first = [check.fingerprint for check in config.checks]
    assert made == ["a", "b"] and all(len(f) == 64 for f in first)
    assert [check.fingerprint for check in config.checks] == first and made == ["a", "b"]
    assert dataclasses.replace(config.checks[0], interval=1.0).fingerprint == first[0]


def test_threads_reading_a_fingerprint_at_once_get_the_same_str():
    import threading

    values = {f.name: None for f in dataclasses.fields(Check)}
    checks = [Check.of_fields(**{**values, "name": str(i), "fingerprint": lambda i=i: f"f{i}"})
              for i in range(2000)]
    start, seen = threading.Barrier(4), []

    def read():
        start.wait()
        seen.append([check.fingerprint for check in checks])

    threads = [threading.Thread(target=read) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(seen) == 4 and all(got == [f"f{i}" for i in range(2000)] for got in seen)


def test_a_check_given_its_fingerprint_as_a_str_keeps_it():
    check = Check(name="a", kind="fake", probe=None, fingerprint="f1")
    assert check.fingerprint == "f1" and Check(name="b", kind="k", probe=None).fingerprint == ""
    with pytest.raises(dataclasses.FrozenInstanceError):
        check.fingerprint = "f2"  # type: ignore[misc]


def test_a_check_of_its_fields_is_the_check_its_init_makes():
    values = {f.name: f"v-{f.name}" for f in dataclasses.fields(Check)}
    made = Check.of_fields(**values)
    assert made == Check(**values) and made.fingerprint == "v-fingerprint"
    assert Check.of_fields(**{**values, "fingerprint": lambda: "late"}).fingerprint == "late"
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.name = "b"  # type: ignore[misc]
    with pytest.raises(TypeError, match=r"\['origin'\]"):
        Check.of_fields(**{k: v for k, v in values.items() if k != "origin"})
    with pytest.raises(TypeError, match=r"\['colour'\]"):
        Check.of_fields(**values, colour="red")


def test_checks_that_need_the_file_system_are_said_with_the_others(tmp_path):
    """A short routing key beside a bad api, a missing CA bundle beside a bad method: one
    run names them all (the key and the bundle are not left for a second run)."""
    (tmp_path / "w.yaml").write_text(
        "pagerduty: {routing_key: abcdef, api: v3}\n"
        "checks:\n"
        "  - name: web\n"
        "    http: {url: 'https://h/', method: 3, ca_file: missing.pem}\n"
    )
    with pytest.raises(ConfigError) as info:
        load(str(tmp_path / "w.yaml"), environ={})
    assert [error.split(" — ")[0].split(": ", 1)[1] for error in info.value.errors] == [
        "pagerduty.routing_key: must be 32 characters (got 6, ending in ...ef)",
        "pagerduty.api: must be v2 or v1, not 'v3'",
        "checks[0].http.method: must be an HTTP method name such as GET, HEAD or POST",
        f"checks[0].http.ca_file: file not found: {tmp_path / 'missing.pem'}",
    ]
