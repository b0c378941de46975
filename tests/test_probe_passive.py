"""The passive kind's verdict (pure) and its options, with the clock passed in."""

from __future__ import annotations

import time

import pytest

from watchdog.probes import passive
from watchdog.probes.base import OptionError, run_once
from watchdog.reports import Record

DAY, HOUR = 86400.0, 3600.0
EXPECT = passive.Expect(every=DAY, grace=HOUR, max_runtime=3 * HOUR)
T0 = 1_800_000_000.0


def clock(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(epoch))


def test_pending_until_the_first_report_or_the_first_deadline():
    seen = Record(first_seen=T0)
    assert passive.judge(EXPECT, None, T0) is None
    assert passive.judge(EXPECT, seen, T0 + DAY + HOUR) is None
    started = Record(first_seen=T0, start_at=T0 + 10)
    assert passive.judge(EXPECT, started, T0 + 20) is None  # running, first time
    late = passive.judge(EXPECT, seen, T0 + DAY + HOUR + 1)
    assert not late.ok
    assert late.summary == (f"no success since {clock(T0)}, when the check was first seen "
                            "(due every 1d, grace 1h)")


def test_a_success_passes_until_expect_every_plus_grace():
    record = Record(first_seen=T0, success_at=T0, duration=12.5, exit_code=0)
    result = passive.judge(EXPECT, record, T0 + 3 * HOUR)
    assert result.ok
    assert result.summary == (f"last success 3h ago (took 12s), due again by "
                              f"{clock(T0 + DAY + HOUR)}")
    assert result.details["last_success_at"] == T0 and result.details["duration"] == 12.5
    assert result.details["exit_code"] == 0 and result.details["due_at"] == T0 + DAY + HOUR
    late = passive.judge(EXPECT, record, T0 + DAY + HOUR + 1)
    assert not late.ok and late.summary == f"no success since {clock(T0)} (due every 1d, grace 1h)"


def test_a_reported_failure_fails_until_a_success():
    record = Record(first_seen=T0, success_at=T0, failure_at=T0 + DAY, exit_code=2,
                    message="copying\nrsync: disk full\n\n")
    result = passive.judge(EXPECT, record, T0 + DAY + 1)
    assert not result.ok and result.summary == "failed: exit code 2: rsync: disk full"
    assert result.details["exit_code"] == 2 and "disk full" in result.details["message"]
    killed = Record(first_seen=T0, failure_at=T0, exit_code=-9)
    result = passive.judge(EXPECT, killed, T0 + 1)
    assert result.summary == "failed: killed by signal SIGKILL"
    assert result.details["signal"] == "SIGKILL" and result.details["exit_code"] is None
    assert passive.judge(EXPECT, Record(first_seen=T0, failure_at=T0), T0).summary == \
        "failed: reported failure"
    fixed = Record(first_seen=T0, failure_at=T0, success_at=T0 + 5)
    assert passive.judge(EXPECT, fixed, T0 + 6).ok


def test_a_start_without_a_finish_within_max_runtime_fails():
    record = Record(first_seen=T0, success_at=T0, start_at=T0 + DAY)
    running = passive.judge(EXPECT, record, T0 + DAY + 60)
    assert running.ok and running.summary.endswith("; running for 1m")
    over = passive.judge(EXPECT, record, T0 + DAY + 3 * HOUR + 300)
    assert not over.ok
    assert over.summary == "started 3h5m ago and not finished (max_runtime 3h)"
    unlimited = passive.Expect(every=2 * DAY, grace=HOUR)  # not late yet, no max_runtime
    assert passive.judge(unlimited, record, T0 + DAY + 3 * HOUR + 300).ok


def test_options_and_an_unbound_probe():
    probe = passive.parse({"passive": {"expect_every": "1s", "grace": "500ms"}}, "/")
    assert probe.expect == passive.Expect(1.0, 0.5, None)
    assert run_once(probe, 1.0) is None  # not bound to any reports: nothing to judge
    inbox = {"job": Record(first_seen=time.time(), success_at=time.time())}
    probe.bind("job", inbox)
    assert run_once(probe, 1.0).ok
    with pytest.raises(OptionError) as caught:
        passive.parse({"passive": {"expect_every": "soon", "max_runtime": "10ms"}}, "/")
    assert [path for path, _ in caught.value.problems] == \
        ["passive.expect_every", "passive", "passive.max_runtime"]
