"""The one duration formatter: each style's wording, and the round trip of the exact one."""

import math

import pytest

from watchdog.durations import format_duration, parse_duration
from watchdog.probes._util import fmt_seconds
from watchdog.status import age


def test_exact_is_what_a_config_would_say():
    assert [format_duration(s) for s in (0.001, 0.1, 0.5, 1, 2.5, 30, 90, 90.5, 3600, 86461)] \
        == ["1ms", "100ms", "500ms", "1s", "2.5s", "30s", "1m30s", "1m30s500ms", "1h", "1d1m1s"]
    for text in ("1ms", "2.5s", "1m30s500ms", "1d1m1s", "365d"):
        seconds = parse_duration(text, minimum=0.001)
        assert parse_duration(format_duration(seconds), minimum=0.001) == seconds


def test_measured_is_short_and_goes_to_minutes_past_one():
    assert [fmt_seconds(x) for x in (0, 0.004, 0.5, 0.612, 2, 2.31, 9.996, 10, 12.4, 59.6)] \
        == ["0s", "0s", "0.5s", "0.61s", "2s", "2.31s", "10s", "10s", "12s", "1m"]
    # a minute or more reads as the config writes it, not as "75s" / "3600s"
    assert [fmt_seconds(x) for x in (75.4, 90, 3600, 3725)] == ["1m15s", "1m30s", "1h", "1h2m5s"]


def test_age_keeps_two_units_counted_down():
    assert [age(x) for x in (0, 40.9, 59.99, 60, 725, 3605, 12000, 187200, 3 * 86400 + 59)] \
        == ["0s", "40s", "59s", "1m", "12m5s", "1h", "3h20m", "2d4h", "3d"]
    assert age(None) == "-"
    assert age(-3.5) == "-3s"  # a clock stepped back: shown, not hidden


def test_non_finite_and_unknown_styles():
    assert fmt_seconds(math.inf) == "infs"
    with pytest.raises(ValueError, match="unknown duration style 'fuzzy'"):
        format_duration(1, "fuzzy")


def test_points_in_time_are_written_and_read_one_way(monkeypatch):
    import datetime as dt
    import time
    from zoneinfo import ZoneInfo

    from watchdog.durations import format_time, parse_instant

    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        epoch = dt.datetime(2026, 12, 1, 23, 40, 5, tzinfo=dt.timezone.utc).timestamp()
        assert format_time(epoch) == "2026-12-01 23:40 UTC"
        assert format_time(epoch, seconds=True) == "2026-12-01 23:40:05 UTC"
        assert format_time(epoch, seconds=True, zone=False) == "2026-12-01 23:40:05"
        assert parse_instant("2026-12-01T23:40:05Z") == epoch
        assert parse_instant("2026-12-02T00:40:05+01:00") == epoch
        assert parse_instant("2026-12-01T23:40:05") == epoch  # the host's zone (UTC here)
        berlin = ZoneInfo("Europe/Berlin")
        assert parse_instant("2026-12-02T00:40:05", berlin) == epoch
        assert parse_instant("tomorrow") is None
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
