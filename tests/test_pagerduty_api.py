"""The documented contract of pagerduty_api: the seed's examples as written, on v1 and v2."""

# Standard library imports
import hashlib
import json
import pickle
import random
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

# Third party package imports
import pytest
import requests
import responses

# Local package imports
import pagerduty_api
from pagerduty_api import Alert
from pagerduty_api._deadline import Deadline
from pagerduty_api._transport import jsonable, mask_key, redact
from pagerduty_api.base import AuthorizedResource, Resource
from pagerduty_api.exceptions import (
    ConfigurationException,
    IncidentKeyException,
    InvalidEventException,
    PagerDutyAPIServerException,
)
from pagerduty_api.version import __version__

KEY = "4baa5d20cfba466a5e075b02698f455c"
V1_URL = "https://events.pagerduty.com/generic/2010-04-15/create_event.json"
V2_URL = "https://events.pagerduty.com/v2/enqueue"
FAKE = "http://127.0.0.1:9"
SEED_KEY = "0ace123ba99999160f35ea3bd381a318"  # md5('No data received'), as the seed shows
HOST = "watchdog-01"


def v1_ok(incident_key=SEED_KEY):
    return {"status": "success", "message": "Event processed", "incident_key": incident_key}


def v2_ok(dedup_key=SEED_KEY):
    return {"status": "success", "message": "Event processed", "dedup_key": dedup_key}


@pytest.fixture
def pd():
    with responses.RequestsMock() as rsps:
        yield rsps


@pytest.fixture(autouse=True)
def host(monkeypatch):
    monkeypatch.setattr("pagerduty_api.alert.socket.gethostname", lambda: HOST)
    monkeypatch.delenv("PAGERDUTY_API_KEY", raising=False)


def sent(pd, index=0):
    return json.loads(pd.calls[index].request.body)


# --- The seed document, example by example (api v1, the default) ---------------------------


def test_seed_using_alerts():
    alert = Alert(service_key="4baa5d20cfba466a5e075b02698f455c")
    assert alert.api == "v1"
    assert alert.url == "https://events.pagerduty.com"
    assert alert.incident_key is None


def test_seed_trigger_alert(pd):
    pd.add(responses.POST, V1_URL, json=v1_ok(), status=200)
    alert = Alert(service_key="4baa5d20cfba466a5e075b02698f455c")
    result = alert.trigger(
        description="No data received",
        client="My Client",
        client_url="http://mysite.com",
        details={"some_key": "some_value"},
    )
    assert result == v1_ok()
    assert sent(pd) == {
        "service_key": KEY,
        "event_type": "trigger",
        "incident_key": SEED_KEY,
        "description": "No data received",
        "client": "My Client",
        "client_url": "http://mysite.com",
        "details": {"some_key": "some_value"},
    }
    assert alert.incident_key == SEED_KEY


def test_seed_acknowledge_alert(pd):
    pd.add(responses.POST, V1_URL, json=v1_ok(), status=200)
    alert = Alert(service_key="4baa5d20cfba466a5e075b02698f455c")
    result = alert.acknowledge(
        incident_key="0ace123ba99999160f35ea3bd381a318",
        description="Working on it.",
        details={"some_key": "some_value"},
    )
    assert result == v1_ok()
    assert sent(pd) == {
        "service_key": KEY,
        "event_type": "acknowledge",
        "incident_key": SEED_KEY,
        "description": "Working on it.",
        "details": {"some_key": "some_value"},
    }


def test_seed_resolve_alert(pd):
    pd.add(responses.POST, V1_URL, json=v1_ok(), status=200)
    alert = Alert(service_key="4baa5d20cfba466a5e075b02698f455c")
    result = alert.resolve(
        incident_key="0ace123ba99999160f35ea3bd381a318",
        description="Fixed it.",
        details={"some_key": "some_value"},
    )
    assert result == v1_ok()
    assert sent(pd) == {
        "service_key": KEY,
        "event_type": "resolve",
        "incident_key": SEED_KEY,
        "description": "Fixed it.",
        "details": {"some_key": "some_value"},
    }


# --- The same calls on Events API v2 ---------------------------------------------------------


def test_seed_trigger_alert_v2(pd):
    pd.add(responses.POST, V2_URL, json=v2_ok(), status=202)
    alert = Alert(service_key="4baa5d20cfba466a5e075b02698f455c", api="v2")
    result = alert.trigger(
        description="No data received",
        client="My Client",
        client_url="http://mysite.com",
        details={"some_key": "some_value"},
    )
    assert result == v2_ok()
    assert sent(pd) == {
        "routing_key": KEY,
        "event_action": "trigger",
        "dedup_key": SEED_KEY,
        "payload": {
            "summary": "No data received",
            "source": HOST,
            "severity": "critical",
            "custom_details": {"some_key": "some_value"},
        },
        "client": "My Client",
        "client_url": "http://mysite.com",
    }
    assert alert.incident_key == SEED_KEY


@pytest.mark.parametrize(
    ("method", "description"), [("acknowledge", "Working on it."), ("resolve", "Fixed it.")]
)
def test_seed_follow_ups_v2_send_only_the_key(pd, method, description):
    pd.add(responses.POST, V2_URL, json=v2_ok(), status=202)
    alert = Alert(service_key="4baa5d20cfba466a5e075b02698f455c", api="v2")
    result = getattr(alert, method)(
        incident_key="0ace123ba99999160f35ea3bd381a318",
        description=description,
        details={"some_key": "some_value"},
    )
    assert result == v2_ok()
    assert sent(pd) == {"routing_key": KEY, "event_action": method, "dedup_key": SEED_KEY}


# --- Remembered keys ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("api", "url", "ok", "key_field", "action_field"),
    [
        ("v1", V1_URL, v1_ok(), "incident_key", "event_type"),
        ("v2", V2_URL, v2_ok(), "dedup_key", "event_action"),
    ],
)
def test_follow_ups_use_the_last_trigger_key(pd, api, url, ok, key_field, action_field):
    pd.add(responses.POST, url, json=ok)
    alert = Alert(service_key=KEY, api=api)
    alert.trigger("first", incident_key="one")
    alert.trigger("second", incident_key="two")
    alert.acknowledge()
    alert.resolve()
    assert [sent(pd, i)[key_field] for i in range(4)] == ["one", "two", "two", "two"]
    assert [sent(pd, i)[action_field] for i in range(2, 4)] == ["acknowledge", "resolve"]


@pytest.mark.parametrize("api", ["v1", "v2"])
@pytest.mark.parametrize("method", ["acknowledge", "resolve"])
def test_follow_up_without_any_key_raises(pd, api, method):
    alert = Alert(service_key=KEY, api=api)
    with pytest.raises(IncidentKeyException, match="trigger"):
        getattr(alert, method)()
    assert len(pd.calls) == 0


def test_explicit_key_on_follow_up_does_not_replace_the_remembered_one(pd):
    pd.add(responses.POST, V1_URL, json=v1_ok())
    alert = Alert(service_key=KEY)
    alert.trigger("No data received")
    alert.resolve(incident_key="other")
    assert alert.incident_key == SEED_KEY
    assert sent(pd, 1) == {"service_key": KEY, "event_type": "resolve", "incident_key": "other"}


def test_empty_incident_key_falls_back_to_md5(pd):
    pd.add(responses.POST, V1_URL, json=v1_ok())
    Alert(service_key=KEY).trigger("No data received", incident_key="")
    assert sent(pd)["incident_key"] == SEED_KEY


def test_md5_is_of_the_utf8_description(pd):
    pd.add(responses.POST, V1_URL, json=v1_ok())
    alert = Alert(service_key=KEY)
    alert.trigger("Disque plein à 99 % ✓")
    assert alert.incident_key == hashlib.md5("Disque plein à 99 % ✓".encode()).hexdigest()
    assert sent(pd)["description"] == "Disque plein à 99 % ✓"


def test_lone_surrogate_still_gets_a_key_and_valid_utf8(pd):
    pd.add(responses.POST, V1_URL, json=v1_ok())
    alert = Alert(service_key=KEY)
    alert.trigger("bad \udcff byte")
    expected = hashlib.md5("bad \udcff byte".encode("utf-8", "surrogatepass")).hexdigest()
    assert alert.incident_key == expected
    assert sent(pd)["description"] == "bad ? byte"


# --- v2 extras, sources and severities ---------------------------------------------------------


def test_v2_trigger_with_every_extra(pd):
    pd.add(responses.POST, V2_URL, json=v2_ok("disk"), status=202)
    alert = Alert(service_key=KEY, api="v2", source="db-1", severity="warning")
    when = datetime(2024, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    alert.trigger(
        "Disk 91% full",
        incident_key="disk",
        client="pd-watchdog",
        client_url="http://watchdog.local",
        details={"used": 91},
        severity="error",
        source="db-2",
        component="postgres",
        group="storage",
        event_class="disk",
        timestamp=when,
        links=[{"href": "http://grafana.local/d/1", "text": "Dashboard"}],
        images=[{"src": "http://grafana.local/p.png", "href": "http://g", "alt": "graph"}],
    )
    assert sent(pd) == {
        "routing_key": KEY,
        "event_action": "trigger",
        "dedup_key": "disk",
        "payload": {
            "summary": "Disk 91% full",
            "source": "db-2",
            "severity": "error",
            "timestamp": "2024-05-01T12:00:00+02:00",
            "component": "postgres",
            "group": "storage",
            "class": "disk",
            "custom_details": {"used": 91},
        },
        "client": "pd-watchdog",
        "client_url": "http://watchdog.local",
        "links": [{"href": "http://grafana.local/d/1", "text": "Dashboard"}],
        "images": [{"src": "http://grafana.local/p.png", "href": "http://g", "alt": "graph"}],
    }


def test_v1_trigger_sends_links_and_images_as_contexts(pd):
    pd.add(responses.POST, V1_URL, json=v1_ok("disk"))
    Alert(service_key=KEY).trigger(
        "Disk 91% full", incident_key="disk", component="postgres",
        links=[{"href": "http://grafana.local/d/1", "text": "Dashboard"}],
        images=[{"src": "https://grafana.local/p.png", "alt": "graph"}],
    )
    assert sent(pd) == {
        "service_key": KEY,
        "event_type": "trigger",
        "incident_key": "disk",
        "description": "Disk 91% full",
        "contexts": [
            {"type": "link", "href": "http://grafana.local/d/1", "text": "Dashboard"},
            {"type": "image", "src": "https://grafana.local/p.png", "alt": "graph"},
        ],
    }


def test_v2_minimal_trigger_uses_constructor_defaults(pd):
    pd.add(responses.POST, V2_URL, json=v2_ok(), status=202)
    Alert(service_key=KEY, api="v2", source="db-1", severity="info").trigger("No data received")
    assert sent(pd) == {
        "routing_key": KEY,
        "event_action": "trigger",
        "dedup_key": SEED_KEY,
        "payload": {"summary": "No data received", "source": "db-1", "severity": "info"},
    }


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        (datetime(2024, 5, 1, 12, 0), "2024-05-01T12:00:00+00:00"),
        ("2024-05-01T12:00:00Z", "2024-05-01T12:00:00Z"),
    ],
)
def test_v2_timestamps(pd, timestamp, expected):
    pd.add(responses.POST, V2_URL, json=v2_ok(), status=202)
    Alert(service_key=KEY, api="v2").trigger("x", timestamp=timestamp)
    assert sent(pd)["payload"]["timestamp"] == expected


def test_v2_timestamp_of_another_type_is_refused(pd):
    with pytest.raises(TypeError, match="timestamp"):
        Alert(service_key=KEY, api="v2").trigger("x", timestamp=1714564800)
    assert len(pd.calls) == 0


def test_v2_source_falls_back_to_unknown_without_hostname(monkeypatch):
    monkeypatch.setattr("pagerduty_api.alert.socket.gethostname", lambda: "")
    assert Alert(service_key=KEY, api="v2").source == "unknown"


@pytest.mark.parametrize("severity", ["CRITICAL", "fatal", ""])
def test_v2_bad_severity_is_a_value_error_before_sending(pd, severity):
    alert = Alert(service_key=KEY, api="v2")
    with pytest.raises(ValueError, match="severity"):
        alert.trigger("x", severity=severity)
    assert len(pd.calls) == 0
    assert alert.incident_key is None


def test_v1_ignores_v2_only_extras(pd):
    pd.add(responses.POST, V1_URL, json=v1_ok())
    Alert(service_key=KEY).trigger(
        "No data received",
        severity="nonsense",
        source="db-2",
        component="c",
        group="g",
        event_class="k",
        timestamp=object(),
    )
    assert sent(pd) == {
        "service_key": KEY,
        "event_type": "trigger",
        "incident_key": SEED_KEY,
        "description": "No data received",
    }


def test_details_that_json_cannot_carry_are_made_safe(pd):
    pd.add(responses.POST, V1_URL, json=v1_ok())
    when = datetime(2024, 5, 1, tzinfo=timezone.utc)
    Alert(service_key=KEY).trigger(
        "x",
        details={"nan": float("nan"), "inf": float("-inf"), 3: (1, 2.5), "at": when, "n": None},
    )
    assert sent(pd)["details"] == {
        "nan": "nan",
        "inf": "-inf",
        "3": [1, 2.5],
        "at": "2024-05-01 00:00:00+00:00",
        "n": None,
    }


def test_jsonable_turns_sets_into_lists():
    assert jsonable({"s": {1}, "f": frozenset({True})}) == {"s": [1], "f": [True]}


# --- Construction ------------------------------------------------------------------------------


@pytest.mark.parametrize("api", ["v3", "V2", None, ""])
def test_unknown_api_is_a_configuration_error(api):
    with pytest.raises(ConfigurationException, match="api"):
        Alert(service_key=KEY, api=api)


@pytest.mark.parametrize("service_key", ["", "   ", None, 42])
def test_service_key_is_required(service_key):
    with pytest.raises(ConfigurationException, match="service_key"):
        Alert(service_key=service_key)


def test_bad_constructor_severity_is_a_configuration_error():
    with pytest.raises(ConfigurationException, match="severity"):
        Alert(service_key=KEY, api="v2", severity="major")


@pytest.mark.parametrize("url", ["events.pagerduty.com", "ftp://x", 5])
def test_url_needs_a_scheme(url):
    with pytest.raises(ConfigurationException, match="url"):
        Alert(service_key=KEY, url=url)


def test_url_none_means_the_default():
    assert Alert(service_key=KEY, url=None).url == "https://events.pagerduty.com"


@pytest.mark.parametrize("timeout", [0, -1, "10", True, None, float("inf"), float("nan")])
def test_timeout_must_be_positive_seconds(timeout):
    with pytest.raises(ConfigurationException, match="timeout"):
        Alert(service_key=KEY, timeout=timeout)


@pytest.mark.parametrize("deadline", [-1, "60", False, None])
def test_retry_deadline_must_be_seconds(deadline):
    with pytest.raises(ConfigurationException, match="retry_deadline"):
        Alert(service_key=KEY, retry_deadline=deadline)


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_trailing_slash_and_fake_url(pd, api):
    path = "generic/2010-04-15/create_event.json" if api == "v1" else "v2/enqueue"
    pd.add(responses.POST, f"{FAKE}/{path}", json=v1_ok())
    alert = Alert(service_key=KEY, api=api, url=FAKE + "/")
    assert alert.url == FAKE
    assert alert.trigger("No data received") == v1_ok()


def test_eu_url(pd):
    eu = "https://events.eu.pagerduty.com/v2/enqueue"
    pd.add(responses.POST, eu, json=v2_ok(), status=202)
    alert = Alert(service_key=KEY, api="v2", url="https://events.eu.pagerduty.com")
    assert alert.trigger("No data received") == v2_ok()


def test_every_request_has_the_timeout_and_json_headers_and_no_token(pd):
    pd.add(responses.POST, V1_URL, json=v1_ok())
    Alert(service_key=KEY, timeout=3.5).trigger("No data received")
    request = pd.calls[0].request
    timeout = request.req_kwargs["timeout"]  # one deadline for the whole exchange
    assert isinstance(timeout, Deadline) and timeout.seconds == 3.5
    assert request.req_kwargs["stream"] is True  # the body is read against the deadline
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"] == f"pagerduty_api/{__version__}"
    assert "Authorization" not in request.headers


def test_one_session_is_created_lazily_and_reused(pd):
    pd.add(responses.POST, V1_URL, json=v1_ok())
    alert = Alert(service_key=KEY)
    assert alert._session is None
    alert.trigger("a")
    session = alert.session
    alert.resolve()
    assert alert.session is session
    alert.close()
    assert alert._session is None
    alert.close()  # closing twice is harmless


def test_callers_session_is_used_and_left_open(pd):
    pd.add(responses.POST, V1_URL, json=v1_ok())
    session = requests.Session()
    session.headers["X-Caller"] = "yes"
    with Alert(service_key=KEY, session=session) as alert:
        alert.trigger("a")
        assert alert.session is session
    assert alert.session is session
    assert pd.calls[0].request.headers["X-Caller"] == "yes"


def test_repr_shows_only_the_end_of_the_key():
    alert = Alert(service_key=KEY, api="v2", url=FAKE)
    assert repr(alert) == "Alert(api='v2', key='…455c', url='http://127.0.0.1:9')"
    assert KEY not in repr(alert) and KEY not in str(vars(alert).get("service_key", ""))
    assert alert.service_key == KEY
    assert repr(Alert(service_key="short")) == (
        "Alert(api='v1', key='…', url='https://events.pagerduty.com')"
    )


def test_mask_and_redact_helpers():
    assert mask_key(None) == "…"
    assert mask_key(KEY) == "…455c"
    assert redact(f"key {KEY}!", [None, "", KEY]) == "key …455c!"


# --- Package surface ---------------------------------------------------------------------------


def test_package_exports_and_version():
    assert pagerduty_api.__version__ == __version__ == "0.4.0"
    assert pagerduty_api.Alert is Alert
    assert issubclass(InvalidEventException, PagerDutyAPIServerException)
    assert pagerduty_api.InvalidEventException is InvalidEventException


def test_exceptions_keep_their_attributes_through_pickle():
    exc = InvalidEventException("no", status_code=400, body="b", errors=["e"], retry_after=1.0)
    copy = pickle.loads(pickle.dumps(exc))
    assert (str(copy), copy.status_code, copy.body, copy.errors, copy.retry_after) == (
        "no",
        400,
        "b",
        ["e"],
        1.0,
    )
    bare = PagerDutyAPIServerException()
    assert (bare.status_code, bare.body, bare.retry_after) == (None, None, None)
    assert InvalidEventException().errors == []


# --- base: Resource and AuthorizedResource -----------------------------------------------------


def test_waiting_uses_real_time_unless_replaced():
    assert (Resource._sleep, Resource._clock, Resource._jitter) == (
        time.sleep,
        time.monotonic,
        random.uniform,
    )


def test_resource_defaults_to_the_rest_api():
    resource = Resource()
    assert resource.url == "https://api.pagerduty.com"
    assert (resource.timeout, resource.retry_deadline) == (10, 60)
    assert repr(resource) == "Resource(url='https://api.pagerduty.com')"


def test_plain_resource_reports_a_400_without_guessing(pd):
    pd.add(responses.PUT, f"{FAKE}/x", json={"errors": ["routing key odd"]}, status=400)
    with pytest.raises(InvalidEventException) as caught:
        Resource(url=FAKE).request("PUT", "x", {"a": 1})
    assert str(caught.value) == "PagerDuty refused the request (400): routing key odd"


def test_authorized_resource_sends_the_argument_key(pd):
    pd.add(responses.GET, f"{FAKE}/abilities", json={"abilities": []})
    resource = AuthorizedResource("argkey-1234567890abcdef", url=FAKE)
    assert resource.request("GET", "/abilities") == {"abilities": []}
    request = pd.calls[0].request
    assert request.headers["Authorization"] == "Token token=argkey-1234567890abcdef"
    assert request.body is None
    assert request.req_kwargs["timeout"].seconds == 10


def test_authorized_resource_sends_the_environment_key(pd, monkeypatch):
    monkeypatch.setenv("PAGERDUTY_API_KEY", "envkey-1234567890abcdef")
    pd.add(responses.POST, f"{FAKE}/incidents", json={"incident": {}}, status=201)
    resource = AuthorizedResource(url=FAKE)
    assert resource.api_key == "envkey-1234567890abcdef"
    resource.request("POST", "incidents", {"incident": {"type": "incident"}})
    assert pd.calls[0].request.headers["Authorization"] == "Token token=envkey-1234567890abcdef"
    assert sent(pd) == {"incident": {"type": "incident"}}


def test_authorized_resource_argument_wins_over_environment(monkeypatch):
    monkeypatch.setenv("PAGERDUTY_API_KEY", "envkey-1234567890abcdef")
    assert AuthorizedResource("argkey-1234567890abcdef").api_key == "argkey-1234567890abcdef"


def test_authorized_resource_without_any_key_is_a_configuration_error():
    with pytest.raises(ConfigurationException, match="PAGERDUTY_API_KEY"):
        AuthorizedResource()


def test_authorized_resource_repr_and_errors_hide_the_key(pd):
    pd.add(responses.GET, f"{FAKE}/x", status=404, body="no token argkey-1234567890abcdef here")
    resource = AuthorizedResource("argkey-1234567890abcdef", url=FAKE)
    assert repr(resource) == "AuthorizedResource(key='…cdef', url='http://127.0.0.1:9')"
    with pytest.raises(PagerDutyAPIServerException) as caught:
        resource.request("GET", "x")
    assert "argkey-1234567890abcdef" not in str(caught.value) + caught.value.body
    assert "…cdef" in caught.value.body


def test_alert_needs_no_api_key_in_the_environment():
    assert Alert(service_key=KEY).service_key == KEY


def test_the_light_parts_import_without_requests():
    """Masking, severities and retry rules are read by `pd-watchdog validate`, which sends
    nothing: importing them must not import requests (Alert does, when first asked for)."""
    code = ("import sys, pagerduty_api, pagerduty_api._transport, pagerduty_api.retry;"
            "assert 'requests' not in sys.modules, 'requests imported';"
            "from pagerduty_api import Alert;"
            "assert 'requests' in sys.modules and Alert.__module__ == 'pagerduty_api.alert'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_an_unknown_name_is_an_attribute_error():
    assert pagerduty_api.Alert is Alert
    assert "Alert" in pagerduty_api.__all__
    with pytest.raises(AttributeError, match="no attribute 'Alarm'"):
        pagerduty_api.Alarm  # noqa: B018
