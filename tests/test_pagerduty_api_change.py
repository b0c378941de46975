"""pagerduty_api.ChangeEvent: the Change Events API, with Alert's retries, limits and masking."""

# Standard library imports
import json
import logging
from datetime import datetime, timedelta, timezone

# Third party package imports
import pytest
import responses

# Local package imports
import pagerduty_api
from pagerduty_api import ChangeEvent
from pagerduty_api.exceptions import (
    ConfigurationException,
    InvalidEventException,
    PagerDutyAPIServerException,
)

KEY = "4baa5d20cfba466a5e075b02698f455c"
URL = "https://events.pagerduty.com/v2/change/enqueue"
EU_URL = "https://events.eu.pagerduty.com/v2/change/enqueue"
OK = {"status": "success", "message": "Change event processed"}


@pytest.fixture
def pd():
    with responses.RequestsMock() as rsps:
        yield rsps


def sent(pd, index=0):
    return json.loads(pd.calls[index].request.body)


def instant(change):
    """Retries without waiting: the clock advances by each wait instead."""
    now = [0.0]
    change._clock = lambda: now[0]
    change._sleep = lambda seconds: now.__setitem__(0, now[0] + seconds)
    change._jitter = lambda low, high: high
    return change


# --- The documented examples -------------------------------------------------------------------


def test_the_documented_example_sends_every_field(pd):
    pd.add(responses.POST, URL, json=OK, status=202)
    change = ChangeEvent(KEY)
    result = change.send(
        "Deployed api v2.3.1",
        source="ci.example.com",
        links=[{"href": "https://ci.example.com/build/812", "text": "Build 812"}],
        custom_details={"commit": "4f1c2e9", "by": "ana"},
        timestamp=datetime(2024, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=2))),
    )
    assert result == OK
    assert sent(pd) == {
        "routing_key": KEY,
        "payload": {
            "summary": "Deployed api v2.3.1",
            "timestamp": "2024-05-01T12:00:00+02:00",
            "source": "ci.example.com",
            "custom_details": {"commit": "4f1c2e9", "by": "ana"},
        },
        "links": [{"href": "https://ci.example.com/build/812", "text": "Build 812"}],
    }
    assert pd.calls[0].request.headers["Content-Type"] == "application/json"


def test_only_a_summary_is_needed_and_nothing_absent_is_sent(pd):
    pd.add(responses.POST, EU_URL, json=OK, status=202)
    change = ChangeEvent(KEY, url="https://events.eu.pagerduty.com/")
    assert change.URL == EU_URL
    assert change.send("Config pushed") == OK
    assert sent(pd) == {"routing_key": KEY, "payload": {"summary": "Config pushed"}}


def test_a_naive_timestamp_is_utc_and_a_string_goes_as_is(pd):
    pd.add(responses.POST, URL, json=OK, status=202)
    pd.add(responses.POST, URL, json=OK, status=202)
    ChangeEvent(KEY).send("a", timestamp=datetime(2024, 5, 1, 10, 30))
    ChangeEvent(KEY).send("b", timestamp="2024-05-01T10:30:00Z")
    assert sent(pd, 0)["payload"]["timestamp"] == "2024-05-01T10:30:00+00:00"
    assert sent(pd, 1)["payload"]["timestamp"] == "2024-05-01T10:30:00Z"


def test_the_client_is_imported_on_first_use():
    assert pagerduty_api.ChangeEvent is ChangeEvent
    assert "ChangeEvent" in pagerduty_api.__all__


# --- Limits, checked before sending -------------------------------------------------------------


@pytest.mark.parametrize("summary", ["", "   ", None, 42])
def test_a_missing_summary_is_refused_before_sending(pd, summary):
    with pytest.raises(InvalidEventException) as caught:
        ChangeEvent(KEY).send(summary)
    assert caught.value.status_code is None
    assert caught.value.errors == ["a change event needs a summary: it must not be empty or blank"]
    assert len(pd.calls) == 0


def test_a_long_summary_is_cut_to_1024_characters_with_a_marker(pd):
    pd.add(responses.POST, URL, json=OK, status=202)
    ChangeEvent(KEY).send("x" * 5000)
    summary = sent(pd)["payload"]["summary"]
    assert len(summary) == 1024 and summary.endswith("… [truncated]")


def test_a_timestamp_of_another_type_is_a_type_error(pd):
    with pytest.raises(TypeError, match="timestamp must be a datetime or an ISO 8601 string"):
        ChangeEvent(KEY).send("a", timestamp=1714560000)
    assert len(pd.calls) == 0


def test_oversized_custom_details_are_trimmed(pd, caplog):
    pd.add(responses.POST, URL, json=OK, status=202)
    with caplog.at_level(logging.WARNING, logger="pagerduty_api"):
        ChangeEvent(KEY).send("a", custom_details={"rows": ["r" * 1000] * 600})
    details = sent(pd)["payload"]["custom_details"]
    assert details["trimmed"] is True and details["original_size_bytes"] > 512_000
    assert len(pd.calls[0].request.body) <= 512_000
    assert "custom_details trimmed" in caplog.text


def test_a_body_too_big_without_details_to_trim_is_refused(pd):
    links = [{"href": "https://ci.example.com/" + "p" * 1000, "text": "t"}] * 600
    with pytest.raises(InvalidEventException, match="PagerDuty accepts at most 512000"):
        ChangeEvent(KEY).send("a", links=links)
    assert len(pd.calls) == 0


@pytest.mark.parametrize(("key", "got"), [
    ("short", "5 characters"),
    (KEY + "x", "33 characters"),
    (None, "a NoneType"),
])
def test_the_routing_key_must_be_32_characters(key, got):
    with pytest.raises(ConfigurationException) as caught:
        ChangeEvent(key)
    assert str(caught.value) == (
        "routing_key must be the 32-character integration key of an Events API v2 "
        f"integration, got {got}"
    )


def test_bad_settings_are_refused_as_alerts_are():
    with pytest.raises(ConfigurationException, match="url must start with"):
        ChangeEvent(KEY, url="events.pagerduty.com")
    with pytest.raises(ConfigurationException, match="timeout must be"):
        ChangeEvent(KEY, timeout=0)


# --- Answers, retries and masking --------------------------------------------------------------


def test_a_400_is_never_retried_and_names_the_key_masked(pd):
    pd.add(responses.POST, URL, status=400, json={
        "status": "invalid event", "message": "Event object is invalid",
        "errors": [f"Invalid routing key {KEY}"],
    })
    with pytest.raises(InvalidEventException) as caught:
        instant(ChangeEvent(KEY)).send("a")
    exc = caught.value
    assert exc.status_code == 400 and exc.errors == ["Invalid routing key …455c"]
    assert "change events need the integration key of an Events API v2 integration" in str(exc)
    assert KEY not in str(exc) + exc.body
    assert len(pd.calls) == 1


def test_a_400_about_something_else_has_no_key_hint(pd):
    pd.add(responses.POST, URL, status=400, json={"errors": ["'payload.summary' is missing"]})
    with pytest.raises(InvalidEventException) as caught:
        ChangeEvent(KEY).send("a")
    assert str(caught.value) == "PagerDuty refused the request (400): 'payload.summary' is missing"


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_throttling_and_server_errors_are_retried_with_backoff(pd, status, caplog):
    pd.add(responses.POST, URL, status=status, body="busy")
    pd.add(responses.POST, URL, json=OK, status=202)
    with caplog.at_level(logging.WARNING, logger="pagerduty_api"):
        assert instant(ChangeEvent(KEY)).send("a") == OK
    assert len(pd.calls) == 2
    assert f"PagerDuty POST v2/change/enqueue: {status}: busy; retry in 0.50 s" in caplog.text


def test_retries_end_at_the_retry_deadline(pd):
    pd.add(responses.POST, URL, status=503, body="down")
    with pytest.raises(PagerDutyAPIServerException) as caught:
        instant(ChangeEvent(KEY, retry_deadline=5)).send("a")
    assert caught.value.status_code == 503
    assert "gave up after 4 attempts" in str(caught.value)


def test_a_403_is_not_a_throttle_on_change_events(pd):
    pd.add(responses.POST, URL, status=403, body="forbidden")
    with pytest.raises(PagerDutyAPIServerException, match=r"403 \(not retried\)"):
        instant(ChangeEvent(KEY)).send("a")
    assert len(pd.calls) == 1


def test_the_key_stays_secret():
    change = ChangeEvent(KEY)
    assert repr(change) == "ChangeEvent(key='…455c', url='https://events.pagerduty.com')"
    assert change.routing_key == KEY and KEY not in repr(change) + str(change)
