"""The runner's HoldKeeper: which inputs each result gets, and the parents-first handshake."""

from __future__ import annotations

import logging

from watchdog.holding import HoldKeeper
from watchdog.holds import Silence, Window
from watchdog.model import TRIGGER, Check, CheckState, Policy, ProbeResult
from watchdog.state import step

FAIL = ProbeResult(ok=False, summary="down")
OK = ProbeResult(ok=True, summary="fine")


def check(name: str, *parents: str) -> Check:
    return Check(name=name, kind="command", probe=None, incident_key=f"k/{name}",
                 fail_after=2, depends_on=parents)


UPLINK, APP = check("uplink"), check("app", "uplink")


def keeper(*windows: Window) -> HoldKeeper:
    made = HoldKeeper()
    made.configure([UPLINK, APP, check("db")], windows)
    return made


def test_a_child_about_to_page_waits_for_its_parents_then_pages_if_they_pass():
    k = keeper()
    states = {"uplink": CheckState(), "app": CheckState(failures=1)}
    policy = Policy.of(APP)
    asked = k.ask(APP, states["app"], FAIL, policy, states, now=10.0)
    assert asked.inputs.hold.reason == "checking parents first: uplink"
    assert asked.probe_now == ["uplink"]
    after, events = step(states["app"], FAIL, policy, asked.inputs)
    assert events == [] and after.held
    states["app"] = after
    # The parent answers (passing): the child is to be probed again, and may page then.
    parent = k.ask(UPLINK, states["uplink"], OK, Policy.of(UPLINK), states, now=10.1)
    assert parent.probe_now == ["app"] and parent.inputs.hold is None
    again = k.ask(APP, after, FAIL, policy, states, now=10.2)
    assert again.inputs.hold is None and again.probe_now == []
    _, events = step(after, FAIL, policy, again.inputs)
    assert [e.action for e in events] == [TRIGGER]


def test_a_failing_parent_holds_the_child_and_its_page_lists_the_child():
    k = keeper()
    states = {"uplink": CheckState(failures=1), "app": CheckState(failures=3, held=True)}
    asked = k.ask(APP, states["app"], FAIL, Policy.of(APP), states, now=1.0)
    assert asked.inputs.hold.reason == "parent uplink failing" and asked.probe_now == []
    parent = k.ask(UPLINK, states["uplink"], FAIL, Policy.of(UPLINK), states, now=1.0)
    assert parent.inputs.dependents == ("app",)
    _, events = step(states["uplink"], FAIL, Policy.of(UPLINK), parent.inputs)
    assert events[0].details["dependents_failing"] == ["app"]


def test_silences_and_windows_are_read_and_logged_when_they_start_and_end(caplog):
    window = Window(name="nightly", checks=("db",), start=100.0, end=200.0)
    k = keeper(window)
    caplog.set_level(logging.INFO, logger="watchdog.runner")
    silence = Silence("s1", ("app",), "deploy", created_at=0.0, until=500.0, created_by="ops")
    k.refresh([silence], now=150.0)
    assert "silence s1 started by ops: app (1 check) for 5m50s: deploy" in caplog.text
    assert "maintenance nightly started (db)" in caplog.text
    states = {"db": CheckState()}
    assert k.ask(check("db"), CheckState(), FAIL, Policy.of(check("db")), states,
                 now=150.0).inputs.hold.reason == "maintenance nightly"
    assert k.holds_of("app", 150.0, states)[0].reason == "silenced by s1: deploy"
    k.refresh([], now=250.0)
    assert "silence s1 ended (app)" in caplog.text and "maintenance nightly ended" in caplog.text
    assert k.holds_of("app", 250.0, states) == []


def test_a_reload_keeps_the_silences_and_takes_the_new_windows():
    k = keeper()
    k.refresh([Silence("s1", ("app",), "x", created_at=0.0, until=500.0)], now=1.0)
    k.configure([UPLINK, APP, check("db")], [Window(name="w", checks=("db",), start=0.0,
                                                      end=10.0)])
    assert k.holds_of("app", 2.0, {})[0].reason == "silenced by s1: x"
    assert k.holds_of("db", 2.0, {})[0].reason == "maintenance w"
