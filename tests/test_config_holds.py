"""The config of holding pages back: maintenance windows, depends_on, flapping, repeats."""

from __future__ import annotations

import textwrap
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchdog.config import ConfigError, load
from watchdog.flapping import Flapping


@pytest.fixture
def cfg(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def write(*parts: str) -> str:
        (tmp_path / "w.yaml").write_text("".join(textwrap.dedent(part) for part in parts))
        return "w.yaml"

    return write


def errors_of(path: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(path, environ={})
    return info.value.errors


CHECKS = """
checks:
  - {name: db-main, command: 'true'}
  - {name: web, command: 'true'}
"""


def test_a_weekly_window_in_a_zone_and_a_one_off_window(cfg):
    config = load(cfg("""
        maintenance:
          - name: weekly-db-backup
            checks: ["db-*"]
            schedule: "0 2 * * SUN"
            duration: 2h
            timezone: Europe/Berlin
          - name: move
            checks: web
            start: "2026-12-24T22:00:00+01:00"
            end: "2026-12-25T02:00:00+01:00"
    """, CHECKS), environ={})
    weekly, move = config.maintenance
    assert weekly.schedule == "0 2 * * SUN" and weekly.duration == 7200
    assert weekly.tz == ZoneInfo("Europe/Berlin") and weekly.origin == "w.yaml:3"
    start = datetime(2026, 12, 24, 22, tzinfo=ZoneInfo("Europe/Berlin")).timestamp()
    assert (move.start, move.end) == (start, start + 4 * 3600) and move.checks == ("web",)
    assert config.warnings == ("no routing key: running in dry-run, events are logged, not "
                               "sent",)


def test_a_one_off_window_without_offset_is_in_its_timezone_and_may_give_a_duration(cfg):
    [window] = load(cfg("""
        maintenance:
          - {name: m, checks: web, start: "2026-07-01T03:00", duration: 30m,
             timezone: America/New_York}
    """, CHECKS), environ={}).maintenance
    start = datetime(2026, 7, 1, 3, tzinfo=ZoneInfo("America/New_York")).timestamp()
    assert (window.start, window.end) == (start, start + 1800)


def test_bad_windows_say_where_and_what_to_write(cfg):
    errors = errors_of(cfg("""
        maintenance:
          - name: a
            checks: web
            schedule: "0 25 * * *"
            duration: 1h
            timezone: Europe/Berln
          - name: b
            checks: []
            schedule: "0 2 * *"
          - name: c
            checks: web
            start: "2026-12-24T22:00"
            end: "2026-12-24T21:00"
          - name: d
            checks: web
          - name: e
            checks: web
            start: tomorrow
            duration: 1h
    """, CHECKS))
    text = "\n".join(errors)
    assert "w.yaml:5: maintenance[0].schedule: not a valid cron expression '0 25 * * *': " \
           "Bad hour" in text
    assert "w.yaml:7: maintenance[0].timezone: unknown time zone 'Europe/Berln' — did you " \
           "mean 'Europe/Berlin'?" in text
    assert "maintenance[1].checks: must name at least one check" in text
    assert "maintenance[1].schedule: must be a cron expression of 5 fields" in text
    assert "maintenance[1]: duration is required with schedule" in text
    assert "w.yaml:14: maintenance[2].end: must be after start" in text
    assert "maintenance[3]: set schedule: (cron) and duration:, or start: and end:" in text
    assert "maintenance[4].start: must be an ISO 8601 date and time" in text


def test_a_glob_that_names_no_check_is_a_warning_and_a_repeated_name_an_error(cfg):
    path = cfg("""
        maintenance:
          - {name: a, checks: ["db-*", "backup-*"], schedule: "0 2 * * *", duration: 1h}
    """, CHECKS)
    warnings = load(path, environ={}).warnings
    assert "w.yaml:3: maintenance[0].checks[1]: 'backup-*' matches no check — the window " \
           "holds nothing for it" in warnings
    errors = errors_of(cfg("""
        maintenance:
          - {name: a, checks: web, schedule: "0 2 * * *", duration: 1h}
          - {name: a, checks: web, schedule: "0 3 * * *", duration: 1h}
    """, CHECKS))
    assert errors == ["w.yaml:4: maintenance[1].name: duplicate window name 'a' — also "
                      "window 0; names must be unique"]


def test_depends_on_unknown_names_and_cycles_are_errors_at_their_line(cfg):
    errors = errors_of(cfg("""
        checks:
          - name: app
            command: 'true'
            depends_on: [db, uplnk]
          - name: db
            command: 'true'
            depends_on: app
          - {name: uplink, command: 'true', depends_on: [uplink]}
    """))
    assert errors == [
        "w.yaml:5: checks[0].depends_on[1]: unknown check 'uplnk' — did you mean 'uplink'?",
        "w.yaml:5: checks[0].depends_on[0]: depends_on forms a cycle: app -> db -> app — a "
        "check's parents must not depend on it",
        "w.yaml:9: checks[2].depends_on[0]: a check cannot depend on itself",
    ]


def test_depends_on_across_included_files(cfg, tmp_path):
    (tmp_path / "more.yaml").write_text("checks:\n  - {name: uplink, command: 'true'}\n")
    config = load(cfg("""
        include: more.yaml
        checks:
          - {name: app, command: 'true', depends_on: uplink}
    """), environ={})
    assert {c.name: c.depends_on for c in config.checks} == {"app": ("uplink",), "uplink": ()}


def test_flapping_and_repeat_interval_from_defaults_and_per_check(cfg):
    config = load(cfg("""
        defaults:
          flapping: {window: 11, high: 60%, low: 20}
          repeat_interval: 30m
        checks:
          - {name: a, command: 'true'}
          - {name: b, command: 'true', repeat_interval: 0, flapping: {high: "70 %"}}
          - {name: c, command: 'true', repeat_interval: "off"}
    """), environ={})
    a, b, c = config.checks
    assert a.flapping == Flapping(11, 60.0, 20.0) and a.repeat_interval == 1800
    assert b.flapping == Flapping(21, 70.0, 25.0) and b.repeat_interval == 0
    assert c.repeat_interval == 0


def test_the_default_repeat_interval_is_alertmanagers_4h_and_flapping_is_off(cfg):
    [check, _] = load(cfg(CHECKS), environ={}).checks
    assert check.repeat_interval == 4 * 3600 and check.flapping is None


def test_bad_flapping_and_repeat_interval(cfg):
    errors = errors_of(cfg("""
        checks:
          - {name: a, command: 'true', repeat_interval: 10s, flapping: {high: 20%, low: 30%}}
          - {name: b, command: 'true', flapping: {window: 2, high: 150%}}
          - {name: c, command: 'true', flapping: yes}
    """))
    text = "\n".join(errors)
    assert "checks[0].repeat_interval: must be at least 1m, got '10s' — use 1m or more (or 0 " \
           "to turn re-notification off)" in text
    assert "checks[0].flapping.low: must be below high (20%), got 30%" in text
    assert "checks[1].flapping.window: must be an integer 3..1000, not 2" in text
    assert "checks[1].flapping.high: must be a percentage 0..100, e.g. 50% or 50, not 150.0" \
        in text or "checks[1].flapping.high: must be a percentage 0..100" in text
    assert "checks[2].flapping: must be a mapping" in text


def test_new_settings_at_their_defaults_keep_a_checks_fingerprint(cfg):
    plain = load(cfg(CHECKS), environ={}).checks[0].fingerprint
    explicit = load(cfg(CHECKS.replace("command: 'true'}", "command: 'true', "
                                       "repeat_interval: 4h}", 1)), environ={})
    assert explicit.checks[0].fingerprint == plain
    changed = load(cfg(CHECKS.replace("command: 'true'}", "command: 'true', "
                                      "repeat_interval: 1h}", 1)), environ={})
    assert changed.checks[0].fingerprint != plain


names = st.from_regex(r"[a-z]{1,3}", fullmatch=True)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(names, st.lists(names, max_size=3), min_size=1, max_size=8))
def test_depends_on_loads_exactly_when_every_parent_exists_and_there_is_no_cycle(tmp_path_factory,
                                                                                 graph):
    """The loader against a plain reference: DFS for cycles over the same graph."""
    folder = tmp_path_factory.mktemp("deps")
    lines = ["checks:"]
    for name, parents in graph.items():
        lines.append(f"  - {{name: {name}, command: 'true', depends_on: {list(parents)}}}")
    (folder / "w.yaml").write_text("\n".join(lines) + "\n")

    def has_cycle() -> bool:
        state: dict[str, int] = {}

        def visit(node: str) -> bool:
            state[node] = 1
            for parent in graph.get(node, ()):
                if parent not in graph:
                    continue
                if state.get(parent) == 1 or (not state.get(parent) and visit(parent)):
                    return True
            state[node] = 2
            return False

        return any(not state.get(node) and visit(node) for node in graph)

    fine = all(p in graph for ps in graph.values() for p in ps) and not has_cycle()
    try:
        load(str(folder / "w.yaml"), environ={})
        loaded = True
    except ConfigError:
        loaded = False
    assert loaded == fine
