"""Config loading: every documented rule and every error path, with exact file:line."""

from __future__ import annotations

import os
import textwrap
import types
from typing import Any

import pytest

from watchdog import probes
from watchdog.config import (
    DRY_RUN_WARNING,
    Config,
    ConfigError,
    Heartbeat,
    PagerDutySettings,
    default_incident_key,
    load,
    parse_duration,
)
from watchdog.config.fields import Section
from watchdog.durations import format_duration
from watchdog.probes.base import OptionError

KEY = "0123456789abcdef0123456789abcdef"  # 32 characters, the shape of a routing key
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class FakeProbe:
    def __init__(self, options: dict, base_dir: str):
        self.options = options
        self.base_dir = base_dir

    def run(self, timeout: float):  # pragma: no cover - never run here
        raise AssertionError


class FakeOptions(Section):
    fake: Any
    fake_level: Any = None


class OtherOptions(Section):
    other: Any
    other_opt: Any = None


def fake_build(options: Section, base_dir: str) -> FakeProbe:
    """Deterministic probe kind: `fake: {bad: ...}` and `fake: explode` exercise failures."""
    written = options.model_dump(exclude_unset=True)
    spec = written.get("fake", written.get("other"))
    if spec == "explode":
        raise RuntimeError("boom")
    if isinstance(spec, dict):
        problems = [(f"fake.{key}", "is bad") for key in spec if key.startswith("bad")]
        if "deep" in spec:
            problems.append(("fake.deep.missing.leaf", "no such leaf"))
        if problems:
            raise OptionError(problems)
    if written.get("fake_level") == "wrong":
        raise OptionError([("fake_level", "must be low or high")])
    return FakeProbe(written, base_dir)


def fake_kind(options: type[Section]) -> types.SimpleNamespace:
    name = next(iter(options.model_fields))
    return types.SimpleNamespace(NAME=name, KEYS=frozenset(options.model_fields),
                                 Options=options, build=fake_build, OPEN_SOCKETS=0)


FAKE = fake_kind(FakeOptions)
OTHER = fake_kind(OtherOptions)


@pytest.fixture
def kinds(monkeypatch):
    """Only deterministic kinds registered: fake (+ fake_level) and other (+ other_opt)."""
    monkeypatch.setattr(probes, "KINDS", {"fake": FAKE, "other": OTHER})


@pytest.fixture
def cfg(tmp_path, monkeypatch, kinds):
    """write(name, text) -> path; run in tmp_path so messages name files relatively."""
    monkeypatch.chdir(tmp_path)

    def write(name: str, text: str, mode: int = 0o600) -> str:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        path.chmod(mode)
        return name

    return write


def errors_of(path: str, environ: dict | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(path, environ=environ or {})
    return info.value.errors


def one_error(path: str, environ: dict | None = None) -> str:
    errors = errors_of(path, environ)
    assert len(errors) == 1, errors
    return errors[0]


# --------------------------------------------------------------------------- basics


def test_minimal_config_defaults(cfg, tmp_path, monkeypatch):
    monkeypatch.setattr("socket.gethostname", lambda: "host-1")
    cfg("w.yaml", """
        checks:
          - name: a
            fake: x
    """)
    config = load("w.yaml", environ={})
    assert isinstance(config, Config)
    assert config.path == str(tmp_path / "w.yaml")
    assert config.files == (str(tmp_path / "w.yaml"),)
    assert config.pagerduty == PagerDutySettings("", "v2", "https://events.pagerduty.com", "host-1")
    assert config.dry_run
    assert config.warnings == (DRY_RUN_WARNING,)
    assert config.state_dir == str(tmp_path / ".pd-watchdog")
    assert config.heartbeat is None and config.metrics_listen is None
    assert config.workers == 64
    assert config.secrets == frozenset()
    (check,) = config.checks
    assert (check.name, check.kind, check.origin) == ("a", "fake", "w.yaml:3")
    assert (check.interval, check.timeout, check.fail_after, check.recover_after) == (30, 10, 3, 2)
    assert check.retry_interval is None and check.severity == "critical"
    assert check.source == "host-1"
    assert check.incident_key == "pd-watchdog/host-1/a"
    assert check.details == {}
    assert isinstance(check.probe, FakeProbe)
    assert check.probe.options == {"fake": "x"} and check.probe.base_dir == str(tmp_path)
    assert len(check.fingerprint) == 64


def test_full_config(cfg, tmp_path):
    cfg("w.yaml", f"""
        pagerduty:
          routing_key: {KEY}
          api: v1
          url: https://events.eu.pagerduty.com/
          source: web-01
        state_dir: state
        workers: 8
        heartbeat: {{url: "https://hc-ping.com/abc", interval: 2m}}
        metrics: {{listen: "0.0.0.0:9200"}}
        defaults:
          interval: 1m
          timeout: 5s
          fail_after: 2
          recover_after: 4
          retry_interval: 10s
          severity: warning
          details: {{team: ops, tier: 2}}
        checks:
          - name: web
            fake: x
            fake_level: high
            interval: 15s
            severity: info
            incident_key: web-down
            details: {{tier: 1, runbook: "https://wiki/x"}}
          - name: db
            other: y
            retry_interval: null
    """)
    config = load("w.yaml", environ={})
    assert config.pagerduty == PagerDutySettings(KEY, "v1", "https://events.eu.pagerduty.com",
                                                 "web-01")
    assert not config.dry_run and config.warnings == ()
    assert config.state_dir == str(tmp_path / "state")
    assert config.workers == 8
    assert config.heartbeat == Heartbeat("https://hc-ping.com/abc", 120.0, 10.0)
    assert config.metrics_listen == ("0.0.0.0", 9200)
    assert config.secrets == {KEY}
    web, db = config.checks
    assert web.probe.options == {"fake": "x", "fake_level": "high"}
    assert (web.interval, web.timeout, web.fail_after, web.recover_after) == (15, 5, 2, 4)
    assert (web.retry_interval, web.severity, web.incident_key) == (10, "info", "web-down")
    assert web.details == {"team": "ops", "tier": 1, "runbook": "https://wiki/x"}
    assert web.source == db.source == "web-01"
    assert (db.kind, db.interval, db.retry_interval, db.severity) == ("other", 60, None, "warning")
    assert db.incident_key == "pd-watchdog/web-01/db"
    assert db.details == {"team": "ops", "tier": 2}


def test_config_error_str_joins_errors():
    error = ConfigError(["a:1: x: bad", "b:2: y: worse"])
    assert str(error) == "a:1: x: bad\nb:2: y: worse"
    assert ConfigError("only").errors == ["only"]


def test_empty_file_is_a_config_without_checks(cfg):
    cfg("w.yaml", "# nothing yet\n")
    config = load("w.yaml", environ={})
    assert config.checks == ()
    assert config.warnings == (DRY_RUN_WARNING, "w.yaml: no checks defined — add some under "
                               "`checks:`")


def test_missing_main_file(cfg):
    assert one_error("nope.yaml").startswith("nope.yaml: cannot read: No such file")


def test_main_path_is_a_directory(cfg, tmp_path):
    (tmp_path / "d").mkdir()
    assert one_error("d").startswith("d: is a directory")


# --------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5), ("100ms", 0.1), ("30s", 30), ("5m", 300), ("1h", 3600), ("1d", 86400),
        ("1m30s", 90), ("1h30m", 5400), ("1d2h3m4s5ms", 93784.005), ("1.5h", 5400),
        (" 30s ", 30), ("30", 30), ("0.25", 0.25), (15, 15), (0.5, 0.5), (0.1, 0.1),
    ],
)
def test_parse_duration_valid(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-5s", "must be positive"), (-1, "must be positive"), ("-1", "must be positive"),
        (0, "must be positive"), ("0s", "must be positive"), ("50ms", "at least 100ms"),
        (0.05, "at least 100ms"), ("abc", "not a duration"), ("", "not a duration"),
        ("30s1m", "not a duration"), ("1 m", "not a duration"), ("5min", "not a duration"),
        ("1M", "not a duration"), ("nan", "not a duration"), (float("nan"), "not a duration"),
        (float("inf"), "at most 365d"), ("400d", "at most 365d"), (10**400, "at most 365d"),
        (True, "must be a duration"), (None, "must be a duration"), ([1], "must be a duration"),
    ],
)
def test_parse_duration_invalid(value, message):
    with pytest.raises(ValueError, match=message):
        parse_duration(value)


def test_format_duration():
    assert [format_duration(s) for s in (0.5, 30, 90, 3600, 2.5, 86461)] == [
        "500ms", "30s", "1m30s", "1h", "2.5s", "1d1m1s"]


# --------------------------------------------------------------------------- incident keys


def test_default_incident_key():
    assert default_incident_key("web-01", "api") == "pd-watchdog/web-01/api"
    long_name = "n" * 250
    key = default_incident_key("web-01", long_name)
    assert key.startswith("pd-watchdog/") and len(key) == len("pd-watchdog/") + 64
    assert key == default_incident_key("web-01", long_name)
    assert key != default_incident_key("web-02", long_name)
    at_limit = "x" * (255 - len("pd-watchdog/s/"))
    assert default_incident_key("s", at_limit) == f"pd-watchdog/s/{at_limit}"


def test_explicit_incident_key_validation(cfg):
    cfg("w.yaml", f"""
        checks:
          - name: a
            fake: x
            incident_key: ""
          - name: b
            fake: x
            incident_key: {"k" * 256}
          - name: c
            fake: x
            incident_key: 12
    """)
    errors = errors_of("w.yaml")
    assert [e.split(" — ")[0] for e in errors] == [
        "w.yaml:5: checks[0].incident_key: must be a string of 1..255 characters (or leave it "
        "out for the default pd-watchdog/<source>/<name>)",
        "w.yaml:8: checks[1].incident_key: must be a string of 1..255 characters (or leave it "
        "out for the default pd-watchdog/<source>/<name>)",
        "w.yaml:11: checks[2].incident_key: must be a string of 1..255 characters (or leave it "
        "out for the default pd-watchdog/<source>/<name>)",
    ]


def test_shared_incident_key_warns(cfg):
    cfg("w.yaml", """
        checks:
          - {name: a, fake: x, incident_key: same}
          - {name: b, fake: x, incident_key: same}
    """)
    config = load("w.yaml", environ={})
    assert config.warnings[1].startswith("w.yaml:4: checks[1].incident_key: check 'a' uses the "
                                         "same incident key")


# --------------------------------------------------------------------------- unknown keys


def test_unknown_keys_at_every_level(cfg):
    cfg("w.yaml", """
        pagerdutty: {}
        pagerduty:
          routingkey: x
        heartbeat:
          url: https://hc/x
          intervall: 1m
        metrics:
          listn: 9108
        defaults:
          timout: 5s
          incident_key: x
        checks:
          - name: a
            fake: x
            fail_afterr: 2
            zzz: 1
    """)
    assert errors_of("w.yaml") == [
        "w.yaml:2: pagerdutty: unknown key 'pagerdutty' — did you mean 'pagerduty'?",
        "w.yaml:4: pagerduty.routingkey: unknown key 'routingkey' — did you mean 'routing_key'?",
        "w.yaml:7: heartbeat.intervall: unknown key 'intervall' — did you mean 'interval'?",
        "w.yaml:8: metrics: listen is required — e.g. listen: \"127.0.0.1:9108\" (or remove "
        "metrics:)",
        "w.yaml:9: metrics.listn: unknown key 'listn' — did you mean 'listen'?",
        "w.yaml:11: defaults.timout: unknown key 'timout' — did you mean 'timeout'?",
        "w.yaml:12: defaults.incident_key: unknown key 'incident_key' (it is per check, not a "
        "default) — allowed here: interval, timeout, fail_after, recover_after, retry_interval, "
        "severity, details, repeat_interval, flapping, diagnose, remediate, component, group, "
        "class, links, images, runbook",
        "w.yaml:16: checks[0].fail_afterr: unknown key 'fail_afterr' — did you mean "
        "'fail_after'?",
        "w.yaml:17: checks[0].zzz: unknown key 'zzz' — allowed here: name, interval, timeout, "
        "fail_after, recover_after, retry_interval, severity, details, repeat_interval, "
        "flapping, diagnose, remediate, component, group, class, links, images, runbook, "
        "depends_on, incident_key, fake, "
        "fake_level, other, other_opt",
    ]


def test_duplicate_key_in_a_mapping(cfg):
    cfg("w.yaml", """
        checks:
          - name: a
            fake: x
        checks:
          - name: b
            fake: x
    """)
    assert one_error("w.yaml") == (
        "w.yaml:5: checks: duplicate key (first at line 2) — remove one; YAML would silently "
        "keep only the last")


# --------------------------------------------------------------------------- environment


def test_env_expansion(cfg):
    cfg("w.yaml", """
        pagerduty:
          source: ${HOST_LABEL}
        checks:
          - name: ${PREFIX:-app}-check
            fake: "${A}|${UNSET:-dflt}|${EMPTY:-e}|${EMPTY}|$${LITERAL}|$$HOME|${E2:-}"
            interval: ${INTERVAL:-45s}
            fail_after: ${FAILS}
            details:
              structure: ${INJECT}
    """)
    environ = {"HOST_LABEL": "h1", "A": "a", "EMPTY": "", "FAILS": "4",
               "INJECT": "x: 1\n- [y]\n&z *z"}
    (check,) = load("w.yaml", environ=environ).checks
    assert check.name == "app-check" and check.source == "h1"
    assert check.probe.options["fake"] == "a|dflt|e||${LITERAL}|$$HOME|"
    assert check.interval == 45 and check.fail_after == 4
    assert check.details["structure"] == "x: 1\n- [y]\n&z *z"  # a string, never YAML


def test_unset_variable_is_an_error_naming_it(cfg):
    cfg("w.yaml", """
        checks:
          - name: a
            fake: x
            details:
              owner: ${OWNER}
    """)
    assert one_error("w.yaml") == (
        "w.yaml:6: checks[0].details.owner: environment variable OWNER is not set — export it, "
        "or write ${OWNER:-default} (${OWNER:-} allows empty)")


def test_bad_references(cfg):
    cfg("w.yaml", """
        checks:
          - name: a
            fake: "${1BAD}"
          - name: b
            fake: "${OPEN"
    """)
    first, second = errors_of("w.yaml")
    assert first.startswith("w.yaml:4: checks[0].fake: bad reference ${1BAD} — write ${NAME}")
    assert second.startswith("w.yaml:6: checks[1].fake: unterminated ${")


def test_environ_defaults_to_os_environ(cfg, monkeypatch):
    monkeypatch.setenv("PDW_TEST_NAME", "from-os")
    cfg("w.yaml", "checks: [{name: '${PDW_TEST_NAME}', fake: x}]\n")
    assert load("w.yaml").checks[0].name == "from-os"


def test_numbers_from_the_environment_are_strings_except_own_int_settings(cfg):
    cfg("w.yaml", """
        workers: ${WORKERS}
        checks:
          - {name: a, fake: "${N}", recover_after: "${N}", timeout: "${N}"}
    """)
    config = load("w.yaml", environ={"WORKERS": "12", "N": "5"})
    check = config.checks[0]
    assert config.workers == 12
    assert check.probe.options["fake"] == "5" and check.recover_after == 5 and check.timeout == 5


def test_quoted_digits_without_reference_are_not_ints(cfg):
    cfg("w.yaml", 'workers: "12"\ncheckz: 1\n')
    assert errors_of("w.yaml")[0].startswith(
        "w.yaml:1: workers: must be an integer 1..1024, not '12'")


# --------------------------------------------------------------------------- secrets


def test_secret_tag_values_go_into_secrets(cfg):
    cfg("w.yaml", """
        checks:
          - name: a
            fake:
              headers:
                Authorization: !secret "Bearer ${TOKEN}"
                X-Short: !secret abc
                X-Plain: not-a-secret
              password: !secret hunter22
    """)
    config = load("w.yaml", environ={"TOKEN": "t0k3n-value"})
    assert config.secrets == {"Bearer t0k3n-value", "t0k3n-value", "hunter22"}
    headers = config.checks[0].probe.options["fake"]["headers"]
    assert headers["Authorization"] == "Bearer t0k3n-value" and headers["X-Short"] == "abc"


def test_secret_on_a_mapping_and_unknown_tags(cfg):
    cfg("w.yaml", """
        checks:
          - name: a
            fake: !secret {a: b}
          - name: b
            fake: !env HOME
          - name: c
            fake: !!binary aGVsbG8=
    """)
    first, second, third = errors_of("w.yaml")
    assert first.startswith("w.yaml:4: checks[0].fake: !secret marks one string value")
    assert second == "w.yaml:6: checks[1].fake: unsupported tag !env — only !secret is supported"
    assert third.startswith("w.yaml:8: checks[2].fake: unsupported tag tag:yaml.org,2002:binary")


# --------------------------------------------------------------------------- routing key


def test_no_routing_key_is_dry_run(cfg):
    cfg("w.yaml", "pagerduty:\n  routing_key: ${PAGERDUTY_ROUTING_KEY:-}\n")
    config = load("w.yaml", environ={})
    assert config.dry_run and config.pagerduty.routing_key == ""
    assert DRY_RUN_WARNING in config.warnings
    cfg("w2.yaml", "pagerduty:\n  routing_key: ''\n")
    assert load("w2.yaml", environ={}).dry_run


def test_routing_key_from_env_is_secret_without_permission_warning(cfg):
    cfg("w.yaml", "pagerduty:\n  routing_key: ${PAGERDUTY_ROUTING_KEY}\n", mode=0o644)
    config = load("w.yaml", environ={"PAGERDUTY_ROUTING_KEY": KEY + "\n"})
    assert config.pagerduty.routing_key == KEY and not config.dry_run
    assert config.secrets == {KEY}
    assert not any("chmod" in w for w in config.warnings)


def test_unset_routing_key_variable_is_an_error(cfg):
    cfg("w.yaml", "pagerduty:\n  routing_key: ${PAGERDUTY_ROUTING_KEY}\n")
    assert one_error("w.yaml").startswith(
        "w.yaml:2: pagerduty.routing_key: environment variable PAGERDUTY_ROUTING_KEY is not set")


def test_wrong_length_routing_key_shows_at_most_four_characters(cfg):
    secret = "supersecretvalue-abcd"
    cfg("w.yaml", f"pagerduty:\n  routing_key: {secret}\n")
    error = one_error("w.yaml")
    assert error.startswith("w.yaml:2: pagerduty.routing_key: must be 32 characters (got 21, "
                            "ending in ...abcd)")
    assert "supersecret" not in error and "-abcd" not in error
    cfg("w2.yaml", "pagerduty:\n  routing_key: abc\n")
    error = one_error("w2.yaml")
    assert "(got 3, ending in ...c)" in error and "abc" not in error


def test_literal_routing_key_in_readable_file_warns(cfg):
    cfg("w.yaml", f"pagerduty:\n  routing_key: {KEY}\n", mode=0o644)
    config = load("w.yaml", environ={})
    assert config.warnings == (
        "w.yaml:2: pagerduty.routing_key: routing key written literally in a file readable by "
        "group/others (mode 0644) — chmod 600 w.yaml, or use ${PAGERDUTY_ROUTING_KEY} or "
        "routing_key_file", "w.yaml: no checks defined — add some under `checks:`")
    cfg("w2.yaml", f"pagerduty:\n  routing_key: {KEY}\n", mode=0o640)
    assert "mode 0640" in load("w2.yaml", environ={}).warnings[0]
    cfg("w3.yaml", f"pagerduty:\n  routing_key: {KEY}\n", mode=0o600)
    assert not any("chmod" in w for w in load("w3.yaml", environ={}).warnings)


def test_routing_key_file(cfg, tmp_path):
    cfg("secrets/key", f"  {KEY}\n", mode=0o644)
    cfg("w.yaml", "pagerduty:\n  routing_key_file: secrets/key\n", mode=0o644)
    config = load("w.yaml", environ={})
    assert config.pagerduty.routing_key == KEY and config.secrets == {KEY}
    assert not any("chmod" in w for w in config.warnings)


def test_routing_key_file_errors(cfg):
    cfg("empty", "\n")
    cfg("w.yaml", f"""
        pagerduty:
          routing_key: {KEY}
          routing_key_file: key
    """)
    assert one_error("w.yaml") == ("w.yaml:4: pagerduty.routing_key_file: both routing_key and "
                                   "routing_key_file are set — keep only one")
    cfg("w2.yaml", "pagerduty:\n  routing_key_file: missing\n")
    assert one_error("w2.yaml").startswith("w2.yaml:2: pagerduty.routing_key_file: cannot read "
                                           "missing: No such file or directory")
    cfg("w3.yaml", "pagerduty:\n  routing_key_file: empty\n")
    assert one_error("w3.yaml").startswith("w3.yaml:2: pagerduty.routing_key_file: empty is "
                                           "empty")


def test_pagerduty_field_errors(cfg):
    cfg("w.yaml", """
        pagerduty:
          routing_key: 12345
          api: v3
          url: ftp://x
          source: ""
    """)
    assert [e.split(" — ")[0] for e in errors_of("w.yaml")] == [
        "w.yaml:3: pagerduty.routing_key: must be a string, not a number",
        "w.yaml:4: pagerduty.api: must be v2 or v1, not 'v3'",
        "w.yaml:5: pagerduty.url: must be an http(s) base URL, not 'ftp://x'",
        "w.yaml:6: pagerduty.source: must be a non-empty string of at most 255 characters "
        "without control characters (default: this host's FQDN)",
    ]


# --------------------------------------------------------------------------- sections


def test_state_dir_resolution(cfg, tmp_path):
    cfg("sub/w.yaml", "state_dir: ../state\n")
    assert load("sub/w.yaml", environ={}).state_dir == str(tmp_path / "state")
    cfg("w.yaml", "state_dir: /var/lib/x\n")
    assert load("w.yaml", environ={"STATE_DIRECTORY": "/ignored"}).state_dir == "/var/lib/x"
    cfg("w2.yaml", "workers: 1\n")
    state = load("w2.yaml", environ={"STATE_DIRECTORY": "/run/a:/run/b"}).state_dir
    assert state == "/run/a"
    assert load("w2.yaml", environ={"STATE_DIRECTORY": ""}).state_dir == str(
        tmp_path / ".pd-watchdog")
    cfg("sub/w4.yaml", "workers: 1\n")  # beside the config, wherever the command runs from
    assert load("sub/w4.yaml", environ={}).state_dir == str(tmp_path / "sub" / ".pd-watchdog")
    cfg("w3.yaml", "state_dir: [a]\n")
    assert one_error("w3.yaml") == "w3.yaml:1: state_dir: must be a folder path (string)"


@pytest.mark.parametrize("value", ["0", "1025", "true", "2.5", "many", "-3"])
def test_workers_bounds(cfg, value):
    cfg("w.yaml", f"workers: {value}\n")
    assert one_error("w.yaml").startswith("w.yaml:1: workers: must be an integer 1..1024")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("9108", ("127.0.0.1", 9108)), ('"9108"', ("127.0.0.1", 9108)),
        ('"[::1]:9108"', ("::1", 9108)), ('"0.0.0.0:9108"', ("0.0.0.0", 9108)),
        ('"localhost:80"', ("localhost", 80)),
    ],
)
def test_metrics_listen(cfg, value, expected):
    cfg("w.yaml", f"metrics: {{listen: {value}}}\n")
    assert load("w.yaml", environ={}).metrics_listen == expected


@pytest.mark.parametrize("value", ['"::1:9108"', "70000", '"host:"', '":9108"', "true", "[1]",
                                   '"a b:1"', '"[::1]"'])
def test_metrics_listen_errors(cfg, value):
    cfg("w.yaml", f"metrics:\n  listen: {value}\n")
    assert one_error("w.yaml").startswith("w.yaml:2: metrics.listen: bad address")


def test_heartbeat(cfg):
    cfg("w.yaml", "heartbeat:\n  url: ${HB:-}\n")
    assert load("w.yaml", environ={}).heartbeat is None
    assert load("w.yaml", environ={"HB": "https://hc/1"}).heartbeat == Heartbeat(
        "https://hc/1", 60.0, 10.0)
    cfg("w2.yaml", "heartbeat:\n  url: hc-ping.com/x\n  timeout: 10ms\n")
    assert [e.split(" — ")[0] for e in errors_of("w2.yaml")] == [  # every error at once
        "w2.yaml:2: heartbeat.url: must be an http(s) URL, not 'hc-ping.com/x'",
        "w2.yaml:3: heartbeat.timeout: must be at least 100ms, got '10ms'",
    ]
    cfg("w3.yaml", "heartbeat:\n  url: https://x\n  timeout: 10ms\n")
    assert one_error("w3.yaml") == ("w3.yaml:3: heartbeat.timeout: must be at least 100ms, got "
                                    "'10ms' — use 100ms or more")
    cfg("w4.yaml", "heartbeat:\n  interval: 1m\n")
    assert one_error("w4.yaml").startswith("w4.yaml:1: heartbeat: url is required")
    cfg("w5.yaml", "heartbeat: https://x\n")
    assert one_error("w5.yaml").startswith("w5.yaml:1: heartbeat: must be a mapping")


def test_null_sections_are_absent(cfg):
    cfg("w.yaml", "pagerduty:\nheartbeat:\nmetrics:\ndefaults:\ninclude:\nchecks:\n")
    config = load("w.yaml", environ={})
    assert config.heartbeat is None and config.metrics_listen is None and config.checks == ()


# --------------------------------------------------------------------------- check fields


def test_check_field_errors(cfg):
    cfg("w.yaml", """
        checks:
          - name: a
            fake: x
            interval: 50ms
            timeout: soon
            fail_after: true
            recover_after: 0
            retry_interval: -1
            severity: fatal
            details: [runbook]
    """)
    assert [e.split(" — ")[0] for e in errors_of("w.yaml")] == [
        "w.yaml:5: checks[0].interval: must be at least 100ms, got '50ms'",
        "w.yaml:6: checks[0].timeout: not a duration: 'soon'",
        "w.yaml:7: checks[0].fail_after: must be an integer >= 1, not True",
        "w.yaml:8: checks[0].recover_after: must be an integer >= 1, not 0",
        "w.yaml:9: checks[0].retry_interval: must be positive, got -1",
        "w.yaml:10: checks[0].severity: must be one of critical, error, warning, info, not "
        "'fatal'",
        "w.yaml:11: checks[0].details: must be a mapping (key: value), not a list",
    ]


def test_defaults_errors_reported_once(cfg):
    cfg("w.yaml", """
        defaults:
          interval: 0
          severity: loud
        checks:
          - {name: a, fake: x}
          - {name: b, fake: x}
    """)
    assert [e.split(" — ")[0] for e in errors_of("w.yaml")] == [
        "w.yaml:3: defaults.interval: must be positive, got 0",
        "w.yaml:4: defaults.severity: must be one of critical, error, warning, info, not 'loud'",
    ]


def test_check_names(cfg):
    cfg("w.yaml", f"""
        checks:
          - fake: x
          - name: ""
            fake: x
          - name: 404
            fake: x
          - name: "bad\\tname"
            fake: x
          - name: {"n" * 201}
            fake: x
          - name: {"n" * 200}
            fake: x
          - 42
    """)
    assert [e.split(" — ")[0] for e in errors_of("w.yaml")] == [
        "w.yaml:3: checks[0]: missing name",
        "w.yaml:4: checks[1].name: must be a non-empty string (quote it if it looks like a "
        "number), not ''",
        "w.yaml:6: checks[2].name: must be a non-empty string (quote it if it looks like a "
        "number), not 404",
        "w.yaml:8: checks[3].name: must be at most 200 characters, without control characters",
        "w.yaml:10: checks[4].name: must be at most 200 characters, without control characters",
        "w.yaml:14: checks[6]: each check must be a mapping with a name and a probe kind (fake: "
        "or other:)",
    ]


def test_checks_must_be_a_list(cfg):
    cfg("w.yaml", "checks:\n  name: a\n  fake: x\n")
    assert one_error("w.yaml").startswith("w.yaml:1: checks: must be a list of checks")


# --------------------------------------------------------------------------- probe kinds


def test_kind_none_several_and_foreign_keys(cfg):
    cfg("w.yaml", """
        checks:
          - name: none
            fake_level: high
          - name: both
            fake: x
            other: y
          - name: foreign
            fake: x
            other_opt: 1
    """)
    assert errors_of("w.yaml") == [
        "w.yaml:3: checks[0]: no probe kind: add one of fake:, other: ('fake_level' belongs to "
        "fake:)",
        "w.yaml:7: checks[1].other: a check has exactly one probe kind, this one has fake and "
        "other — split it into two checks",
        "w.yaml:10: checks[2].other_opt: 'other_opt' belongs to the other probe kind, this check "
        "is fake",
    ]


def test_option_errors_are_located(cfg):
    cfg("w.yaml", """
        checks:
          - name: ok
            fake: x
          - name: a
            fake:
              url: x
              bad_one: 1
              nested:
                bad_two: 2
              bad_three: 3
              deep:
                missing: 1
          - name: b
            fake: x
            fake_level: wrong
    """)
    assert errors_of("w.yaml") == [
        "w.yaml:8: checks[1].fake.bad_one: is bad",
        "w.yaml:11: checks[1].fake.bad_three: is bad",
        "w.yaml:13: checks[1].fake.deep.missing.leaf: no such leaf",  # nearest parent's line
        "w.yaml:16: checks[2].fake_level: must be low or high",
    ]


def test_probe_crash_is_a_config_error(cfg):
    cfg("w.yaml", "checks:\n  - name: a\n    fake: explode\n")
    assert one_error("w.yaml") == ("w.yaml:3: checks[0].fake: the fake probe could not read "
                                   "these options: RuntimeError: boom")


def test_parse_gets_only_its_keys_and_the_files_folder(cfg, tmp_path):
    cfg("w.yaml", "include: [conf.d/*.yaml]\n")
    cfg("conf.d/a.yaml", """
        checks:
          - name: a
            fake: {url: x}
            fake_level: low
            interval: 1m
            details: {k: v}
    """)
    (check,) = load("w.yaml", environ={}).checks
    assert check.probe.options == {"fake": {"url": "x"}, "fake_level": "low"}
    assert check.probe.base_dir == str(tmp_path / "conf.d")
    assert check.origin == "conf.d/a.yaml:3"


def test_all_errors_are_collected_in_file_and_line_order(cfg):
    cfg("w.yaml", """
        include: [b.yaml]
        checks:
          - name: a
            fake: x
            interval: nope
        workers: 0
    """)
    cfg("b.yaml", "checks:\n  - name: b\n    fake: x\n    severity: meh\n")
    assert [e.split(":")[:2] for e in errors_of("w.yaml")] == [
        ["w.yaml", "6"], ["w.yaml", "7"], ["b.yaml", "4"]]


# --------------------------------------------------------------------------- includes


def test_nested_includes_and_order(cfg, tmp_path):
    cfg("w.yaml", """
        checks:
          - {name: main-1, fake: x}
        include:
          - conf.d/*.yaml
          - extra.yaml
    """)
    cfg("conf.d/10-a.yaml", "checks: [{name: a, fake: x}]\ninclude: [../nested/*.yaml]\n")
    cfg("conf.d/20-b.yaml", "checks: [{name: b, fake: x}]\n")
    cfg("nested/n.yaml", "checks: [{name: n, fake: x}]\n")
    cfg("extra.yaml", "include: [conf.d/*.yaml]\nchecks: [{name: e, fake: x}]\n")
    config = load("w.yaml", environ={})
    assert [c.name for c in config.checks] == ["main-1", "a", "n", "b", "e"]
    assert config.files == tuple(str(tmp_path / p) for p in (
        "w.yaml", "conf.d/10-a.yaml", "nested/n.yaml", "conf.d/20-b.yaml", "extra.yaml"))
    assert [c.origin for c in config.checks] == [
        "w.yaml:3", "conf.d/10-a.yaml:1", "nested/n.yaml:1", "conf.d/20-b.yaml:1", "extra.yaml:2"]


def test_empty_glob_is_fine_and_missing_literal_is_an_error(cfg, tmp_path):
    (tmp_path / "conf.d").mkdir()
    cfg("w.yaml", "include:\n  - conf.d/*.yaml\n  - missing.yaml\n")
    assert one_error("w.yaml").startswith("w.yaml:3: include[1]: missing.yaml: no such file")
    cfg("w2.yaml", "include: conf.d/*.yaml\n")
    assert load("w2.yaml", environ={}).checks == ()


def test_include_cycle_names_the_chain(cfg):
    cfg("w.yaml", "include: [a.yaml]\n")
    cfg("a.yaml", "include: [b.yaml]\n")
    cfg("b.yaml", "checks: []\ninclude: [a.yaml]\n")
    assert one_error("w.yaml") == ("b.yaml:2: include[0]: include cycle: a.yaml -> b.yaml -> "
                                   "a.yaml — remove one of these includes")
    cfg("self.yaml", "include: [self.yaml]\n")
    assert one_error("self.yaml").startswith(
        "self.yaml:1: include[0]: include cycle: self.yaml -> self.yaml")


def test_file_matched_by_two_globs_is_read_once(cfg, tmp_path):
    cfg("w.yaml", "include: ['checks/*.yaml', 'checks/web*.yaml', checks/web.yaml]\n")
    cfg("checks/web.yaml", "checks: [{name: web, fake: x}]\n")
    config = load("w.yaml", environ={})
    assert [c.name for c in config.checks] == ["web"]
    assert config.files == (str(tmp_path / "w.yaml"), str(tmp_path / "checks/web.yaml"))


def test_included_file_may_hold_only_checks_and_include(cfg):
    cfg("w.yaml", "include: [a.yaml]\n")
    cfg("a.yaml", "pagerduty: {}\nworkers: 3\nchecs: []\n")
    assert errors_of("w.yaml") == [
        "a.yaml:1: pagerduty: only checks and include are allowed in an included file — move "
        "pagerduty to w.yaml",
        "a.yaml:2: workers: only checks and include are allowed in an included file — move "
        "workers to w.yaml",
        "a.yaml:3: checs: unknown key 'checs' — did you mean 'checks'?",
    ]


def test_include_errors(cfg, tmp_path):
    (tmp_path / "dir.yaml").mkdir()
    cfg("w.yaml", "include: [dir.yaml, 3, {a: b}]\n")
    errors = errors_of("w.yaml")
    assert errors[0].startswith("w.yaml:1: include[0]: dir.yaml: is a directory")
    assert errors[1] == "w.yaml:1: include[1]: must be a file path or glob (string)"
    assert errors[2] == "w.yaml:1: include[2]: must be a file path or glob (string)"


def test_include_outside_main_folder_is_shown_absolute(cfg, tmp_path):
    cfg("etc/w.yaml", f"include: [{tmp_path}/other/x.yaml]\n")
    cfg("other/x.yaml", "checks:\n  - name: a\n    fake: x\n    zap: 1\n")
    assert one_error("etc/w.yaml").startswith(f"{tmp_path}/other/x.yaml:4: checks[0].zap:")


def test_duplicate_check_names_across_files(cfg):
    cfg("w.yaml", "checks:\n  - name: web\n    fake: x\ninclude: [checks/*.yaml]\n")
    cfg("checks/web.yaml", "checks:\n  - name: other\n    fake: x\n  - name: web\n    fake: x\n")
    assert one_error("w.yaml") == (
        "checks/web.yaml:4: checks[1].name: duplicate check name 'web' — also defined at "
        "w.yaml:2; names must be unique across all files")


# --------------------------------------------------------------------------- hostile input


def test_file_over_16_mb_is_refused_before_parsing(cfg, tmp_path):
    with open(tmp_path / "big.yaml", "wb") as fh:
        fh.truncate(16 * 1024 * 1024 + 1)  # sparse: nothing to parse, just a size
    assert one_error("big.yaml") == ("big.yaml: is 16777217 bytes; config files are limited to "
                                     "16 MB")


def test_non_utf8_and_binary(cfg, tmp_path):
    (tmp_path / "latin1.yaml").write_bytes(b"checks:\n  - name: caf\xe9\n")
    assert one_error("latin1.yaml") == ("latin1.yaml:2: not UTF-8 text (byte 0xe9 at offset 21)"
                                        " — save the file as UTF-8")
    (tmp_path / "bin.yaml").write_bytes(b"\x7fELF\x02\x01\x01\x00\x00")
    assert one_error("bin.yaml") == ("bin.yaml: is binary or UTF-16, not a UTF-8 YAML file "
                                     "(NUL byte at offset 7)")
    (tmp_path / "utf16.yaml").write_bytes("workers: 2\n".encode("utf-16"))
    assert "UTF-16" in one_error("utf16.yaml")
    (tmp_path / "bom.yaml").write_bytes(b"\xef\xbb\xbfworkers: 2\n")
    assert load("bom.yaml", environ={}).workers == 2
    (tmp_path / "ctl.yaml").write_bytes(b"workers: 2\nx: \x07\n")
    assert one_error("ctl.yaml").startswith(
        "ctl.yaml:2: not YAML text: character U+0007 is not allowed")


def test_billion_laughs_is_refused_quickly(cfg):
    levels = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 12):
        prev = chr(ord("a") + i - 1)
        cur = chr(ord("a") + i)
        levels.append(f"{cur}: &{cur} [{', '.join(['*' + prev] * 9)}]")
    body = "\n".join("      " + line for line in levels)
    cfg("w.yaml", "checks:\n  - name: x\n    fake: x\n    details:\n" + body + "\n")
    error = one_error("w.yaml")  # pytest-timeout bounds it; a hang fails the test
    assert "too many alias expansions" in error and error.startswith("w.yaml:")


def test_merge_key_bomb_is_refused_quickly(cfg):
    lines = ["x0: &x0 {k: v}"]
    for i in range(1, 30):
        refs = ", ".join([f"*x{i - 1}"] * 20)
        lines.append(f"x{i}: &x{i} {{<<: [{refs}]}}")
    cfg("w.yaml", "checks:\n  - name: x\n    fake: x\n    details:\n" +
        "\n".join("      " + line for line in lines) + "\n")
    assert "too many alias expansions" in one_error("w.yaml")


def test_recursive_alias(cfg):
    cfg("w.yaml", "checks:\n  - name: x\n    fake: &a [1, *a]\n")
    assert one_error("w.yaml").startswith(
        "w.yaml:3: checks[0].fake[1]: recursive alias (a value that contains itself)")


def test_deep_nesting(cfg):
    cfg("w.yaml", "checks:\n  - name: x\n    fake: " + "[" * 200 + "]" * 200 + "\n")
    assert "nested more than 64 levels deep" in one_error("w.yaml")
    cfg("w2.yaml", "checks: " + "[" * 5000 + "]" * 5000 + "\n")
    assert one_error("w2.yaml").startswith("w2.yaml:1:")


def test_yaml_syntax_error_has_line_and_column(cfg):
    cfg("w.yaml", """
        checks:
          - name: a
            fake: [1, 2
          - name: b
    """)
    assert one_error("w.yaml").startswith("w.yaml:5:9: YAML syntax error: did not find expected "
                                          "',' or ']' (while parsing a flow sequence at line 4)")
    cfg("w2.yaml", "checks:\n  - name: a\n   fake: x\n")
    assert one_error("w2.yaml").startswith("w2.yaml:3:4: YAML syntax error:")
    cfg("w3.yaml", "workers: 2\n---\nworkers: 3\n")
    assert one_error("w3.yaml").startswith("w3.yaml:2:1: YAML syntax error: but found another "
                                           "document")
    cfg("w4.yaml", "checks: *nope\n")
    assert one_error("w4.yaml").startswith("w4.yaml:1:9: YAML syntax error: found undefined "
                                           "alias")


@pytest.mark.parametrize(("text", "kind"), [("- a\n- b\n", "a list"), ("hello\n", "a single value"),
                                            ("42\n", "a single value")])
def test_top_level_must_be_a_mapping(cfg, text, kind):
    cfg("w.yaml", text)
    assert one_error("w.yaml") == (f"w.yaml:1: the top level must be a mapping (key: value "
                                   f"lines), not {kind} — see watchdog.example.yaml")


def test_complex_keys_and_yaml_types(cfg):
    cfg("w.yaml", """
        checks:
          - name: a
            fake:
              200: ok
              on: yes
              null: ~
              date: 2024-01-02
              float: 1.5
              ? [x]
              : y
    """)
    assert one_error("w.yaml").startswith("w.yaml:10: checks[0].fake: keys must be plain strings")
    cfg("w2.yaml", """
        checks:
          - name: a
            fake: {200: ok, on: yes, null: ~, date: 2024-01-02, f: 1.5, i: 0x10, e: =}
    """)
    (check,) = load("w2.yaml", environ={}).checks
    assert check.probe.options["fake"] == {"200": "ok", "on": True, "null": None,
                                           "date": "2024-01-02", "f": 1.5, "i": 16, "e": "="}


def test_merge_keys(cfg):
    cfg("w.yaml", """
        checks:
          - &base
            name: a
            fake: x
            interval: 1m
            details: {team: a}
          - <<: *base
            name: b
            details: {team: b}
    """)
    a, b = load("w.yaml", environ={}).checks
    assert (b.name, b.kind, b.interval, b.details) == ("b", "fake", 60, {"team": "b"})
    assert a.fingerprint != b.fingerprint


# --------------------------------------------------------------------------- fingerprints


FP_YAML = """
    pagerduty: {{source: s1}}
    defaults: {{timeout: 5s}}
    checks:
      - name: a
        fake: {{url: x, list: [1, 2]}}
        {extra}
      - name: b
        other: y
"""


def fingerprints(cfg, text: str, environ: dict | None = None) -> dict[str, str]:
    cfg("fp.yaml", text)
    return {c.name: c.fingerprint for c in load("fp.yaml", environ=environ or {}).checks}


def test_fingerprint_stable_and_order_independent(cfg):
    base = fingerprints(cfg, FP_YAML.format(extra=""))
    assert base == fingerprints(cfg, FP_YAML.format(extra=""))
    reordered = """
        pagerduty: {source: s1}
        defaults: {timeout: 5s}
        checks:
          - other: y
            name: b
          - fake: {list: [1, 2], url: x}
            name: a
    """
    assert fingerprints(cfg, reordered) == base
    explicit_default = FP_YAML.format(extra="timeout: 5s")
    assert fingerprints(cfg, explicit_default) == base


@pytest.mark.parametrize("extra", ["interval: 31s", "severity: info", "fail_after: 4",
                                   "recover_after: 3", "retry_interval: 5s", "details: {a: 1}",
                                   "incident_key: custom", "fake_level: low"])
def test_fingerprint_changes_with_any_setting(cfg, extra):
    base = fingerprints(cfg, FP_YAML.format(extra=""))
    changed = fingerprints(cfg, FP_YAML.format(extra=extra))
    assert changed["a"] != base["a"] and changed["b"] == base["b"]


def test_fingerprint_covers_defaults_source_env_and_options(cfg):
    base = fingerprints(cfg, FP_YAML.format(extra=""))
    for text in (FP_YAML.replace("s1", "s2"), FP_YAML.replace("5s", "6s"),
                 FP_YAML.replace("[1, 2]", "[2, 1]")):
        assert fingerprints(cfg, text.format(extra=""))["a"] != base["a"]
    with_env = FP_YAML.format(extra="").replace("url: x", "url: \"${U}\"")
    assert fingerprints(cfg, with_env, {"U": "x"}) == base
    assert fingerprints(cfg, with_env, {"U": "z"})["a"] != base["a"]


# --------------------------------------------------------------------------- real kinds


@pytest.fixture
def real(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def write(name: str, text: str) -> str:
        (tmp_path / name).write_text(textwrap.dedent(text))
        return name

    return write


def test_real_kinds_route_their_keys(real, tmp_path):
    real("w.yaml", """
        checks:
          - name: web
            http: {url: "http://127.0.0.1:1/health", expect_status: 200}
          - name: cmd
            command: [/bin/echo, hi]
            env: {GREETING: hello}
            cwd: sub
            shell: false
    """)
    web, cmd = load("w.yaml", environ={}).checks
    assert (web.kind, cmd.kind) == ("http", "command")
    assert cmd.probe.cwd == str(tmp_path / "sub")


def test_real_kind_errors_are_located(real):
    real("w.yaml", """
        checks:
          - name: web
            http:
              url: "http://127.0.0.1:1/health"
              expect_status: 99
            shell: true
          - name: cmd
            command: ""
    """)
    errors = errors_of("w.yaml")
    assert errors[0].startswith("w.yaml:6: checks[0].http.expect_status: ")
    assert errors[1] == ("w.yaml:7: checks[0].shell: 'shell' belongs to the command probe kind, "
                         "this check is http")
    assert errors[2].startswith("w.yaml:9: checks[1].command: ")
    assert len(errors) == 3


def test_example_config_loads_in_dry_run(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    environ = {k: v for k, v in os.environ.items() if k != "PAGERDUTY_ROUTING_KEY"}
    environ.pop("STATE_DIRECTORY", None)
    config = load(os.path.join(REPO, "watchdog.example.yaml"), environ=environ)
    assert config.dry_run and DRY_RUN_WARNING in config.warnings
    names = [c.name for c in config.checks]
    assert names == ["root-disk"]  # host-specific examples ship as checks/*.yaml.example
    assert len(config.files) == 2
    assert config.state_dir == os.path.join(REPO, ".pd-watchdog")


def test_example_disk_plugin_runs(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    config = load(os.path.join(REPO, "watchdog.example.yaml"), environ={})
    (disk,) = [c for c in config.checks if c.name == "root-disk"]
    result = disk.probe.run(10)
    assert result.details["exit_code"] in (0, 1, 2), result
    assert result.summary.startswith("DISK ")


# --------------------------------------------------------------------------- performance


def test_ten_thousand_checks_load(cfg, tmp_path):
    """Scale works; how fast is the benchmark's business (bench/), not a test's."""
    lines = ["defaults: {interval: 30s}", "checks:"]
    for i in range(10_000):
        lines += [f"  - name: check-{i}", f"    fake: /bin/true {i}", "    timeout: 5s",
                  f"    details: {{n: {i}}}"]
    cfg("big.yaml", "\n".join(lines) + "\n")
    config = load("big.yaml", environ={})
    assert len(config.checks) == 10_000
    assert len({check.fingerprint for check in config.checks}) == 10_000


def test_error_count_is_capped(cfg):
    cfg("w.yaml", "checks:\n" + "".join(f"  - {{name: c{i}, fake: x, zz: 1}}\n"
                                        for i in range(1500)))
    errors = errors_of("w.yaml")
    assert len(errors) == 1001
    assert errors[0].startswith("w.yaml:2: checks[0].zz: unknown key 'zz'")
    assert errors[-1] == "w.yaml: stopped after 1000 errors — fix these and run again"


def test_yaml_integers_keep_yaml_rules(cfg):
    cfg("w.yaml", "checks:\n  - {name: a, fake: {a: 010, b: 0x10, c: 1_000, d: 0, e: 42}}\n")
    (check,) = load("w.yaml", environ={}).checks
    assert check.probe.options["fake"] == {"a": 8, "b": 16, "c": 1000, "d": 0, "e": 42}


def test_commands_that_never_send_do_not_need_the_services_secrets(cfg):
    """`status`/`check` from a shell without the service's env file: the key reads as absent;
    every other unset variable is still an error."""
    cfg("w.yaml", "pagerduty: {routing_key: '${PD_KEY}'}\n"
        "checks: [{name: x, fake: '${CHECK_ARG}'}]\n")
    assert "PD_KEY is not set" in errors_of("w.yaml")[0]
    errors = errors_of("w.yaml", environ={"CHECK_ARG": "a"})
    assert len(errors) == 1 and "PD_KEY" in errors[0]
    config = load("w.yaml", environ={"CHECK_ARG": "a"}, need_key=False)
    assert config.dry_run and [c.name for c in config.checks] == ["x"]
    with pytest.raises(ConfigError, match="CHECK_ARG is not set"):
        load("w.yaml", environ={}, need_key=False)
    cfg("f.yaml", "pagerduty: {routing_key_file: /nonexistent/key}\n")
    assert "cannot read /nonexistent/key" in one_error("f.yaml")
    assert load("f.yaml", environ={}, need_key=False).dry_run


def test_a_timeout_not_shorter_than_the_interval_warns_once(cfg):
    cfg("w.yaml", "defaults: {interval: 5s, timeout: 10s}\n"
        "checks:\n" + "".join(f"  - {{name: c{i}, fake: x}}\n" for i in range(5))
        + "  - {name: fine, fake: x, timeout: 1s}\n")
    warnings = [w for w in load("w.yaml", environ={}).warnings if "timeout" in w]
    assert warnings == ["timeout is not shorter than interval for c0 (w.yaml:3), c1 (w.yaml:4), "
                        "c2 (w.yaml:5) and 2 more: a probe that hangs to its timeout skips its "
                        "next run (counted as skipped) — make timeout shorter"]


@pytest.fixture
def real_kinds_cfg(tmp_path, monkeypatch):
    """Like cfg, with the real probe kinds (http, command) registered."""
    monkeypatch.chdir(tmp_path)

    def write(name: str, text: str) -> str:
        (tmp_path / name).write_text(text)
        return name

    return write


def test_an_unset_variable_is_one_error_not_two(real_kinds_cfg):
    real_kinds_cfg("w.yaml", "checks:\n  - name: ${NAME}\n    http: {url: \"${URL}\"}\n"
        "  - name: b\n    command: ${CMD}\n")
    assert errors_of("w.yaml") == [
        f"w.yaml:{line}: {path}: environment variable {var} is not set — export it, or write "
        f"${{{var}:-default}} (${{{var}:-}} allows empty)"
        for line, path, var in ((2, "checks[0].name", "NAME"), (3, "checks[0].http.url", "URL"),
                                (5, "checks[1].command", "CMD"))
    ]


def test_a_tab_is_named_as_a_tab(cfg):
    cfg("w.yaml", "checks:\n  - name: a\n    command: 'true'\n\tinterval: 1s\n")
    assert one_error("w.yaml") == (
        "w.yaml:4:1: YAML syntax error: a tab character where YAML expects spaces — YAML indents "
        "with spaces only: replace the tab with spaces")


def test_a_bad_duration_in_probe_options_is_echoed_like_top_level_ones(real_kinds_cfg):
    real_kinds_cfg("w.yaml", "checks:\n  - name: a\n    http: {url: 'http://127.0.0.1/', "
        "max_response_time: 5zz}\n    interval: 1q\n")
    assert errors_of("w.yaml") == [
        "w.yaml:3: checks[0].http.max_response_time: not a duration: '5zz' — write e.g. 500ms, "
        "30s, 5m, 1h, 1d, 1m30s, or a number of seconds",
        "w.yaml:4: checks[0].interval: not a duration: '1q' — write e.g. 500ms, 30s, 5m, 1h, "
        "1d, 1m30s, or a number of seconds",
    ]
