"""Change events (watchdog/changes.py): the diff a reload sends, the notes' durable memory of
what was announced, the config key, and delivery through the real sender to the stand-in.

Real configs (load), real SQLite stores, the real sender and client against fakepd; the
end-to-end cases with the real process are in test_e2e_changes.py."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import pytest

from fakepd import CHANGE_PATH, TEST_KEY
from pagerduty_api import Alert, ChangeEvent
from procs import wait_for
from watchdog.changes import CHANGE_KEY, META, ChangeNotes, diff_checks
from watchdog.config import ConfigError, load
from watchdog.dryrun import LoggingAlert
from watchdog.holds import Holds, Silence, Window
from watchdog.model import CHANGE, TRIGGER, Event
from watchdog.recorder import Recorder
from watchdog.reloading import make_changes
from watchdog.sender import Sender
from watchdog.store import Store, StoreError

SECRET = "s3cr3t-token-0123456789"


class FlakyStore(Store):
    """A real store whose writes fail like a full disk's while `broken` is set."""

    broken = False

    def _transaction(self, what):
        if self.broken:
            raise StoreError(f"could not {what}: database or disk is full")
        return super()._transaction(what)


def write(tmp_path: Path, text: str, name: str = "w.yaml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    path.chmod(0o600)
    return str(path)


def config_of(tmp_path: Path, checks: str, kinds: str = "[reload]", name: str = "w.yaml"):
    head = textwrap.dedent(f"""
        pagerduty:
          routing_key: {TEST_KEY}
          source: host-1
          change_events: {kinds}
        checks:
        """)
    return load(write(tmp_path, head + textwrap.indent(textwrap.dedent(checks), "  "), name),
                environ={})


BASE = """
- name: web
  http: {url: "http://127.0.0.1:1/health"}
- name: old
  tcp: {host: 127.0.0.1, port: 1}
- name: same
  tcp: {host: 127.0.0.1, port: 2}
  details: {token: !secret "@SECRET@"}
""".replace("@SECRET@", SECRET)


# ----------------------------------------------------------------------------- the diff


def test_the_diff_names_checks_added_removed_and_the_keys_that_changed(tmp_path):
    before = config_of(tmp_path, BASE)
    after = config_of(tmp_path, """
        - name: db
          tcp: {host: 127.0.0.1, port: 5432}
        - name: same
          tcp: {host: 127.0.0.1, port: 2}
          details: {token: !secret "@SECRET@"}
        - name: web
          http: {url: "http://127.0.0.1:1/other"}
          interval: 5s
          fail_after: 4
        """.replace("@SECRET@", SECRET), name="w2.yaml")
    diff = diff_checks(before.checks, after.checks)
    assert diff.added == ("db",) and diff.removed == ("old",)
    # moved in the file (another line, same definition): not changed
    assert diff.changed == {"web": ("interval", "fail_after")}
    assert diff.summary() == ("reload: 1 check added (db); 1 check removed (old); "
                              "1 check changed (web: interval, fail_after)")
    assert diff.details() == {"added": ["db"], "removed": ["old"],
                              "changed": {"web": ["interval", "fail_after"]}}


def test_the_diff_says_the_kind_when_only_the_probes_options_changed(tmp_path):
    before = config_of(tmp_path, BASE)
    after = config_of(tmp_path, BASE.replace("/health", "/ready").replace("port: 2", "port: 3")
                      .replace("tcp: {host: 127.0.0.1, port: 1}",
                               "http: {url: \"http://127.0.0.1:1/\"}"), name="w2.yaml")
    diff = diff_checks(before.checks, after.checks)
    assert diff.changed == {"web": ("http",), "old": ("kind",), "same": ("tcp",)}
    assert not diff_checks(before.checks, config_of(tmp_path, BASE, name="w3.yaml").checks)


def test_a_long_diff_lists_twenty_names_in_the_summary_and_all_in_the_details(tmp_path):
    many = "".join(f"- name: c{n}\n  tcp: {{host: 127.0.0.1, port: {n + 1}}}\n"
                   for n in range(25))
    diff = diff_checks((), config_of(tmp_path, many).checks)
    assert diff.summary().endswith("c18, c19 and 5 more)")
    assert len(diff.details()["added"]) == 25


# ----------------------------------------------------------------------------- config


def test_change_events_are_off_by_default_and_need_api_v2(tmp_path):
    plain = load(write(tmp_path, f"pagerduty:\n  routing_key: {TEST_KEY}\n"), environ={})
    assert plain.settings.pagerduty.change_events == []
    path = write(tmp_path, f"""
        pagerduty:
          routing_key: {TEST_KEY}
          api: v1
          change_events: [reload, silence]
        """, "v1.yaml")
    with pytest.raises(ConfigError) as caught:
        load(path, environ={})
    assert caught.value.errors == [
        f"{path}:5: pagerduty.change_events: change events need api v2 (the Change Events "
        "API takes an Events API v2 routing key) — set api: v2, or remove change_events"]
    path = write(tmp_path, f"pagerduty:\n  routing_key: {TEST_KEY}\n  change_events: "
                 "[reload, deploys]\n", "bad.yaml")
    with pytest.raises(ConfigError) as caught:
        load(path, environ={})
    assert caught.value.errors == [f"{path}:3: pagerduty.change_events[1]: must be one of "
                                   "reload, maintenance, silence, remediation, not 'deploys'"]


# ----------------------------------------------------------------------------- notes


@pytest.fixture
def store(tmp_path):
    store = FlakyStore(str(tmp_path / "state"))
    yield store
    store.close()


def notes_on(store: Store, config) -> ChangeNotes:
    notes = ChangeNotes(Recorder(store, Sender(store, LoggingAlert())), store)
    notes.apply(config, config)  # a start: nothing to say
    return notes


def queued(store: Store) -> list[Event]:
    return [item.event for item in store.pending(1000)]


def test_a_reload_queues_one_change_event_and_a_reload_without_changes_none(tmp_path, store):
    before = config_of(tmp_path, BASE)
    notes = notes_on(store, before)
    assert queued(store) == []
    notes.apply(before, config_of(tmp_path, BASE, name="w2.yaml"))
    assert queued(store) == []
    notes.apply(before, config_of(tmp_path, BASE.replace("old", "new"), name="w3.yaml"))
    [event] = queued(store)
    assert (event.action, event.incident_key, event.check) == (CHANGE, CHANGE_KEY, "reload")
    assert event.summary == "reload: 1 check added (new); 1 check removed (old)"
    assert event.details == {"kind": "reload", "added": ["new"], "removed": ["old"],
                             "changed": {}}
    assert event.source == "host-1"


def test_a_kind_not_turned_on_queues_nothing(tmp_path, store):
    notes = notes_on(store, config_of(tmp_path, BASE, kinds="[maintenance]"))
    assert notes.note("reload", "reload: x") is False
    assert notes.remediation("web", "web: remediation ran", {"exit_code": 0}) is False
    assert queued(store) == []


def test_the_remediation_function_queues_its_event_with_secrets_masked(tmp_path, store):
    notes = notes_on(store, config_of(tmp_path, BASE, kinds="[remediation]"))
    assert notes.remediation("web", f"web: `restart --token {SECRET}` exited 0; passes again",
                             {"command": f"restart --token {SECRET}", "exit_code": 0,
                              "output": [f"token={SECRET}"], "fixed": True})
    [event] = queued(store)
    assert event.check == "remediation" and SECRET not in json.dumps(event.to_dict())
    assert event.summary.startswith("web: `restart --token ")
    assert event.details["check"] == "web" and event.details["exit_code"] == 0
    assert event.details["kind"] == "remediation" and event.details["fixed"] is True


def window(name: str, start: float, end: float, checks=("web",)) -> Window:
    return Window(name=name, checks=tuple(checks), start=start, end=end)


def test_a_window_is_announced_once_when_it_starts_and_once_when_it_ends(tmp_path, store):
    config = config_of(tmp_path, BASE, kinds="[maintenance]")
    notes = notes_on(store, config)
    holds = Holds((window("db-move", 1000.0, 2000.0, ("w*", "old")),), ["web", "old", "same"])
    notes.tick(holds, [], 999.0)
    assert queued(store) == []
    for now in (1000.5, 1001.5, 1500.0):
        notes.tick(holds, [], now)
    [started] = queued(store)
    assert started.summary.startswith("maintenance db-move started (web, old) until ")
    assert started.timestamp == 1000.0
    assert started.details == {"kind": "maintenance", "window": "db-move", "state": "started",
                               "start": "1970-01-01T00:16:40+00:00",
                               "end": "1970-01-01T00:33:20+00:00", "patterns": ["w*", "old"],
                               "checks": ["web", "old"]}
    # a restart inside the window: a new ChangeNotes on the same state announces nothing
    again = notes_on(store, config)
    again.tick(holds, [], 1600.0)
    assert len(queued(store)) == 1
    again.tick(holds, [], 2000.2)
    again.tick(holds, [], 2001.2)
    ended = queued(store)[1:]
    assert [event.details["state"] for event in ended] == ["ended"]
    assert ended[0].summary == ("maintenance db-move ended (web, old): held pages of checks "
                                "still failing go out now")
    assert ended[0].timestamp == 2000.0
    assert json.loads(store.get_meta(META)) == {"windows": {}, "silences": {}}


def test_a_window_that_ended_while_the_runner_was_down_is_announced_at_the_next_start(
        tmp_path, store):
    config = config_of(tmp_path, BASE, kinds="[maintenance]")
    holds = Holds((window("m", 1000.0, 2000.0),), ["web"])
    notes_on(store, config).tick(holds, [], 1500.0)
    notes_on(store, config).tick(holds, [], 5000.0)  # down from 1500 to 5000
    assert [e.details["state"] for e in queued(store)] == ["started", "ended"]
    assert queued(store)[1].timestamp == 2000.0  # when it ended, not when it was noticed


def test_a_store_refusing_the_write_announces_nothing_and_the_next_tick_does(tmp_path, store):
    notes = notes_on(store, config_of(tmp_path, BASE, kinds="[maintenance, silence]"))
    holds = Holds((window("m", 1000.0, 2000.0),), ["web"])
    notes.tick(holds, [], 10.0)  # read what was announced while the store works
    store.broken = True
    notes.tick(holds, [], 1000.5)
    assert notes.recorder.trouble and "full" in notes.recorder.trouble
    store.broken = False
    notes.tick(holds, [], 1001.5)
    assert [e.details["state"] for e in queued(store)] == ["started"]


def silence(silence_id: str, until: float, created_at: float = 100.0) -> Silence:
    return Silence(id=silence_id, patterns=("web",), reason="deploying", created_at=created_at,
                   until=until, created_by="alice")


def test_silences_are_announced_when_they_start_expire_or_are_removed(tmp_path, store):
    config = config_of(tmp_path, BASE, kinds="[silence]")
    notes = notes_on(store, config)
    holds = Holds((), ["web", "old"])
    one, two = silence("s1", 500.0), silence("s2", 9000.0, created_at=101.0)
    notes.tick(holds, [one, two], 102.0)
    notes.tick(holds, [one, two], 103.0)
    started = queued(store)
    assert [e.details["silence"] for e in started] == ["s1", "s2"]
    assert started[0].summary.startswith("silence s1 started by alice: web (1 check) until ")
    assert started[0].summary.endswith(": deploying")
    assert started[0].details == {"kind": "silence", "silence": "s1", "state": "started",
                                  "matchers": ["web"], "checks": ["web"],
                                  "created_by": "alice", "reason": "deploying",
                                  "created_at": "1970-01-01T00:01:40+00:00",
                                  "until": "1970-01-01T00:08:20+00:00"}
    notes = notes_on(store, config)  # a restart: nothing announced twice
    notes.tick(holds, [two], 500.5)  # s1 expired
    notes.tick(holds, [], 600.0)  # s2 removed (unsilence) long before its end
    notes.tick(holds, None, 700.0)  # the store could not say: nothing changes
    ended = queued(store)[2:]
    assert [(e.details["silence"], e.details["state"]) for e in ended] == [
        ("s1", "expired"), ("s2", "removed")]
    assert ended[0].summary == ("silence s1 expired (web): held pages of checks still "
                                "failing go out now")
    assert (ended[0].timestamp, ended[1].timestamp) == (500.0, 600.0)


def test_turning_a_kind_off_forgets_what_it_announced(tmp_path, store):
    holds = Holds((window("m", 1000.0, 2000.0),), ["web"])
    notes = notes_on(store, config_of(tmp_path, BASE, kinds="[maintenance, reload]"))
    notes.tick(holds, [], 1500.0)
    off = config_of(tmp_path, BASE, kinds="[reload]", name="w2.yaml")
    notes.apply(off, off)
    notes.tick(holds, [], 1501.0)
    assert json.loads(store.get_meta(META))["windows"] == {}
    assert len(queued(store)) == 1  # its start; no end for a kind that is off


# ----------------------------------------------------------------------------- the event


def test_a_change_event_round_trips_and_old_rows_still_read():
    change = Event(CHANGE, CHANGE_KEY, "reload", "reload: x", "info", "host",
                   {"added": ["a"]}, timestamp=1.5, links=({"href": "https://x", "text": "x"},))
    assert Event.from_dict(json.loads(json.dumps(change.to_dict()))) == change
    old_row = {"action": TRIGGER, "incident_key": "k", "check": "c", "summary": "down",
               "severity": "critical", "source": "h", "details": {}}
    assert Event.from_dict(old_row).to_dict() == old_row  # and a trigger is written as before


# ----------------------------------------------------------------------------- delivery


def change(summary: str, **extra) -> Event:
    return Event(CHANGE, CHANGE_KEY, "reload", summary, "info", "host-1",
                 {"kind": "reload"}, **extra)


def trigger(key: str) -> Event:
    return Event(TRIGGER, key, key, f"{key} down", "critical", "host-1")


def test_the_sender_delivers_change_events_through_the_change_endpoint(tmp_path, pd):
    with Store(str(tmp_path)) as store:
        store.queue([change("reload: a", timestamp=1764633600.0,
                            links=({"href": "https://runbook", "text": "rb"},)),
                     trigger("t1"), change("reload: b")])
        sender = Sender(store, Alert(TEST_KEY, url=pd.url, retry_deadline=0),
                        ChangeEvent(TEST_KEY, url=pd.url, retry_deadline=0), lanes=1)
        sender.start()
        try:
            pd.wait_for(lambda: len(pd.change_events) == 2 and pd.events)
        finally:
            sender.stop(1)
        first = pd.change_events[0]["body"]
        assert first == {"routing_key": TEST_KEY,
                         "payload": {"summary": "reload: a",
                                     "timestamp": "2025-12-02T00:00:00+00:00",
                                     "source": "host-1", "custom_details": {"kind": "reload"}},
                         "links": [{"href": "https://runbook", "text": "rb"}]}
        assert [r["path"] for r in pd.requests if r["path"] == CHANGE_PATH] == [CHANGE_PATH] * 2
        assert store.outbox_stats(time.time())["pending"] == 0


def test_a_refused_change_event_is_a_dead_letter_and_later_events_go_on(tmp_path, pd):
    pd.fail_next(1, 400, path=CHANGE_PATH)
    with Store(str(tmp_path)) as store:
        store.queue([change("reload: refused"), trigger("t1"), change("reload: later")])
        sender = Sender(store, Alert(TEST_KEY, url=pd.url, retry_deadline=0),
                        ChangeEvent(TEST_KEY, url=pd.url, retry_deadline=0), lanes=1)
        sender.start()
        try:
            pd.wait_for(lambda: pd.change_events and pd.events)
            wait_for(lambda: store.dead_letters(), what="the dead letter")
        finally:
            sender.stop(1)
        [dead] = store.dead_letters()
        assert dead["event"]["action"] == CHANGE and "Injected failure" in dead["reason"]
        assert [c["body"]["payload"]["summary"] for c in pd.change_events] == ["reload: later"]


def test_without_a_change_client_a_change_event_is_refused_for_good_and_named(tmp_path, pd):
    """api v1 (make_changes gives none), or a row queued before the settings changed."""
    with Store(str(tmp_path)) as store:
        store.queue([change("reload: a"), trigger("t1")])
        sender = Sender(store, Alert(TEST_KEY, api="v1", url=pd.url, retry_deadline=0),
                        lanes=1)
        sender.start()
        try:
            pd.wait_for(lambda: pd.events)
            wait_for(lambda: store.dead_letters(), what="the dead letter")
        finally:
            sender.stop(1)
        assert "change events need api v2" in store.dead_letters()[0]["reason"]
        assert pd.change_events == []


def test_a_dry_run_logs_change_events(tmp_path, caplog):
    with Store(str(tmp_path)) as store:
        store.queue([change("reload: a")])
        sender = Sender(store, LoggingAlert(), lanes=1)
        sender.start()
        try:
            wait_for(lambda: store.outbox_stats(time.time())["pending"] == 0, what="drained")
        finally:
            sender.stop(1)
    assert "dry-run: would send change event: reload: a" in caplog.text


def test_a_result_after_a_boundary_announces_the_window_before_its_holds_are_asked(
        tmp_path, store):
    notes = notes_on(store, config_of(tmp_path, BASE, kinds="[maintenance]"))
    holds = Holds((window("m", 1000.0, 2000.0),), ["web"])
    notes.tick(holds, [], 999.0)  # learns the next boundary: 1000
    notes.result_at(holds, 999.5)
    assert queued(store) == []
    notes.result_at(holds, 1000.1)
    notes.result_at(holds, 1500.0)  # no boundary passed: not even looked at
    assert [e.details["state"] for e in queued(store)] == ["started"]
    notes.result_at(holds, 2000.0)
    assert [e.details["state"] for e in queued(store)] == ["started", "ended"]


def test_a_result_after_a_silence_expired_announces_that_before_its_holds_are_asked(
        tmp_path, store):
    notes = notes_on(store, config_of(tmp_path, BASE, kinds="[silence]"))
    holds = Holds((), ["web"])
    holds.set_silences([silence("s1", 500.0)])
    notes.tick(holds, [silence("s1", 500.0)], 102.0)
    notes.result_at(holds, 499.0)
    assert [e.details["state"] for e in queued(store)] == ["started"]
    notes.result_at(holds, 500.5)  # the holds see it expired: so is it announced, first
    assert [e.details["state"] for e in queued(store)] == ["started", "expired"]


def test_change_events_go_to_the_change_endpoint_of_the_configured_events_host(tmp_path):
    eu = load(write(tmp_path, f"pagerduty:\n  routing_key: {TEST_KEY}\n  url: "
                    "https://events.eu.pagerduty.com/\n", "eu.yaml"), environ={})
    client = make_changes(eu, dry_run=False)
    assert client.URL == "https://events.eu.pagerduty.com/v2/change/enqueue"
    assert client.routing_key == TEST_KEY and TEST_KEY not in repr(client)
    assert make_changes(eu, dry_run=True) is None  # the dry run's LoggingAlert logs them
    v1 = load(write(tmp_path, f"pagerduty:\n  routing_key: {TEST_KEY}\n  api: v1\n", "v1.yaml"),
              environ={})
    assert make_changes(v1, dry_run=False) is None
