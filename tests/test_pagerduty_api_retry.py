"""One exception root and one retry decision: what the client raises, and whether to retry it."""

# Standard library imports
import io

# Third party package imports
import pytest
import requests
import responses

# Local package imports
import pagerduty_api
from pagerduty_api import Alert, PagerDutyException, is_retryable
from pagerduty_api.base import AuthorizedResource
from pagerduty_api.exceptions import (
    ConfigurationException,
    IncidentKeyException,
    InvalidEventException,
    PagerDutyAPIServerException,
)
from pagerduty_api.retry import DEFAULT_THROTTLE_STATUSES, THROTTLE_STATUSES, is_throttle

KEY = "4baa5d20cfba466a5e075b02698f455c"
FAKE = "http://127.0.0.1:9"
URLS = {
    "v1": f"{FAKE}/generic/2010-04-15/create_event.json",
    "v2": f"{FAKE}/v2/enqueue",
}


@pytest.fixture
def pd():
    with responses.RequestsMock() as rsps:
        yield rsps


@pytest.fixture(autouse=True)
def no_env_key(monkeypatch):
    monkeypatch.delenv("PAGERDUTY_API_KEY", raising=False)


def alert(api="v1"):
    # retry_deadline=0: one attempt, as the durable sender uses it
    return Alert(service_key=KEY, api=api, url=FAKE, retry_deadline=0)


def raised(call):
    try:
        call()
    except PagerDutyException as exc:
        return exc
    raise AssertionError("no PagerDutyException raised")


# --- the root ---------------------------------------------------------------------------------


def test_every_documented_exception_is_caught_as_pagerduty_exception(pd):
    pd.add(responses.POST, URLS["v1"], json={"errors": ["bad"]}, status=400)
    pd.add(responses.POST, URLS["v1"], body="down", status=500)
    caught = [
        raised(lambda: Alert(service_key="")),
        raised(lambda: AuthorizedResource()),  # no key argument, none in the environment
        raised(lambda: alert().resolve()),  # nothing triggered, no key given
        raised(lambda: alert().trigger("disk full")),  # the 400
        raised(lambda: alert().trigger("disk full")),  # the 500
    ]
    assert [type(exc) for exc in caught] == [
        ConfigurationException,
        ConfigurationException,
        IncidentKeyException,
        InvalidEventException,
        PagerDutyAPIServerException,
    ]
    assert caught[4].status_code == 500  # the subclasses keep what they carry


def test_the_documented_names_and_import_paths_are_unchanged():
    """The seed documents pagerduty_api.exceptions.X; `from pagerduty_api import X` works too."""
    documented = (
        ConfigurationException,
        IncidentKeyException,
        PagerDutyAPIServerException,
        InvalidEventException,
    )
    for cls in documented:
        assert cls.__module__ == "pagerduty_api.exceptions"
        assert getattr(pagerduty_api, cls.__name__) is cls
        assert issubclass(cls, PagerDutyException) and issubclass(cls, Exception)
    assert issubclass(InvalidEventException, PagerDutyAPIServerException)
    assert pagerduty_api.exceptions.PagerDutyException is PagerDutyException
    assert {"PagerDutyException", "is_retryable"} <= set(pagerduty_api.__all__)


# --- is_retryable: the table ------------------------------------------------------------------

ANSWERS = [  # (api, PagerDuty's status, retryable)
    ("v1", 301, True),  # a redirect: fix the url and the same event passes
    ("v2", 308, True),
    ("v1", 400, False),  # the event is invalid: it never passes
    ("v2", 400, False),
    ("v2", 401, True),  # another 4xx: a key or url to fix, not the event
    ("v1", 403, True),  # v1's throttle
    ("v2", 403, True),  # not a throttle on v2, but still not the event's fault
    ("v2", 404, True),
    ("v2", 413, True),
    ("v1", 429, True),
    ("v2", 429, True),
    ("v1", 500, True),
    ("v2", 503, True),
]


@pytest.mark.parametrize(("api", "status", "retryable"), ANSWERS)
def test_is_retryable_for_each_answer_the_client_raises(pd, api, status, retryable):
    pd.add(responses.POST, URLS[api], body="answer", status=status, headers={"Location": FAKE})
    exc = raised(lambda: alert(api).trigger("disk full"))
    assert exc.status_code == status
    assert is_retryable(exc) is retryable


@pytest.mark.parametrize(
    "failure", [requests.ConnectionError("refused"), requests.Timeout("slow")]
)
def test_no_answer_is_retryable(pd, failure):
    pd.add(responses.POST, URLS["v2"], body=failure)
    exc = raised(lambda: alert("v2").trigger("disk full"))
    assert exc.status_code is None and is_retryable(exc)


def test_what_the_client_refuses_before_sending_is_not_retryable():
    v2 = alert("v2")
    refusals = [
        raised(lambda: v2.trigger("x", incident_key="k" * 256)),  # key too long
        raised(lambda: v2.trigger("   ")),  # blank description
        raised(lambda: v2.acknowledge()),  # no key to act on
        raised(lambda: Alert(service_key=KEY, api="v3")),  # bad settings
    ]
    assert [type(exc) for exc in refusals] == [
        InvalidEventException,
        InvalidEventException,
        IncidentKeyException,
        ConfigurationException,
    ]
    assert not any(is_retryable(exc) for exc in refusals)
    with pytest.raises(ValueError) as bad_severity:
        v2.trigger("x", severity="loud")
    with pytest.raises(TypeError) as bad_timestamp:
        v2.trigger("x", timestamp=5)  # type: ignore[arg-type]
    assert not is_retryable(bad_severity.value) and not is_retryable(bad_timestamp.value)


@pytest.mark.parametrize(
    ("exc", "retryable"),
    [
        (PagerDutyAPIServerException("built by hand", status_code=400), False),
        (PagerDutyAPIServerException("no answer"), True),
        (requests.exceptions.InvalidURL("a ValueError, but about delivery"), True),
        (io.UnsupportedOperation("an OSError that is also a ValueError"), True),
        (OSError("network is unreachable"), True),
        (PagerDutyException("a bare root"), True),
        (RuntimeError("a surprise"), True),  # not ours to judge: keep the event
        (KeyError("a surprise"), True),
        (ValueError("an argument check"), False),
        (TypeError("an argument check"), False),
    ],
)
def test_is_retryable_for_exceptions_from_elsewhere(exc, retryable):
    assert is_retryable(exc) is retryable


# --- throttles --------------------------------------------------------------------------------


def test_throttle_statuses_are_what_the_alert_retries_itself():
    for api, statuses in THROTTLE_STATUSES.items():
        assert Alert(service_key=KEY, api=api).retry_statuses == statuses
    assert AuthorizedResource("argkey-1234567890abcdef").retry_statuses == DEFAULT_THROTTLE_STATUSES


def test_is_throttle_reads_the_api():
    forbidden = PagerDutyAPIServerException(status_code=403)
    too_many = PagerDutyAPIServerException(status_code=429)
    assert is_throttle(forbidden, "v1") and not is_throttle(forbidden, "v2")
    assert is_throttle(too_many, "v1") and is_throttle(too_many, "v2")
    assert is_throttle(too_many, None) and not is_throttle(forbidden, None)  # e.g. a dry run
    assert not is_throttle(PagerDutyAPIServerException(status_code=500), "v1")
    assert not is_throttle(RuntimeError("no status"), "v1")
