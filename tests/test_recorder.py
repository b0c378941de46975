"""The recorder and the sender through a store that fails and recovers at random moments.

The invariant: whatever the store refuses and whenever, every event reaches PagerDuty
exactly once, in order per incident key, and once the store works again it holds what
happened (nothing queued twice, every send counted). Real SQLite files; the fault is a
store whose transactions fail on demand (the real full disk is in test_degraded.py).
"""

from __future__ import annotations

import os
import tempfile
import threading

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from procs import wait_for
from watchdog import runtime, statefile
from watchdog.model import RESOLVE, TRIGGER, CheckState, Event, ProbeResult
from watchdog.recorder import Recorder
from watchdog.sender import Sender
from watchdog.store import Deferred, Store, StoreError


class FlakyStore(Store):
    """A real store whose writes fail like a full disk's while `broken` is set."""

    broken = False

    def _transaction(self, what):
        if self.broken:
            raise StoreError(f"could not {what} in state file {self.path} (database or disk "
                             "is full); free space on the disk holding it")
        return super()._transaction(what)


class RecordingAlert:
    """Takes every event at once and remembers the order."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def trigger(self, description, incident_key=None, client=None, details=None, **extra):
        with self._lock:
            self.sent.append((TRIGGER, incident_key))
        return {"status": "success"}

    def resolve(self, incident_key=None, description=None, details=None):
        with self._lock:
            self.sent.append((RESOLVE, incident_key))
        return {"status": "success"}


def event(action: str, key: str) -> Event:
    return Event(action, key, key, f"{action} {key}", "critical", "host")


OPS = st.lists(
    st.tuples(st.integers(0, 3), st.booleans(), st.booleans()), min_size=1, max_size=25
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(OPS)
def test_every_event_once_in_order_through_store_failures(ops):
    with tempfile.TemporaryDirectory() as state_dir:
        store = FlakyStore(state_dir)
        store.lock()
        alert = RecordingAlert()
        sender = Sender(store, alert, lanes=2, backoff_base=0.001, trigger_backoff_max=0.01,
                        resolve_backoff_max=0.01, pace=None,
                        settle_retry=0.01)
        recorder = Recorder(store, sender)
        sender.start()
        expected: dict[str, list[str]] = {}
        triggered: dict[str, bool] = {}
        try:
            for number, (check, broken, flush) in enumerate(ops):
                store.broken = broken
                key = f"k{check}"
                action = RESOLVE if triggered.get(key) else TRIGGER
                triggered[key] = action == TRIGGER
                expected.setdefault(key, []).append(action)
                state = CheckState(failures=number, triggered=triggered[key])
                recorder.record(key, "fp", key, state, ProbeResult(ok=False, summary="x"),
                                float(number), [event(action, key)])
                if flush:
                    recorder.flush()
            store.broken = False
            wait_for(recorder.flush, timeout=10, what="the changes kept in memory to be written")
            total = sum(len(actions) for actions in expected.values())
            wait_for(lambda: store.outbox_stats(0)["pending"] == 0 and not len(sender.memory)
                     and len(alert.sent) >= total, timeout=10, what="the outbox to drain")
        finally:
            sender.stop(1)
        got: dict[str, list[str]] = {}
        for action, key in alert.sent:
            got.setdefault(key, []).append(action)
        assert got == expected  # once each, in order per key
        stats = store.outbox_stats(0)
        assert stats["sent"][TRIGGER] + stats["sent"][RESOLVE] == total
        stored = store.load_checks()
        for key, actions in expected.items():
            assert stored[key].state.triggered == (actions[-1] == TRIGGER)
        store.close()


def test_results_without_events_kept_in_memory_collapse_to_the_newest(tmp_path):
    store = FlakyStore(str(tmp_path))
    sender = Sender(store, RecordingAlert())
    recorder = Recorder(store, sender)
    store.broken = True
    for failures in range(1, 50):
        recorder.record("c", "fp", "k", CheckState(failures=failures), None, 1.0, [])
    assert recorder.held == 49 and recorder.trouble and "full" in recorder.trouble
    assert recorder.held_states()["c"]["state"]["failures"] == 49
    store.broken = False
    assert recorder.flush()
    assert recorder.held == 0 and recorder.trouble is None
    assert store.load_checks()["c"].state.failures == 49
    store.close()


def test_many_changes_are_one_transaction_or_each_kept_in_memory(tmp_path):
    """record_many (a start adding thousands of checks): one commit, the events queued in
    order; refused, every change is kept and its events go from memory, as record()'s."""
    store = FlakyStore(str(tmp_path))
    store.lock()
    opened = []
    real = store._transaction
    store._transaction = lambda what: opened.append(what) or real(what)
    sender = Sender(store, RecordingAlert())
    recorder = Recorder(store, sender)
    many = [Deferred(f"c{i}", "fp", f"k{i}", CheckState(failures=i), None, 1.0,
                     queue=(event(TRIGGER, f"k{i}"),) if i % 2 else ()) for i in range(100)]
    recorder.record_many(many)
    assert len(opened) == 1 and recorder.held == 0
    assert {n: c.state.failures for n, c in store.load_checks().items()} == \
        {f"c{i}": i for i in range(100)}
    assert [item.event.incident_key for item in store.pending(100)] == \
        [f"k{i}" for i in range(1, 100, 2)]
    store.broken = True
    later = [Deferred(f"d{i}", "fp", f"m{i}", CheckState(), None, 2.0,
                      queue=(event(TRIGGER, f"m{i}"),)) for i in range(3)]
    recorder.record_many(later)
    assert recorder.held == 3 and len(sender.memory) == 3 and "full" in recorder.trouble
    store.broken = False
    assert recorder.flush()
    assert {"d0", "d1", "d2"} <= store.load_checks().keys() and recorder.held == 0
    store.close()


def test_store_trouble_is_logged_once_a_minute(tmp_path, caplog):
    store = FlakyStore(str(tmp_path))
    recorder = Recorder(store, Sender(store, RecordingAlert()))
    store.broken = True
    for failures in range(100):
        recorder.record("c", "fp", "k", CheckState(failures=failures), None, 1.0, [])
    failing = [r for r in caplog.records if "state store failing" in r.getMessage()]
    assert len(failing) == 1 and failing[0].exc_info is None
    store.broken = False
    recorder.flush()
    assert any("works again" in r.getMessage() for r in caplog.records)
    store.close()


def test_runtime_file_is_read_only_while_its_runner_holds_the_lock(tmp_path):
    store = Store(str(tmp_path))
    store.lock()
    report = runtime.RuntimeFile(str(tmp_path))
    report.open()
    assert os.path.getsize(report.path) == runtime.SIZE
    report.write({"pid": os.getpid(), "running": True, "degraded": "disk full",
                  "checks": {f"c{n}": {"state": None} for n in range(5000)}})
    seen = runtime.read(str(tmp_path))
    assert seen["degraded"] == "disk full" and seen.get("checks_cut")
    report.write({"pid": os.getpid(), "running": True, "degraded": None})
    assert runtime.read(str(tmp_path))["degraded"] is None  # a shorter report overwrites
    report.close()
    assert runtime.read(str(tmp_path)) is None  # stopped
    store.close()
    report = runtime.RuntimeFile(str(tmp_path))
    report.open()
    report.write({"pid": os.getpid() + 1_000_000, "running": True, "degraded": "old"})
    assert runtime.read(str(tmp_path)) is None  # not the lock holder's: a dead runner's
    report.close()


def test_a_mode_we_cannot_narrow_is_a_warning(tmp_path, monkeypatch):
    path = tmp_path / "state.db"
    path.write_text("")
    os.chmod(path, 0o644)

    def refuse(*args):
        raise PermissionError("not yours")

    monkeypatch.setattr(os, "chmod", refuse)
    monkeypatch.setattr(os, "geteuid", lambda: 12345)
    (warning,) = statefile.make_private_files([str(path)])
    assert "readable by other users (mode 644)" in warning and "chmod 600" in warning
