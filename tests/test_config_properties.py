"""Property tests for the config loader.

(1) Whatever bytes land in a config file, load() ends in a Config or a located
    ConfigError, quickly: never another exception, never an "internal error".
(2) Valid generated check lists round-trip: same names in the same order, and
    fingerprints that depend on each check's definition only, not on its position.
"""

from __future__ import annotations

import os
import tempfile
import types
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watchdog import probes
from watchdog.config import Config, ConfigError, load, parse_duration
from watchdog.config.fields import Section
from watchdog.durations import format_duration

HOSTILE = settings(
    max_examples=200,
    deadline=3000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
ROUND_TRIP = settings(
    max_examples=60,
    deadline=3000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

FRAGMENTS = [
    "checks:", "include:", "pagerduty:", "defaults:", "heartbeat:", "metrics:", "workers: ",
    "state_dir: ", "routing_key: ", "routing_key_file: ", "listen: ", "url: ", "api: v2",
    "- ", "  ", "    ", "\n", "\n  - ", "name: ", "command: ", "http: ", "shell: true", "env: ",
    "cwd: ", "interval: ", "timeout: ", "fail_after: ", "recover_after: ", "severity: ",
    "details: ", "incident_key: ", "retry_interval: ", "30s", "1m30s", "0", "-1", "1e999",
    ".nan", "true", "null", "~", "''", '"', "'", "[", "]", "{", "}", ",", ":", "? ", "&a ",
    "*a", "&b ", "*b", "<<: ", "<<: *a", "!secret ", "!!binary ", "!!set ", "!!python/object ",
    "!env ", "${X}", "${X:-d}", "$${", "${", "${1}", "}", "#", "---", "...", "%YAML 1.1",
    "\t", "\x00", "\x07", "\ufeff", "é", "\u2028", "x.yaml", "*.yaml", "/etc/passwd", "..",
    "https://h/x", "9108", "[::1]:9108", "expect_status: 200", "|", ">", "|-", "a" * 300,
]

ENVIRONS = st.sampled_from([{}, {"X": "1"}, {"X": "${X}"}, {"X": "a: [b"}, {"X": ""}])


def _load_in(folder: str, main: bytes, extra: bytes, environ: dict) -> Config | ConfigError:
    with open(os.path.join(folder, "w.yaml"), "wb") as fh:
        fh.write(main)
    with open(os.path.join(folder, "x.yaml"), "wb") as fh:
        fh.write(extra)
    try:
        return load(os.path.join(folder, "w.yaml"), environ=environ)
    except ConfigError as exc:
        return exc


def _assert_clean(outcome: Config | ConfigError, folder: str) -> None:
    if isinstance(outcome, Config):
        assert all(isinstance(w, str) for w in outcome.warnings)
        return
    assert outcome.errors, "a ConfigError must say what is wrong"
    for message in outcome.errors:
        assert "internal error" not in message, message
        # every error is located: it starts with the file it is about
        assert message.startswith((os.path.join(folder, "w.yaml"), "x.yaml")), message


def _check_hostile(main: bytes, extra: bytes, environ: dict) -> None:
    with tempfile.TemporaryDirectory() as folder:
        _assert_clean(_load_in(folder, main, extra, environ), folder)


soup = st.lists(st.sampled_from(FRAGMENTS), max_size=60).map("".join)


@HOSTILE
@given(main=st.binary(max_size=3000), environ=ENVIRONS)
def test_random_bytes_never_crash(main, environ):
    _check_hostile(main, b"", environ)


@HOSTILE
@given(main=st.text(max_size=2000), extra=st.text(max_size=300), environ=ENVIRONS)
def test_random_text_never_crashes(main, extra, environ):
    _check_hostile(main.encode("utf-8", "surrogatepass"),
                   extra.encode("utf-8", "surrogatepass"), environ)


@HOSTILE
@given(main=soup, extra=soup, environ=ENVIRONS)
def test_yaml_fragment_soup_never_crashes(main, extra, environ):
    _check_hostile(("include: [x.yaml]\n" + main).encode("utf-8", "surrogatepass"),
                   extra.encode("utf-8", "surrogatepass"), environ)


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10, 10**6), st.floats(allow_nan=True),
    st.text(max_size=20), st.sampled_from(["30s", "100ms", "1m", "${X}", "${X:-9}", "critical",
                                           "http://h/", "v1", "9108", "0.0.0.0:1"]),
)
keys = st.sampled_from([
    "checks", "include", "pagerduty", "defaults", "heartbeat", "metrics", "workers", "name",
    "command", "http", "url", "interval", "timeout", "fail_after", "severity", "details",
    "routing_key", "listen", "env", "shell", "incident_key", "retry_interval", "source", "zz",
])
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(keys, inner, max_size=5)),
    max_leaves=25,
)


@HOSTILE
@given(document=st.dictionaries(keys, values, max_size=8), environ=ENVIRONS)
def test_structured_garbage_never_crashes(document, environ):
    text = yaml.safe_dump(document, allow_unicode=True)
    _check_hostile(text.encode("utf-8", "surrogatepass"), b"", environ)


# --------------------------------------------------------------------------- round trip


class _FakeOptions(Section):
    fake: Any


def _fake_build(options: _FakeOptions, base_dir: str) -> object:
    return types.SimpleNamespace(options=options.model_dump())


FAKE_KINDS = {"fake": types.SimpleNamespace(NAME="fake", KEYS=frozenset({"fake"}),
                                            Options=_FakeOptions, build=_fake_build,
                                            OPEN_SOCKETS=0)}

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=1, max_size=30)
durations = st.one_of(st.integers(1, 86400), st.sampled_from(["500ms", "30s", "1m30s", "2h"]))
# printable text without "$" (that would be a ${reference}): YAML line-break characters
# such as U+0085 don't survive a YAML round trip whoever writes them
plain = st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters="$")
texts = st.text(alphabet=plain, max_size=20)
check_bodies = st.fixed_dictionaries(
    {"fake": st.one_of(texts, st.dictionaries(texts, st.integers(), max_size=3))},
    optional={
        "interval": durations,
        "timeout": durations,
        "fail_after": st.integers(1, 10),
        "recover_after": st.integers(1, 10),
        "severity": st.sampled_from(["critical", "error", "warning", "info"]),
        "details": st.dictionaries(texts, texts, max_size=3),
    },
)
check_lists = st.lists(st.tuples(names, check_bodies), min_size=1, max_size=15,
                       unique_by=lambda pair: pair[0])


def _load_checks(folder: str, checks: list[dict]) -> list:
    path = os.path.join(folder, "w.yaml")
    with open(path, "w", encoding="utf-8") as fh:
        yaml.safe_dump({"pagerduty": {"source": "s"}, "checks": checks}, fh, allow_unicode=True)
    return list(load(path, environ={}).checks)


@ROUND_TRIP
@given(pairs=check_lists, data=st.data())
def test_round_trip_names_order_and_fingerprints(monkeypatch, pairs, data):
    monkeypatch.setattr(probes, "KINDS", FAKE_KINDS)
    checks = [{"name": name, **body} for name, body in pairs]
    with tempfile.TemporaryDirectory() as folder:
        loaded = _load_checks(folder, checks)
        assert [c.name for c in loaded] == [c["name"] for c in checks]
        for check, source in zip(loaded, checks, strict=True):
            assert check.probe.options == {"fake": source["fake"]}
            assert check.details == source.get("details", {})
            assert check.interval == parse_duration(source.get("interval", 30))
        prints = {c.name: c.fingerprint for c in loaded}
        assert len(set(prints.values())) == len(prints)  # names differ, so fingerprints do

        shuffled = data.draw(st.permutations(checks))
        assert {c.name: c.fingerprint for c in _load_checks(folder, shuffled)} == prints

        index = data.draw(st.integers(0, len(checks) - 1))
        changed = [dict(c) for c in checks]
        changed[index]["fail_after"] = changed[index].get("fail_after", 3) % 10 + 1
        after = {c.name: c.fingerprint for c in _load_checks(folder, changed)}
        for name, fingerprint in prints.items():
            assert (fingerprint != after[name]) == (name == checks[index]["name"])


@settings(max_examples=200, deadline=None)
@given(parts=st.tuples(*[st.integers(0, 3)] * 4, st.integers(0, 999)))
def test_duration_units_add_up(parts):
    days, hours, minutes, seconds, millis = parts
    text = "".join(f"{n}{unit}" for n, unit in zip(parts, ("d", "h", "m", "s", "ms"),
                                                   strict=True) if n)
    total = days * 86400 + hours * 3600 + minutes * 60 + seconds + millis / 1000
    if total >= 0.1:
        assert parse_duration(text) == round(total, 3)
        assert parse_duration(format_duration(parse_duration(text))) == parse_duration(text)


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.text(max_size=50))
def test_environment_values_are_never_parsed_as_yaml(monkeypatch, value):
    monkeypatch.setattr(probes, "KINDS", FAKE_KINDS)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "w.yaml")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write('checks:\n  - name: a\n    fake: "${V}"\n    details: {v: "<${V}>"}\n')
        (check,) = load(path, environ={"V": value}).checks
        assert check.probe.options == {"fake": value}
        assert check.details == {"v": f"<{value}>"}
