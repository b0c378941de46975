"""Secret masking: what reaches logs, the store and PagerDuty from a probe's output."""

from __future__ import annotations

from watchdog import logs

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
