"""`pd-watchdog migrate-state`: a SQLite state copied whole into PostgreSQL, refused where a
copy would be wrong, and a runner carrying on from it without a second page."""

from __future__ import annotations

from pathlib import Path

import pytest

from fakepd import FakePagerDuty
from procs import ROUTING_KEY, Target, Watchdog, pdw, wait_for
from stores import Place
from watchdog.holds import Silence
from watchdog.model import CheckState, Event, ProbeResult
from watchdog.reports import Report
from watchdog.store import Store

pytestmark = pytest.mark.timeout(120)
DOWN = CheckState(failures=3, triggered=True, severity="critical")


def event(action: str, key: str) -> Event:
    return Event(action, key, "web", f"web {action}", "critical", "host1")


def config_file(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "watchdog.yaml"
    path.write_text("state_dir: ./state\n" + extra +
                    "checks:\n  - name: web\n    http: {url: 'http://127.0.0.1:9/'}\n")
    return path


def sqlite_state(tmp_path: Path) -> None:
    with Store(str(tmp_path / "state")) as store:
        store.record("web", "fp", "k-web", DOWN, ProbeResult(False, "HTTP 503"), 10.0,
                     [event("trigger", "k-web")])
        store.record("db", "fp", "k-db", CheckState(passes=2), None, 11.0,
                     [event("trigger", "k-db"), event("resolve", "k-db"),
                      event("trigger", "k-db")])
        (first, *_rest) = [item.id for item in store.pending()]
        store.mark_sent(first)
        store.dead_letter(2, "refused for good")
        store.add_silence(Silence("s1", ("db*",), "backup", created_at=5.0, until=9e9))
        store.report("nightly", Report("success", 12.0, exit_code=0))
        store.set_meta("delivered_to", "https://events.pagerduty.com")


def test_everything_is_copied_as_it_was(tmp_path: Path, pg_dsn: str) -> None:
    sqlite_state(tmp_path)
    config = config_file(tmp_path)
    with Store(str(tmp_path / "state"), readonly=True) as before:
        checks, pending = before.load_checks(), before.pending()
        dead, stats = before.dead_letters(), before.outbox_stats(0.0)
        silences, passive = before.silences(None), before.passive_records()
    done = pdw("migrate-state", str(config), "--to", pg_dsn)
    assert done.returncode == 0, done.stderr
    assert "copied to postgresql://" in done.stdout
    assert "2 checks (1 with an open incident), 2 pending events, 1 dead letter, " \
        "1 silence, 1 passive record" in done.stdout
    with Place("postgresql", str(tmp_path / "state"), pg_dsn).open() as after:
        assert after.load_checks() == checks
        assert after.pending() == pending and after.dead_letters() == dead
        assert after.outbox_stats(0.0) == stats
        assert after.silences(None) == silences and after.passive_records() == passive
        assert after.get_meta("delivered_to") == "https://events.pagerduty.com"
        (new_id,) = after.record("x", "fp", "k-x", DOWN, None, 1.0, [event("trigger", "k-x")])
        assert new_id == 5  # ids go on after the highest ever handed out (never reused)
        assert after.requeue_dead_letters([2]) == [2]
        assert [item.id for item in after.pending()] == [2, 3, 4, 5]  # in its old place


def test_a_running_runner_and_a_target_with_state_are_refused(tmp_path: Path,
                                                                pg_dsn: str) -> None:
    sqlite_state(tmp_path)
    config = config_file(tmp_path)
    with Store(str(tmp_path / "state")) as runner:
        runner.lock()
        done = pdw("migrate-state", str(config), "--to", pg_dsn)
    assert done.returncode == 1
    assert "used by another pd-watchdog run" in done.stderr
    assert "stop that runner first" in done.stderr
    assert pdw("migrate-state", str(config), "--to", pg_dsn).returncode == 0
    again = pdw("migrate-state", str(config), "--to", pg_dsn)
    assert again.returncode == 1
    assert "already has state (checks 2, outbox 2," in again.stderr
    assert "Add --force to replace it" in again.stderr
    forced = pdw("migrate-state", str(config), "--to", pg_dsn, "--force")
    assert forced.returncode == 0, forced.stderr
    assert "replaced the state at" in forced.stdout
    with Place("postgresql", str(tmp_path / "state"), pg_dsn).open() as after:
        assert len(after.pending()) == 2  # replaced, not doubled


def test_bad_targets_say_why_and_hide_the_password(tmp_path: Path, pg_server) -> None:
    sqlite_state(tmp_path)
    config = config_file(tmp_path)
    done = pdw("migrate-state", str(config), "--to", "mysql://u:Sekr1t@h/d")
    assert done.returncode == 2 and "must be a postgresql:// URL" in done.stderr
    url = f"postgresql://watchdog:Sekr1t@127.0.0.1:{pg_server.port}/missing_db"
    done = pdw("migrate-state", str(config), "--to", url)
    assert done.returncode == 1 and "cannot connect to PostgreSQL" in done.stderr
    assert "Sekr1t" not in done.stderr + done.stdout
    empty = tmp_path / "empty"
    empty.mkdir()
    done = pdw("migrate-state", str(config_file(empty)), "--to", url)
    assert done.returncode == 1 and "no state yet" in done.stderr


def test_an_open_incident_is_resolved_on_postgresql_under_the_same_key(
        tmp_path: Path, pg_dsn: str) -> None:
    """Failing and triggered on SQLite; after the migration the runner on PostgreSQL sends
    no second trigger, and resolves the incident when the target recovers."""
    web = Target()
    try:
        with FakePagerDuty() as pd:
            base = ("pagerduty:\n  routing_key: ${TEST_ROUTING_KEY}\n"
                    f"  url: {pd.url}\n  source: e2e-host\nstate_dir: ./state\n"
                    "defaults: {interval: 100ms, timeout: 1s, fail_after: 2, "
                    "recover_after: 2}\n")
            checks = f"checks:\n  - name: web\n    http: {{url: '{web.url}'}}\n"
            config = tmp_path / "watchdog.yaml"
            config.write_text(base + checks)
            env = {"TEST_ROUTING_KEY": ROUTING_KEY}
            key = "pd-watchdog/e2e-host/web"
            web.up = False
            with Watchdog(config, env=env) as proc:
                pd.wait_for(lambda: pd.actions_for(key) == ["trigger"], timeout=10)
                assert proc.stop() == 0
            done = pdw("migrate-state", str(config), "--to", pg_dsn)
            assert done.returncode == 0, done.stderr
            assert "(1 with an open incident)" in done.stdout
            config.write_text(base + f"state:\n  postgresql: {pg_dsn}\n" + checks)
            with Watchdog(config, env=env) as proc:
                proc.wait_started()
                hits = web.hits
                wait_for(lambda: web.hits >= hits + 4, what="probes while still down")
                web.up = True
                pd.wait_for(lambda: pd.actions_for(key) == ["trigger", "resolve"],
                            timeout=10)
                assert proc.stop() == 0
            assert pd.actions_for(key) == ["trigger", "resolve"]
            (incident,) = pd.incidents
            assert incident["resolved_at"] is not None
        with Place("postgresql", str(tmp_path / "state"), pg_dsn).open() as after:
            assert not after.load_checks()["web"].state.triggered  # it ran on PostgreSQL
        with Store(str(tmp_path / "state"), readonly=True) as left:
            assert left.load_checks()["web"].state.triggered  # the SQLite copy untouched
    finally:
        web.close()
