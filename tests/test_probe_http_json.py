"""HTTP body_json: JMESPath assertions on real responses from the loopback test server;
expressions compiled when the config loads; a body that is not JSON named as such."""

from __future__ import annotations

import json

import pytest
from test_probe_http import serving

from procs import ROUTING_KEY, pdw
from watchdog.config import ConfigError, load
from watchdog.probes import http
from watchdog.probes.base import OptionError, run_once

pytestmark = pytest.mark.timeout(30)

HEALTH = {"status": "UP", "version": "2.4.1", "uptime": 12,
          "checks": [{"name": "db", "status": "UP"}, {"name": "cache", "status": "UP"}]}


def answer(server, body: bytes, content_type: str = "application/json") -> str:
    server.raw = [b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s"
                  % (content_type.encode(), len(body), body)]
    return server.url("/raw")


def run(url: str, assertions: list) -> object:
    return run_once(http.parse({"http": {"url": url, "body_json": assertions}}, "/"), 5)


SPRING = [
    {"path": "status", "equals": "UP"},
    {"path": "checks[?status!='UP'] | length(@)", "equals": 0},
    {"path": "version", "regex": r"^2\."},
]


def test_a_healthy_body_passes_every_assertion():
    with serving() as server:
        result = run(answer(server, json.dumps(HEALTH).encode()), SPRING)
    assert result.ok, result
    assert result.summary.startswith("HTTP 200 in ") and "body_json" not in result.details


@pytest.mark.parametrize(("change", "said", "facts"), [
    ({"status": "DOWN"}, 'body_json status: expected "UP", got "DOWN"',
     {"path": "status", "expected": '"UP"', "actual": '"DOWN"'}),
    ({"checks": [{"name": "db", "status": "DOWN"}]},
     "body_json checks[?status!='UP'] | length(@): expected 0, got 1", None),
    ({"version": "3.0.0"}, 'body_json version: "3.0.0" does not match /^2\\./',
     {"path": "version", "expected": "/^2\\./", "actual": '"3.0.0"'}),
    ({"version": 2.5}, None, None),  # a number is matched as its JSON text, "2.5"
    ({"status": None}, 'body_json status: expected "UP", got null', None),
])
def test_a_failed_assertion_says_path_expected_and_actual(change, said, facts):
    with serving() as server:
        result = run(answer(server, json.dumps({**HEALTH, **change}).encode()), SPRING)
    assert result.ok is (said is None), result
    if said:
        assert result.summary == said
        assert result.details["body_excerpt"].startswith("{")
    if facts:
        assert result.details["body_json"] == facts


def test_equality_is_json_equality():
    body = json.dumps({"n": 1, "f": 1.0, "flag": True, "s": "1", "list": [1, True],
                       "obj": {"a": [1]}}).encode()
    cases = [("n", 1.0, True), ("f", 1, True), ("flag", 1, False), ("n", True, False),
             ("s", 1, False), ("list", [1, True], True), ("list", [1, 1], False),
             ("obj", {"a": [1]}, True), ("obj", {"a": [1], "b": 2}, False),
             ("missing", None, True)]
    with serving() as server:
        url = answer(server, body)
        for path, wanted, ok in cases:
            assert run(url, [{"path": path, "equals": wanted}]).ok is ok, (path, wanted)


def test_a_long_value_is_shown_bounded():
    with serving() as server:
        result = run(answer(server, json.dumps({"msg": "x" * 5000}).encode()),
                     [{"path": "msg", "equals": "short"}])
    assert len(result.summary) < 120 and result.summary.endswith('xxx...')
    assert len(result.details["body_json"]["actual"]) == 80


@pytest.mark.parametrize(("body", "said"), [
    (b"<html>down</html>", "body is not JSON: Expecting value at line 1 column 1 (char 0)"),
    (b'{"status": "UP",\n "x": }', "body is not JSON: Expecting value at line 2 column 7 "
                                   "(char 23)"),
    (b"", "body is not JSON: Expecting value at line 1 column 1 (char 0)"),
    (b'{"a": "\xff"}', "body is not JSON: not UTF-8 text at byte 7"),
])
def test_a_body_that_is_not_json_fails_naming_where(body, said):
    with serving() as server:
        result = run(answer(server, body, "text/html"), SPRING)
    assert not result.ok and result.summary == said


def test_a_runtime_type_error_is_a_failure_not_a_crash():
    with serving() as server:
        result = run(answer(server, b'{"uptime": 12}'), [{"path": "length(uptime)",
                                                          "equals": 2}])
    assert not result.ok
    assert result.summary.startswith("body_json length(uptime): In function length(), "
                                     "invalid type for value: 12")


def test_a_body_over_the_cap_is_not_parsed():
    with serving() as server:
        result = run(server.url("/large"), [{"path": "a", "equals": 1}])
    assert result.summary == "body is longer than 1 MiB: cannot read it as JSON"
    assert result.details["body_truncated"] is True


def test_bad_assertions_are_config_errors():
    with pytest.raises(OptionError) as info:
        http.parse({"http": {"url": "http://127.0.0.1/", "body_json": [
            {"path": "checks[?status"},
            {"path": "a", "equals": 1, "regex": "x"},
            {"path": "b", "regex": "("},
            {"equals": 1},
        ]}}, "/")
    said = dict(info.value.problems)
    assert said["http.body_json[0].path"].startswith("invalid JMESPath expression: ")
    assert said["http.body_json[0]"] == "needs equals: or regex: (what the value must be)"
    assert said["http.body_json[1].regex"] == "use either equals or regex, not both"
    assert said["http.body_json[2].regex"].startswith("invalid regular expression: ")
    assert said["http.body_json[3].path"] == "required: the JMESPath expression to evaluate"
    with pytest.raises(OptionError) as info:
        http.parse({"http": {"url": "http://127.0.0.1/", "body_json": []}}, "/")
    assert info.value.problems == [("http.body_json", "must list at least one assertion")]
    with pytest.raises(OptionError) as info:
        http.parse({"http": {"url": "http://127.0.0.1/", "body_json": {"path": "a"}}}, "/")
    assert info.value.problems == [("http.body_json", "must be a list of {path: ..., "
                                    "equals: ...} or {path: ..., regex: ...}")]


def test_validate_names_file_and_line_and_check_shows_the_result(tmp_path):
    main = tmp_path / "watchdog.yaml"
    with serving() as server:
        url = answer(server, json.dumps({**HEALTH, "status": "DOWN"}).encode())
        text = f"""\
pagerduty: {{routing_key: {ROUTING_KEY}}}
checks:
  - name: health
    http:
      url: {url}
      body_json:
        - {{path: status, equals: UP}}
        - path: "checks[?status!='UP'"
          equals: 0
"""
        main.write_text(text)
        with pytest.raises(ConfigError) as info:
            load(str(main), environ={})
        [error] = info.value.errors
        assert error.startswith(f"{main}:8: checks[0].http.body_json[1].path: invalid JMESPath "
                                "expression: ")
        main.write_text(text.replace("'UP'\"", "'UP'] | length(@)\""))
        ran = pdw("check", str(main))
    assert ran.returncode == 1 and "Traceback" not in ran.stderr, ran
    [row] = [line for line in ran.stdout.splitlines() if line.startswith("health ")]
    assert row.endswith('body_json status: expected "UP", got "DOWN"')


def test_only_a_config_with_body_json_imports_jmespath(tmp_path):
    """jmespath is imported by the first body_json assertion, not by every validate."""
    import subprocess
    import sys

    plain, asserting = tmp_path / "plain.yaml", tmp_path / "json.yaml"
    plain.write_text("checks:\n  - {name: a, http: {url: 'http://127.0.0.1:9/'}}\n")
    asserting.write_text("checks:\n  - name: a\n    http:\n      url: http://127.0.0.1:9/\n"
                         "      body_json: [{path: status, equals: UP}]\n")
    code = ("import sys; from watchdog.config import load; load(sys.argv[1], environ={}); "
            "print('jmespath' in sys.modules)")
    for config, imported in ((plain, "False"), (asserting, "True")):
        done = subprocess.run([sys.executable, "-c", code, str(config)], capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == imported, config
