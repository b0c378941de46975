"""The fake must answer like PagerDuty, or the tests built on it prove nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
import requests

from fakepd import CHANGE_PATH, TEST_KEY, V1_PATH, V2_PATH, FakePagerDuty
from pagerduty_api.alert import Alert
from pagerduty_api.change import ChangeEvent
from pagerduty_api.exceptions import InvalidEventException, PagerDutyAPIServerException

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture
def pd() -> Any:
    with FakePagerDuty() as fake:
        yield fake


def v2(action: str = "trigger", key: str | None = "k1", **payload: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"routing_key": TEST_KEY, "event_action": action}
    if key is not None:
        body["dedup_key"] = key
    if action == "trigger":
        body["payload"] = {
            "summary": "disk full",
            "source": "db1",
            "severity": "critical",
            **payload,
        }
    return body


def post(pd: FakePagerDuty, path: str, body: Any, timeout: float = 5) -> requests.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(pd.url + path, data=data, timeout=timeout)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({**v2(), "routing_key": None}, "routing_key"),
        ({**v2(), "routing_key": "short"}, "routing_key"),
        ({**v2(), "event_action": "explode"}, "event_action"),
        (v2("resolve", key=None), "dedup_key"),
        (v2("acknowledge", key=None), "dedup_key"),
        (v2(key="x" * 256), "dedup_key"),
        ({k: v for k, v in v2().items() if k != "payload"}, "payload"),
        (v2(summary=""), "summary"),
        (v2(summary="x" * 1025), "summary"),
        (v2(source=""), "source"),
        (v2(severity="fatal"), "severity"),
        ([v2()], "JSON object"),
        (b"{not json", "JSON"),
    ],
)
def test_v2_refuses_what_pagerduty_refuses(pd: FakePagerDuty, body: Any, error: str) -> None:
    """Each rule answers 400 with PagerDuty's body, so clients' 400 handling is exercised."""
    response = post(pd, V2_PATH, body)
    assert response.status_code == 400
    data = response.json()
    assert data["status"] == "invalid event"
    assert data["message"] == "Event object is invalid"
    assert any(error in e for e in data["errors"]), data["errors"]
    assert pd.events == [] and pd.incidents == []
    assert pd.requests[-1]["status"] == 400


def test_v2_incident_lifecycle(pd: FakePagerDuty) -> None:
    """Same key while open = same incident; resolve of nothing is a no-op; re-trigger = new."""
    assert post(pd, V2_PATH, v2()).json() == {
        "status": "success",
        "message": "Event processed",
        "dedup_key": "k1",
    }
    post(pd, V2_PATH, v2())
    assert post(pd, V2_PATH, v2("resolve")).status_code == 202
    post(pd, V2_PATH, v2("resolve"))
    post(pd, V2_PATH, v2("resolve", key="never-opened"))
    post(pd, V2_PATH, v2())
    incidents = pd.incidents
    assert [(i["key"], i["trigger_count"]) for i in incidents] == [("k1", 2), ("k1", 1)]
    assert incidents[0]["resolved_at"] is not None and incidents[1]["resolved_at"] is None
    assert list(pd.open_incidents()) == ["k1"]
    assert pd.actions_for("k1") == ["trigger", "trigger", "resolve", "resolve", "trigger"]
    event = pd.events[0]
    assert event["api"] == "v2" and event["body"]["payload"]["summary"] == "disk full"
    assert abs(event["received_at"] - time.time()) < 60


def test_v2_trigger_without_dedup_key_gets_one(pd: FakePagerDuty) -> None:
    response = post(pd, V2_PATH, v2(key=None))
    assert response.status_code == 202
    key = response.json()["dedup_key"]
    assert key and pd.incidents[0]["key"] == key


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"service_key": "short", "event_type": "trigger", "description": "x"}, "service_key"),
        ({"service_key": TEST_KEY, "event_type": "nope", "description": "x"}, "event_type"),
        ({"service_key": TEST_KEY, "event_type": "resolve"}, "incident_key"),
        ({"service_key": TEST_KEY, "event_type": "trigger"}, "description"),
    ],
)
def test_v1_refuses_what_pagerduty_refuses(pd: FakePagerDuty, body: Any, error: str) -> None:
    response = post(pd, V1_PATH, body)
    assert response.status_code == 400
    data = response.json()
    assert data["status"] == "invalid event"
    assert any(error in e for e in data["errors"]), data["errors"]


def test_v1_success_and_incidents(pd: FakePagerDuty) -> None:
    trigger = {"service_key": TEST_KEY, "event_type": "trigger", "description": "down"}
    answer = post(pd, V1_PATH, trigger)
    assert answer.status_code == 200
    key = answer.json()["incident_key"]
    assert answer.json()["status"] == "success"
    resolve = {"service_key": TEST_KEY, "event_type": "resolve", "incident_key": key}
    assert post(pd, V1_PATH, resolve).status_code == 200
    assert [(e["api"], e["action"], e["key"]) for e in pd.events] == [
        ("v1", "trigger", key),
        ("v1", "resolve", key),
    ]
    assert pd.incidents[0]["resolved_at"] is not None


def test_valid_keys(pd: FakePagerDuty) -> None:
    """An unknown integration key is refused, as a deleted integration would be."""
    pd.set_valid_keys({"f" * 32})
    assert post(pd, V2_PATH, v2()).status_code == 400
    pd.set_valid_keys(None)
    assert post(pd, V2_PATH, v2()).status_code == 202


def test_unknown_path_is_404(pd: FakePagerDuty) -> None:
    assert post(pd, "/v2/nothing", v2()).status_code == 404
    assert requests.get(pd.url + V2_PATH, timeout=5).status_code == 404


def test_fail_next_and_retry_after(pd: FakePagerDuty) -> None:
    """Injected failures come first, in order, then normal service resumes."""
    pd.fail_next(1, status=429, retry_after=2)
    pd.fail_next(1, status=403)
    pd.fail_next(1, status=500)
    first = post(pd, V2_PATH, v2())
    assert first.status_code == 429 and first.headers["Retry-After"] == "2"
    assert first.json()["status"] == "throttle event"
    assert post(pd, V2_PATH, v2()).status_code == 403
    assert post(pd, V2_PATH, v2()).status_code == 500
    assert post(pd, V2_PATH, v2()).status_code == 202
    assert [r["status"] for r in pd.requests] == [429, 403, 500, 202]
    assert len(pd.events) == 1


def test_outage_modes(pd: FakePagerDuty) -> None:
    pd.set_mode("500")
    assert post(pd, V2_PATH, v2()).status_code == 500
    pd.set_mode("429", retry_after=0.5)
    answer = post(pd, V2_PATH, v2())
    assert answer.status_code == 429 and answer.headers["Retry-After"] == "0.5"
    pd.set_mode("ok")
    assert post(pd, V2_PATH, v2()).status_code == 202
    with pytest.raises(ValueError):
        pd.set_mode("flaky")


def test_hang_holds_until_mode_changes_then_drops(pd: FakePagerDuty) -> None:
    """A hung request is never answered nor processed, even after the outage ends."""
    pd.set_mode("hang")
    outcome: list[Any] = []

    def call() -> None:
        try:
            outcome.append(post(pd, V2_PATH, v2(), timeout=10).status_code)
        except requests.RequestException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    pd.wait_for(lambda: pd.hanging == 1)
    time.sleep(0.1)
    assert outcome == []
    pd.set_mode("ok")
    thread.join(5)
    assert len(outcome) == 1 and isinstance(outcome[0], requests.ConnectionError)
    assert pd.events == [] and pd.requests[0]["status"] is None
    assert post(pd, V2_PATH, v2()).status_code == 202


def test_stop_releases_hung_requests_promptly() -> None:
    pd = FakePagerDuty().start()
    pd.set_mode("hang")
    thread = threading.Thread(
        target=lambda: pytest.raises(requests.RequestException, post, pd, V2_PATH, v2(), 10)
    )
    thread.start()
    pd.wait_for(lambda: pd.hanging == 1)
    started = time.monotonic()
    pd.stop()
    thread.join(5)
    assert not thread.is_alive()
    assert time.monotonic() - started < 3


def test_stop_cuts_keep_alive_connections() -> None:
    """A stopped fake must look down even to a client holding a pooled connection."""
    pd = FakePagerDuty().start()
    session = requests.Session()
    url = pd.url + V2_PATH
    assert session.post(url, json=v2(), timeout=5).status_code == 202
    pd.stop()
    with pytest.raises(requests.ConnectionError):
        session.post(url, json=v2(), timeout=5)


def test_wait_for_returns_value_or_raises_with_snapshot(pd: FakePagerDuty) -> None:
    assert pd.wait_for(lambda: 42, timeout=1) == 42
    post(pd, V2_PATH, v2())
    with pytest.raises(AssertionError, match=r"events=1 .*trigger"):
        pd.wait_for(lambda: len(pd.events) > 5, timeout=0.1)


def test_snapshots_are_copies(pd: FakePagerDuty) -> None:
    post(pd, V2_PATH, v2())
    pd.events[0]["action"] = "changed"
    pd.incidents[0]["trigger_count"] = 99
    assert pd.events[0]["action"] == "trigger"
    assert pd.incidents[0]["trigger_count"] == 1


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_real_client_round_trip(pd: FakePagerDuty, api: str) -> None:
    """The project's client and the fake agree on paths, bodies and answers."""
    alert = Alert(TEST_KEY, api=api, url=pd.url, retry_deadline=0, timeout=5)
    alert.trigger("disk full", incident_key="db1/disk", severity="warning", source="db1")
    alert.resolve(incident_key="db1/disk")
    assert pd.actions_for("db1/disk") == ["trigger", "resolve"]
    pd.fail_next(1, status=400)
    with pytest.raises(InvalidEventException):
        alert.trigger("again", incident_key="db1/disk")
    pd.set_mode("500")
    with pytest.raises(PagerDutyAPIServerException) as info:
        alert.trigger("again", incident_key="db1/disk")
    assert info.value.status_code == 500


def test_standalone_prints_url_and_logs_events(tmp_path: Any) -> None:
    """The benchmark runs the fake as a process and reads accepted events from --log."""
    log = tmp_path / "events.jsonl"
    proc = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "fakepd.py"), "--port", "0", "--log", str(log)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        answer = requests.post(url + V2_PATH, json=v2(), timeout=5)
        assert answer.status_code == 202
        lines = log.read_text().splitlines()
        assert len(lines) == 1
        assert json.loads(lines[0])["key"] == "k1"
    finally:
        proc.terminate()
        assert proc.wait(5) == 0


def test_rate_limit_per_routing_key_over_a_rolling_window(pd: FakePagerDuty) -> None:
    """Like PagerDuty: n calls per key in any window, then 429 (v1: 403); other keys are free."""
    pd.set_rate_limit(3, window=0.5)
    assert [post(pd, V2_PATH, v2()).status_code for _ in range(4)] == [202, 202, 202, 429]
    throttled = post(pd, V2_PATH, v2())
    assert throttled.status_code == 429 and throttled.json()["status"] == "throttle event"
    other = {"service_key": "f" * 32, "event_type": "trigger", "description": "x"}
    assert [post(pd, V1_PATH, other).status_code for _ in range(4)] == [200, 200, 200, 403]
    assert pd.rate_limited == 3 and len(pd.events) == 6
    assert [r.get("rate_limited", False) for r in pd.requests][3:5] == [True, True]
    time.sleep(0.6)  # the whole window passes: the key's budget is back
    assert post(pd, V2_PATH, v2()).status_code == 202


def test_rate_limit_counts_refused_calls_too(pd: FakePagerDuty) -> None:
    """A call refused for any reason still counts, so hammering a throttled key keeps it so."""
    pd.set_rate_limit(2, window=0.5)
    pd.fail_next(1, status=500)
    assert post(pd, V2_PATH, v2()).status_code == 500
    assert post(pd, V2_PATH, v2(summary="")).status_code == 400
    assert post(pd, V2_PATH, v2()).status_code == 429
    assert pd.events == [] and pd.rate_limited == 1
    pd.set_rate_limit(None)
    assert post(pd, V2_PATH, v2()).status_code == 202
    with pytest.raises(ValueError, match="calls >= 1"):
        pd.set_rate_limit(0)


# --- The Change Events API ---------------------------------------------------------------------


def test_change_events_are_answered_and_kept_apart_from_alert_events(pd):
    """202 and PagerDuty's words, through the real client; refused ones are 400 with errors."""
    change = ChangeEvent(TEST_KEY, url=pd.url, retry_deadline=0)
    assert change.send("Deployed v2", source="ci", links=[{"href": "https://ci/1"}]) == {
        "status": "success", "message": "Change event processed",
    }
    assert Alert(TEST_KEY, api="v2", url=pd.url).trigger("disk full")["status"] == "success"
    [recorded] = pd.change_events
    assert recorded["body"]["payload"] == {"summary": "Deployed v2", "source": "ci"}
    assert [event["action"] for event in pd.events] == ["trigger"]  # the change is not one
    assert recorded["seq"] < pd.events[0]["seq"]  # one count over both: the arrival order
    pd.fail_next(1, 400, path=CHANGE_PATH)  # only for change events: the trigger passes
    assert Alert(TEST_KEY, api="v2", url=pd.url).trigger("disk full")["status"] == "success"
    with pytest.raises(InvalidEventException, match="Injected failure"):
        change.send("Deployed v2.1")
    for body, error in [
        ({"routing_key": TEST_KEY, "payload": {}}, "'payload.summary' is missing or blank"),
        ({"routing_key": TEST_KEY, "payload": {"summary": "x" * 1025}}, "1024 characters"),
        ({"routing_key": "short", "payload": {"summary": "a"}}, "must be 32 characters"),
        ({"routing_key": TEST_KEY, "payload": {"summary": "a"}, "links": [{}]}, "'links'"),
        (["not an object"], "must be a JSON object"),
    ]:
        answer = post(pd, CHANGE_PATH, body)
        assert answer.status_code == 400 and error in " ".join(answer.json()["errors"])
    pd.set_valid_keys(["f" * 32])
    with pytest.raises(InvalidEventException, match="Invalid routing key"):
        change.send("Deployed v3")
    assert len(pd.change_events) == 1
    pd.set_valid_keys(None)
    pd.set_rate_limit(1)
    assert post(pd, CHANGE_PATH, {"routing_key": TEST_KEY, "payload": {"summary": "a"}}).ok
    assert post(pd, CHANGE_PATH, {"routing_key": TEST_KEY, "payload": {"summary": "a"}}
                ).status_code == 429
    pd.reset()
    assert pd.change_events == []
