"""The passive table: reports folded into one record per check, durable, ordered by seq,
written by a second process beside the runner's store."""

from __future__ import annotations

import subprocess
import sys

from procs import ROOT
from stores import Place
from watchdog.reports import FAIL, START, SUCCESS, Record, Report, fold


def test_fold_keeps_the_last_of_each_and_times_a_started_run():
    record = fold(None, Report(START, 100.0))
    assert record == Record(first_seen=100.0, start_at=100.0) and record.running
    record = fold(record, Report(SUCCESS, 130.0, exit_code=0, message="done"))
    assert record.success_at == 130.0 and record.duration == 30.0 and not record.running
    assert not record.failed and record.message == "done"
    record = fold(record, Report(FAIL, 200.0, exit_code=2, duration=5.0, message="x" * 20_000))
    assert record.failed and record.duration == 5.0 and record.exit_code == 2
    assert len(record.message) == 10 * 1024  # the tail is kept
    record = fold(record, Report(SUCCESS, 300.0))
    assert not record.failed and record.duration is None and record.first_seen == 100.0


def test_reports_survive_reopening_and_are_read_by_seq(place: Place):
    with place.open() as store:
        store.passive_seen(["nightly", "hourly"], 50.0)
        store.passive_seen(["nightly"], 99.0)  # first seen stays the first
        records = dict(store.passive_records())
        assert records["nightly"].first_seen == 50.0 and records["hourly"].first_seen == 50.0
        last = max(record.seq for record in records.values())
        store.report("nightly", Report(START, 60.0))
        store.report("nightly", Report(SUCCESS, 70.0, exit_code=0))
        changed = store.passive_records(last)
        assert [name for name, _ in changed] == ["nightly"]
        assert changed[0][1].seq > last
    with place.open() as again:
        record = dict(again.passive_records())["nightly"]
        assert (record.first_seen, record.start_at, record.success_at, record.duration) == \
            (50.0, 60.0, 70.0, 10.0)


def test_a_second_process_writes_beside_a_live_store(place: Place):
    """As `pd-watchdog ping` does beside a running runner (which holds the run lock)."""
    with place.open() as runner:
        runner.lock()
        runner.passive_seen(["job"], 1.0)
        seq = runner.passive_records()[0][1].seq
        code = ("import sys; sys.path.insert(0, 'tests'); from stores import open_spec; "
                "from watchdog.reports import Report; s = open_spec(sys.argv[1]); "
                "s.report('job', Report('fail', 5.0, exit_code=3, message='boom')); s.close()")
        subprocess.run([sys.executable, "-c", code, place.spec], cwd=ROOT, check=True,
                       timeout=30)
        ((name, record),) = runner.passive_records(seq)
        assert name == "job" and record.failed and record.exit_code == 3
        assert record.message == "boom" and record.first_seen == 1.0
