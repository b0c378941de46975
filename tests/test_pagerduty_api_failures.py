"""pagerduty_api failure paths: refusals, retries, deadlines, limits, and keys kept secret."""

# Standard library imports
import hashlib
import json
import logging
import random

# Third party package imports
import pytest
import requests
import responses
from hypothesis import given
from hypothesis import strategies as st

# Local package imports
from pagerduty_api import Alert
from pagerduty_api._transport import (
    BACKOFF_CAP,
    backoff_delay,
    parse_retry_after,
    redact,
    truncate,
)
from pagerduty_api.base import Resource
from pagerduty_api.exceptions import (
    IncidentKeyException,
    InvalidEventException,
    PagerDutyAPIServerException,
)

KEY = "4baa5d20cfba466a5e075b02698f455c"
FAKE = "http://127.0.0.1:9/"
URLS = {
    "v1": "http://127.0.0.1:9/generic/2010-04-15/create_event.json",
    "v2": "http://127.0.0.1:9/v2/enqueue",
}
OK = {
    "v1": {"status": "success", "message": "Event processed", "incident_key": "k"},
    "v2": {"status": "success", "message": "Event processed", "dedup_key": "k"},
}
OK_STATUS = {"v1": 200, "v2": 202}
BOTH = pytest.mark.parametrize("api", ["v1", "v2"])
MARKER = "… [truncated]"


class FakeTime:
    """A clock that only moves when slept on (or when a test says a request took time)."""

    def __init__(self):
        self.now = 1000.0
        self.sleeps = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture(autouse=True)
def fake_time(monkeypatch):
    fake = FakeTime()
    monkeypatch.setattr(Resource, "_clock", staticmethod(fake.clock))
    monkeypatch.setattr(Resource, "_sleep", staticmethod(fake.sleep))
    monkeypatch.setattr(Resource, "_jitter", staticmethod(lambda low, high: high))
    monkeypatch.setattr("pagerduty_api.alert.socket.gethostname", lambda: "host")
    return fake


@pytest.fixture
def pd():
    with responses.RequestsMock() as rsps:
        yield rsps


def alert(api, **kwargs):
    return Alert(service_key=KEY, api=api, url=FAKE, **kwargs)


def ok(pd, api):
    pd.add(responses.POST, URLS[api], json=OK[api], status=OK_STATUS[api])


def sent(pd, index=0):
    return json.loads(pd.calls[index].request.body)


# --- 400: refused, never retried ----------------------------------------------------------------

INVALID = {
    "status": "invalid event",
    "message": "Event object is invalid",
    "errors": ["'payload.summary' is missing or blank"],
}


@BOTH
def test_400_raises_invalid_event_with_errors_and_no_retry(pd, fake_time, api):
    pd.add(responses.POST, URLS[api], json=INVALID, status=400)
    with pytest.raises(InvalidEventException) as caught:
        alert(api).trigger("x")
    exc = caught.value
    assert exc.status_code == 400
    assert exc.errors == ["'payload.summary' is missing or blank"]
    assert json.loads(exc.body) == INVALID
    assert exc.retry_after is None
    assert "400" in str(exc) and "payload.summary" in str(exc)
    assert "is this" not in str(exc)
    assert len(pd.calls) == 1 and fake_time.sleeps == []


@BOTH
def test_400_with_a_non_json_body(pd, api):
    pd.add(responses.POST, URLS[api], body="<html>Bad Request</html>", status=400)
    with pytest.raises(InvalidEventException) as caught:
        alert(api).resolve("k")
    assert caught.value.errors == []
    assert caught.value.body == "<html>Bad Request</html>"
    assert "<html>Bad Request</html>" in str(caught.value)


@pytest.mark.parametrize(
    ("answer", "errors"),
    [
        ({"errors": "just one"}, ["just one"]),
        ({"errors": {"odd": 1}}, []),
        (["not", "an", "object"], []),
    ],
)
def test_400_errors_in_other_shapes(pd, answer, errors):
    pd.add(responses.POST, URLS["v1"], json=answer, status=400)
    with pytest.raises(InvalidEventException) as caught:
        alert("v1").resolve("k")
    assert caught.value.errors == errors


@pytest.mark.parametrize(
    ("api", "error", "hint"),
    [
        ("v2", "Invalid routing key", "is this a v1 Generic API key used with api='v2'?"),
        ("v2", "'routing_key' is invalid", "is this a v1 Generic API key used with api='v2'?"),
        (
            "v1",
            "Service key is the wrong length",
            "is this an Events API v2 key used with api='v1'?",
        ),
    ],
)
def test_400_about_the_key_suggests_the_wrong_key_type(pd, api, error, hint):
    pd.add(
        responses.POST, URLS[api], json={"status": "invalid event", "errors": [error]}, status=400
    )
    with pytest.raises(InvalidEventException) as caught:
        alert(api).trigger("x")
    message = str(caught.value)
    assert hint in message and "…455c" in message and KEY not in message
    assert caught.value.errors == [error]


# --- Retried: 429, 403 (v1), 5xx, connection errors, timeouts ----------------------------------


@BOTH
def test_429_honours_retry_after_then_succeeds(pd, fake_time, api):
    pd.add(responses.POST, URLS[api], status=429, headers={"Retry-After": "7"}, body="slow down")
    ok(pd, api)
    assert alert(api).trigger("x") == OK[api]
    assert fake_time.sleeps == [7.0]
    assert len(pd.calls) == 2
    assert sent(pd, 0) == sent(pd, 1)


@BOTH
def test_retry_after_beyond_the_deadline_gives_up_at_once(pd, fake_time, api):
    pd.add(responses.POST, URLS[api], status=429, headers={"Retry-After": "120"}, body="wait")
    with pytest.raises(PagerDutyAPIServerException) as caught:
        alert(api).trigger("x")
    exc = caught.value
    assert (exc.status_code, exc.body, exc.retry_after) == (429, "wait", 120.0)
    assert "429" in str(exc) and "wait" in str(exc) and "not retried: the next try, in 120 s" \
        in str(exc)
    assert fake_time.sleeps == [] and len(pd.calls) == 1


def test_403_is_a_throttle_on_v1(pd, fake_time):
    pd.add(responses.POST, URLS["v1"], status=403, body="throttled")
    ok(pd, "v1")
    assert alert("v1").trigger("x") == OK["v1"]
    assert fake_time.sleeps == [0.5]


def test_403_is_not_retried_on_v2(pd, fake_time):
    pd.add(responses.POST, URLS["v2"], status=403, body="forbidden")
    with pytest.raises(PagerDutyAPIServerException) as caught:
        alert("v2").trigger("x")
    assert not isinstance(caught.value, InvalidEventException)
    assert (caught.value.status_code, caught.value.body) == (403, "forbidden")
    assert fake_time.sleeps == [] and len(pd.calls) == 1


@BOTH
def test_500_then_success(pd, fake_time, api):
    pd.add(responses.POST, URLS[api], status=500, body="oops")
    pd.add(responses.POST, URLS[api], status=503, body="oops")
    ok(pd, api)
    assert alert(api).acknowledge("k") == OK[api]
    assert fake_time.sleeps == [0.5, 1.0]


@BOTH
def test_persistent_500_until_the_deadline(pd, fake_time, api):
    pd.add(responses.POST, URLS[api], status=500, body="still down")
    with pytest.raises(PagerDutyAPIServerException) as caught:
        alert(api).trigger("x")
    exc = caught.value
    # Full jitter at its maximum: 0.5, 1, 2, 4, 8, 16 (31.5 s); the next 30 s would pass 60 s.
    assert fake_time.sleeps == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0]
    assert len(pd.calls) == 7
    assert (exc.status_code, exc.body, exc.retry_after) == (500, "still down", None)
    assert "gave up after 7 attempts" in str(exc) and "answered 500: still down" in str(exc)


def test_the_deadline_counts_time_spent_in_requests(pd, fake_time):
    def slow(request):
        fake_time.now += 25  # each attempt takes 25 s before failing
        return (502, {}, "bad gateway")

    pd.add_callback(responses.POST, URLS["v2"], callback=slow)
    with pytest.raises(PagerDutyAPIServerException):
        alert("v2").trigger("x")
    assert len(pd.calls) == 3  # 25 s, +0.5 +25 = 50.5 s, +1 +25 = 76.5 s: stop
    assert fake_time.sleeps == [0.5, 1.0]


@BOTH
@pytest.mark.parametrize(
    "error",
    [
        requests.ConnectionError("connection refused"),
        requests.exceptions.ReadTimeout("read timed out"),
        requests.exceptions.ConnectTimeout("connect timed out"),
        requests.exceptions.ChunkedEncodingError("cut short"),
    ],
)
def test_transport_errors_are_retried(pd, fake_time, api, error):
    pd.add(responses.POST, URLS[api], body=error)
    ok(pd, api)
    assert alert(api).trigger("x") == OK[api]
    assert fake_time.sleeps == [0.5]


@BOTH
@pytest.mark.parametrize(
    "error", [requests.ConnectionError("refused"), requests.exceptions.ReadTimeout("timed out")]
)
def test_persistent_transport_errors_give_up_without_status(pd, fake_time, api, error):
    pd.add(responses.POST, URLS[api], body=error)
    with pytest.raises(PagerDutyAPIServerException) as caught:
        alert(api, retry_deadline=5).trigger("x")
    exc = caught.value
    assert (exc.status_code, exc.body, exc.retry_after) == (None, None, None)
    assert type(error).__name__ in str(exc)
    assert fake_time.sleeps == [0.5, 1.0, 2.0]


def test_other_request_errors_are_not_retried(pd, fake_time):
    pd.add(responses.POST, URLS["v1"], body=requests.exceptions.TooManyRedirects("loop"))
    with pytest.raises(PagerDutyAPIServerException, match="TooManyRedirects: loop") as caught:
        alert("v1").trigger("x")
    assert caught.value.status_code is None
    assert fake_time.sleeps == [] and len(pd.calls) == 1


@BOTH
@pytest.mark.parametrize(
    ("status", "headers", "body"),
    [
        (500, {}, "down"),
        (429, {"Retry-After": "0"}, "throttled"),
        (429, {}, "throttled"),
        (None, {}, requests.ConnectionError("refused")),
    ],
)
def test_retry_deadline_zero_is_exactly_one_attempt(
    pd, fake_time, monkeypatch, api, status, headers, body
):
    monkeypatch.setattr(Resource, "_jitter", staticmethod(lambda low, high: 0.0))
    kwargs = {} if status is None else {"status": status, "headers": headers}
    pd.add(responses.POST, URLS[api], body=body, **kwargs)
    with pytest.raises(PagerDutyAPIServerException) as caught:
        alert(api, retry_deadline=0).trigger("x")
    assert caught.value.status_code == status
    assert len(pd.calls) == 1 and fake_time.sleeps == []


@BOTH
@pytest.mark.parametrize("status", [404, 413, 401])
def test_other_4xx_are_not_retried(pd, fake_time, api, status):
    pd.add(responses.POST, URLS[api], status=status, body=f"status {status}")
    with pytest.raises(PagerDutyAPIServerException) as caught:
        alert(api).trigger("x")
    exc = caught.value
    assert not isinstance(exc, InvalidEventException)
    assert (exc.status_code, exc.body) == (status, f"status {status}")
    assert f"{status}" in str(exc) and "not retried" in str(exc)
    assert len(pd.calls) == 1 and fake_time.sleeps == []


# --- A 2xx is PagerDuty taking the event, whatever its body ------------------------------------


@BOTH
@pytest.mark.parametrize(
    ("body", "shown"),
    [
        ("<html>OK</html>", "<html>OK</html>"),
        ("[1, 2]", "[1, 2]"),
        ('"ok"', '"ok"'),
        ("", "(empty body)"),
        ("[" * 100_000, "[[["),  # JSON too deep to decode: still just an odd body
        (b"\xff\xfe not utf-8", "\ufffd\ufffd not utf-8"),
    ],
)
def test_success_status_without_a_json_object_is_accepted(pd, caplog, fake_time, api, body, shown):
    pd.add(responses.POST, URLS[api], body=body, status=OK_STATUS[api])
    with caplog.at_level(logging.WARNING, logger="pagerduty_api"):
        answer = alert(api).trigger("x")
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    assert answer == {"status": "accepted", "raw_body": truncate(text, 1000)}
    (record,) = caplog.records  # one warning, no retry
    assert record.levelno == logging.WARNING
    assert f"answered {OK_STATUS[api]}" in record.getMessage()
    assert "taken as accepted" in record.getMessage() and shown in record.getMessage()
    assert len(pd.calls) == 1 and fake_time.sleeps == []


def test_odd_success_body_is_redacted_and_truncated(pd, caplog):
    pd.add(responses.POST, URLS["v2"], body=f"<p>key {KEY}</p>" + "x" * 5000, status=202)
    with caplog.at_level(logging.WARNING, logger="pagerduty_api"):
        answer = alert("v2").trigger("x")
    assert answer["raw_body"].startswith("<p>key …455c</p>")
    assert len(answer["raw_body"]) == 1000 and answer["raw_body"].endswith(MARKER)
    assert KEY not in caplog.text and "…455c" in caplog.text
    assert len(caplog.records[0].getMessage()) < 400  # the log line quotes 200 characters


def test_only_the_first_64_kib_of_an_answer_are_read(pd):
    document = {"status": "success", "pad": "x" * 70_000}
    pd.add(responses.POST, URLS["v2"], json=document, status=202)
    answer = alert("v2").trigger("x")  # cut short, so not a JSON object any more
    assert answer["status"] == "accepted" and answer["raw_body"].startswith('{"status"')


# --- Redirects are never followed --------------------------------------------------------------


@BOTH
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_is_an_error_naming_the_location(pd, fake_time, api, status):
    target = f"https://elsewhere.example/enqueue?key={KEY}"
    pd.add(responses.POST, URLS[api], status=status, headers={"Location": target}, body="moved")
    with pytest.raises(PagerDutyAPIServerException) as caught:
        alert(api).trigger("x")
    exc = caught.value
    assert not isinstance(exc, InvalidEventException)
    assert (exc.status_code, exc.body) == (status, "moved")
    message = str(exc)
    assert f"{status} redirecting to https://elsewhere.example/enqueue?key=…455c" in message
    assert "not followed" in message and "fix the url setting (http://127.0.0.1:9)" in message
    assert KEY not in message
    assert len(pd.calls) == 1 and fake_time.sleeps == []


def test_redirect_without_a_location(pd):
    pd.add(responses.POST, URLS["v2"], status=304, headers={"Retry-After": "5"})
    with pytest.raises(PagerDutyAPIServerException, match="304 redirecting without a") as caught:
        alert("v2").trigger("x")
    assert caught.value.retry_after == 5.0


def test_long_answer_bodies_are_truncated(pd):
    pd.add(responses.POST, URLS["v1"], status=404, body="x" * 5000)
    with pytest.raises(PagerDutyAPIServerException) as caught:
        alert("v1").trigger("x")
    assert len(caught.value.body) == 1000 and caught.value.body.endswith(MARKER)


def test_retries_are_logged_without_the_key(pd, caplog):
    pd.add(responses.POST, URLS["v2"], status=500, body=f"bad key {KEY}")
    ok(pd, "v2")
    with caplog.at_level(logging.WARNING, logger="pagerduty_api"):
        alert("v2").trigger("x")
    assert "retry in 0.50 s (attempt 2)" in caplog.text
    assert KEY not in caplog.text and "…455c" in caplog.text


# --- Retry arithmetic ---------------------------------------------------------------------------


def test_backoff_is_full_jitter_capped():
    calls = []

    def jitter(low, high):
        calls.append((low, high))
        return high / 2

    assert [backoff_delay(n, jitter) for n in (0, 1, 5, 6, 200)] == [0.25, 0.5, 8.0, 15.0, 15.0]
    assert calls == [(0.0, 0.5), (0.0, 1.0), (0.0, 16.0), (0.0, 30.0), (0.0, 30.0)]
    rng = random.Random(7)
    assert all(0 <= backoff_delay(n, rng.uniform) <= BACKOFF_CAP for n in range(50))


def test_backoff_takes_a_base_a_cap_and_a_retry_after():
    """The sender's backoff is this one too, with its own base and caps and a Retry-After."""

    def top(low, high):
        return high

    delays = [backoff_delay(n, top, base=1.0, cap=15.0) for n in (-1, 0, 1, 3, 4, 10_000)]
    assert delays == [1.0, 1.0, 2.0, 8.0, 15.0, 15.0]
    assert backoff_delay(0, top, retry_after=7.0) == 7.0  # PagerDuty asked for longer: wait it
    assert backoff_delay(3, top, retry_after=0.1) == 4.0  # shorter: the backoff stands
    assert 0 <= backoff_delay(2) <= 2.0  # jitter defaults to random.uniform


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        ("3", 3.0),
        ("1.5", 1.5),
        ("-4", 0.0),
        ("inf", None),
        ("nan", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", None),
    ],
)
def test_parse_retry_after(value, seconds):
    assert parse_retry_after(value) == seconds


def test_retry_after_as_a_date_falls_back_to_backoff(pd, fake_time):
    pd.add(responses.POST, URLS["v2"], status=429, headers={"Retry-After": "Wed, 21 Oct 2015"})
    ok(pd, "v2")
    alert("v2").trigger("x")
    assert fake_time.sleeps == [0.5]


# --- Keys stay secret ---------------------------------------------------------------------------


@BOTH
def test_key_never_appears_in_errors(pd, api):
    pd.add(
        responses.POST,
        URLS[api],
        json={"status": "invalid event", "errors": [f"routing key {KEY} unknown"]},
        status=400,
    )
    pd.add(responses.POST, URLS[api], status=500, body=f"echo {KEY}")
    pd.add(responses.POST, URLS[api], body=requests.ConnectionError(f"refused for {KEY}"))
    pd.add(responses.POST, URLS[api], body=requests.exceptions.InvalidHeader(f"bad {KEY}"))
    a = alert(api, retry_deadline=0)
    texts = [repr(a), str(a)]
    for _ in range(4):
        with pytest.raises(PagerDutyAPIServerException) as caught:
            a.trigger("x")
        exc = caught.value
        texts += [str(exc), repr(exc), exc.body or "", *getattr(exc, "errors", [])]
    joined = "\n".join(texts)
    assert KEY not in joined and KEY[:-4] not in joined
    assert "…455c" in joined


# --- Limits checked before sending -------------------------------------------------------------


@BOTH
@pytest.mark.parametrize("method", ["trigger", "acknowledge", "resolve"])
def test_key_over_255_characters_is_refused(pd, api, method):
    a = alert(api)
    call = getattr(a, method)
    with pytest.raises(InvalidEventException) as caught:
        if method == "trigger":
            call("x", incident_key="k" * 256)
        else:
            call(incident_key="k" * 256)
    exc = caught.value
    assert exc.status_code is None and exc.body is None
    name = "incident_key" if api == "v1" else "dedup_key"
    assert exc.errors == [f"{name} is 256 characters; PagerDuty accepts at most 255"]
    assert len(pd.calls) == 0 and a.incident_key is None


@BOTH
def test_key_of_255_characters_is_sent(pd, api):
    ok(pd, api)
    alert(api).resolve("k" * 255)
    assert len(pd.calls) == 1


def test_key_must_be_a_string(pd):
    with pytest.raises(InvalidEventException, match="int, not a string"):
        alert("v2").trigger("x", incident_key=1234)


@BOTH
def test_long_description_is_cut_with_a_marker(pd, api):
    ok(pd, api)
    a = alert(api)
    description = "é" * 2000
    a.trigger(description)
    body = sent(pd)
    summary = body["description"] if api == "v1" else body["payload"]["summary"]
    assert len(summary) == 1024 and summary.endswith(MARKER)
    assert summary == "é" * (1024 - len(MARKER)) + MARKER
    assert a.incident_key == hashlib.md5(description.encode()).hexdigest()


def test_description_of_exactly_1024_characters_is_kept(pd):
    ok(pd, "v1")
    alert("v1").trigger("d" * 1024)
    assert sent(pd)["description"] == "d" * 1024


def test_long_description_on_v1_follow_ups_is_cut(pd):
    ok(pd, "v1")
    alert("v1").acknowledge("k", description="w" * 1500)
    assert len(sent(pd)["description"]) == 1024


@BOTH
@pytest.mark.parametrize("description", ["", "   ", "\n\t", None, 42])
def test_empty_or_blank_description_is_refused(pd, api, description):
    a = alert(api)
    with pytest.raises(InvalidEventException, match="description") as caught:
        a.trigger(description)
    assert caught.value.status_code is None and caught.value.errors
    assert len(pd.calls) == 0 and a.incident_key is None


BIG = {"rows": ["r" * 1000] * 600}  # about 600 KB of JSON


@BOTH
def test_oversized_details_are_trimmed(pd, api, caplog):
    ok(pd, api)
    with caplog.at_level(logging.WARNING, logger="pagerduty_api"):
        alert(api).trigger("x", details=BIG)
    body = sent(pd)
    details = body["details"] if api == "v1" else body["payload"]["custom_details"]
    field = "details" if api == "v1" else "custom_details"
    assert details == {
        "trimmed": True,
        "reason": f"{field} too large for PagerDuty's 512000-byte event limit",
        "original_size_bytes": len(json.dumps(BIG, separators=(",", ":"))),
    }
    assert len(pd.calls[0].request.body) <= 512_000
    assert "trimmed" in caplog.text


def test_oversized_details_on_v1_follow_ups_are_trimmed(pd):
    ok(pd, "v1")
    alert("v1").resolve("k", details=BIG)
    assert sent(pd)["details"]["trimmed"] is True


@BOTH
@pytest.mark.parametrize("details", [BIG, None])
def test_still_too_big_is_refused(pd, api, details):
    a = alert(api)
    with pytest.raises(InvalidEventException, match="512000") as caught:
        a.trigger("x", client_url="http://h/" + "u" * 600_000, details=details)
    assert caught.value.status_code is None and caught.value.errors
    assert len(pd.calls) == 0 and a.incident_key is None


def test_too_big_v2_follow_up_is_refused(pd):
    a = Alert(service_key="k" * 600_000, api="v2", url=FAKE)
    with pytest.raises(InvalidEventException, match="512000"):
        a.resolve("k")
    assert len(pd.calls) == 0


# --- The remembered key when sending fails ------------------------------------------------------


def test_key_is_remembered_even_when_the_trigger_is_not_delivered(pd):
    pd.add(responses.POST, URLS["v2"], body=requests.exceptions.ReadTimeout("lost"))
    ok(pd, "v2")
    a = alert("v2", retry_deadline=0)
    with pytest.raises(PagerDutyAPIServerException):
        a.trigger("x", incident_key="disk")
    a.resolve()
    assert sent(pd, 1) == {"routing_key": KEY, "event_action": "resolve", "dedup_key": "disk"}


def test_no_key_still_raises_incident_key_exception_on_v2(pd):
    with pytest.raises(IncidentKeyException):
        alert("v2").acknowledge(incident_key="")


@given(st.text(max_size=3000))
def test_truncate_never_exceeds_the_limit_and_marks_cuts(text):
    cut = truncate(text, 1024)
    assert len(cut) <= 1024
    assert cut == text if len(text) <= 1024 else cut.endswith(MARKER) and len(cut) == 1024


@given(st.text(), st.text(st.characters(exclude_characters="…"), min_size=1, max_size=64))
def test_redact_removes_every_occurrence(text, secret):
    assert secret not in redact(text + secret + text, [secret])


def test_redact_periodic_secret():
    secret = "ab" * 8
    assert secret not in redact("ab" * 22, [secret])
    assert redact("a…b", ["…"]) == "a…b"  # a secret equal to its mask cannot loop
