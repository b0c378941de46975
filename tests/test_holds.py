"""Maintenance windows (cron in a time zone, DST-correct), silences and parents as holds."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from watchdog.holds import Holds, Silence, Window, failing_parents, matches, unmatched

BERLIN = ZoneInfo("Europe/Berlin")


def at(*args, tz=BERLIN) -> float:
    return datetime(*args, tzinfo=tz).timestamp()


WEEKLY = Window(name="weekly-db-backup", checks=("db-*", "backup-*"), schedule="0 2 * * SUN",
                duration=7200, tz=BERLIN)


def test_a_weekly_window_is_active_from_its_start_for_its_duration():
    assert WEEKLY.occurrence(at(2026, 11, 29, 1, 59, 59)) is None
    start, end = WEEKLY.occurrence(at(2026, 11, 29, 2, 0))
    assert (start, end) == (at(2026, 11, 29, 2, 0), at(2026, 11, 29, 4, 0))
    assert WEEKLY.occurrence(at(2026, 11, 29, 3, 59, 59)) == (start, end)
    assert WEEKLY.occurrence(at(2026, 11, 29, 4, 0)) is None
    assert WEEKLY.next_start(at(2026, 11, 29, 4, 0)) == at(2026, 12, 6, 2, 0)


def test_windows_follow_the_zones_daylight_saving_time():
    # 02:30 does not exist on 2026-03-29 in Berlin: cronsim runs it at 03:00 local.
    daily = Window(name="d", checks=("*",), schedule="30 2 * * *", duration=600, tz=BERLIN)
    assert daily.next_start(at(2026, 3, 29, 0, 0)) == at(2026, 3, 29, 3, 0)
    # Local 02:00 is 01:00 UTC in winter and 00:00 UTC in summer.
    assert WEEKLY.next_start(at(2026, 3, 1, 12, 0)) == at(2026, 3, 8, 1, 0, tz=ZoneInfo("UTC"))
    assert WEEKLY.next_start(at(2026, 4, 1, 12, 0)) == at(2026, 4, 5, 0, 0, tz=ZoneInfo("UTC"))


def test_a_one_off_window_runs_from_start_to_end():
    once = Window(name="move", checks=("*",), start=100.0, end=200.0)
    assert once.occurrence(99.9) is None and once.occurrence(100.0) == (100.0, 200.0)
    assert once.occurrence(200.0) is None
    assert once.next_start(50.0) == 100.0 and once.next_start(150.0) is None


def test_globs_name_checks_and_report_what_matches_nothing():
    assert matches(("db-*",), "db-main") and not matches(("db-*",), "web")
    assert unmatched(("db-*", "nope-?"), ["db-1", "web"]) == ["nope-?"]


def test_holds_say_why_and_until_when_the_longest_first():
    short = Window(name="short", checks=("db-*",), start=0.0, end=50.0)
    holds = Holds([WEEKLY, short], ["db-main", "web"])
    now = at(2026, 11, 29, 2, 30)
    assert holds.hold_for("web", now) is None
    hold = holds.hold_for("db-main", now)
    assert hold.reason == "maintenance weekly-db-backup" and hold.until == at(2026, 11, 29, 4, 0)
    holds.set_silences([Silence("s1", ("web",), "known outage", created_at=now - 1,
                                until=now + 60)])
    assert holds.hold_for("web", now).reason == "silenced by s1: known outage"
    assert holds.hold_for("web", now + 60) is None  # it ends by itself
    parent = holds.hold_for("web", now + 60, failing_parents(["uplink", "dns"],
                                                             {"uplink": False}))
    assert parent.reason == "parent uplink failing" and parent.until is None
    assert [h.reason for h in holds.all_for("db-main", 10.0, ["dns"])] == [
        "maintenance short", "parent dns failing"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(at(2026, 1, 1, 0, 0), at(2027, 1, 1, 0, 0)), min_size=1,
                max_size=40))
def test_the_cached_answer_always_equals_the_window_asked_directly(times):
    """Whatever order the clock is asked in (it may step back), the cache never lies."""
    holds = Holds([WEEKLY], ["db-main"])
    for now in times:
        assert holds.occurrence(WEEKLY, now) == WEEKLY.occurrence(now)
