"""Secret masking: what reaches logs, the store and PagerDuty from a probe's output."""

from __future__ import annotations

from pagerduty_api._transport import mask_key, redact
from watchdog import logs
from watchdog.dryrun import LoggingAlert
from watchdog.events_api import describe_error

SECRET = "s3cr3t-token-abcd"


def test_mask_keeps_only_the_last_four_characters():
    assert logs.mask(f"token={SECRET}!", [SECRET]) == "token=…abcd!"
    assert logs.mask("nothing here", [SECRET]) == "nothing here"


def test_mask_data_masks_nested_values_without_touching_the_original():
    details = {"url": "http://h/", "output": [f"got {SECRET}", 3], "deep": {"x": SECRET}}
    masked = logs.mask_data(details, [SECRET])
    assert masked == {"url": "http://h/", "output": ["got …abcd", 3], "deep": {"x": "…abcd"}}
    assert details["output"][0] == f"got {SECRET}" and details["deep"]["x"] == SECRET


def test_mask_data_returns_the_same_objects_when_there_is_nothing_to_mask():
    """The runner masks every probe result; the usual clean one must not be copied."""
    details = {"url": "http://h/", "status_code": 200, "tags": ["a", "b"], "n": {"k": 1.5}}
    assert logs.mask_data(details, [SECRET]) is details
    tags = ("a", "b")
    assert logs.mask_data(tags, [SECRET]) == ["a", "b"]  # tuples come back as lists


def test_one_masking_function_for_watchdog_and_its_client():
    """Logs, status, outbox, probe output and delivery errors all mask like pagerduty_api."""
    assert logs.mask is redact
    assert logs.mask(f"key {SECRET}", [SECRET]) == f"key {mask_key(SECRET)}"


def test_a_short_secret_shows_nothing_not_its_last_four():
    """Four characters of an 8-character password are half of it."""
    assert logs.mask("password=hunter22 ok", ["hunter22"]) == "password=… ok"
    assert logs.mask_data({"out": "hunter22"}, ["hunter22"]) == {"out": "…"}


def test_delivery_errors_mask_the_routing_key_like_every_log_line():
    class KeyedAlert:
        service_key = "4baa5d20cfba466a5e075b02698f455c"

    error = OSError("POST https://events/?key=4baa5d20cfba466a5e075b02698f455c refused")
    text = describe_error(KeyedAlert(), error, invalid=False)
    assert text == "OSError: POST https://events/?key=…455c refused"
    assert describe_error(LoggingAlert(), error, invalid=False).startswith("OSError: POST")
