"""`diagnose:` and `remediate:` in parts: the run rule (and its property), the config's
errors, the store's table, the contained runs, and what the page and status say."""

from __future__ import annotations

import os
import textwrap
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchdog import remediation
from watchdog.config import ConfigError, load
from watchdog.config.remediation import Action
from watchdog.model import Check, CheckState, Inputs, Policy, ProbeResult
from watchdog.remediation import EXHAUSTED, NOT_DUE, RUN, due, history, next_allowed
from watchdog.runner import Runner
from watchdog.scheduler import Scheduler
from watchdog.store import RemediationRun, Store

pytestmark = pytest.mark.timeout(60)

HOUR = 3600.0
FAIL = ProbeResult(ok=False, summary="down")
OK = ProbeResult(ok=True, summary="up")


def action(after: int = 2, max_runs: int = 2, within: float = HOUR, argv=("true",),
           timeout: float = 5.0, cwd: str = "/") -> Action:
    return Action(text=" ".join(argv), argv=tuple(argv), env=(("PATH", os.environ["PATH"]),),
                  cwd=cwd, timeout=timeout, after=after, max=max_runs, within=within)


# --------------------------------------------------------------------------- the rule


def test_one_run_per_after_failures_and_never_more_than_max_in_the_window():
    rule = action(after=2, max_runs=2)
    assert [due(n, rule, [], 1000.0) for n in range(1, 6)] == [
        NOT_DUE, RUN, NOT_DUE, RUN, NOT_DUE]
    assert due(4, rule, [900.0, 950.0], 1000.0) == EXHAUSTED
    assert due(4, rule, [1000.0 - HOUR - 1, 950.0], 1000.0) == RUN  # one fell out of the window
    assert due(2, rule, [1000.0 - HOUR, 950.0], 1000.0) == EXHAUSTED  # its edge still counts
    assert due(2, rule, [5000.0, 6000.0], 1000.0) == EXHAUSTED  # the clock went back: counted
    assert next_allowed([900.0, 950.0], rule, 1000.0) == 900.0 + HOUR
    assert next_allowed([950.0], rule, 1000.0) is None


@st.composite
def lives(draw):
    """A run of the runner: results at increasing times, restarts among them (the state's
    counters and the store survive; a restart may land while a run is being counted)."""
    rule = action(after=draw(st.integers(1, 4)), max_runs=draw(st.integers(1, 3)),
                  within=float(draw(st.integers(1, 50))))
    steps = draw(st.lists(st.tuples(st.floats(0.0, 20.0), st.booleans(), st.booleans()),
                          max_size=120))
    return rule, steps


@settings(max_examples=300, deadline=None)
@given(lives())
def test_never_more_than_max_runs_in_any_window_whatever_the_failures_and_restarts(life):
    rule, steps = life
    stored: list[float] = []  # the store: what a restart reads back
    memory: list[float] = []
    failures, now = 0, 0.0
    for gap, ok, restart in steps:
        now += gap
        if restart:
            horizon = max(remediation.MIN_KEEP, rule.within)
            stored = [t for t in stored if t >= now - horizon]  # pruned as the store does
            memory = list(stored)
        failures = 0 if ok else failures + 1
        if not ok and due(failures, rule, memory, now) == RUN:
            stored.append(now)  # counted before it starts
            memory.append(now)
    for start in stored:
        in_window = [t for t in stored if start <= t <= start + rule.within]
        assert len(in_window) <= rule.max


def test_would_trigger_is_true_only_for_the_result_that_opens_the_incident():
    policy = Policy(name="web", incident_key="k", source="s", fail_after=2)
    failed = ProbeResult(ok=False, summary="down")
    assert not remediation.would_trigger(CheckState(), failed, policy, Inputs(now=1.0))
    assert remediation.would_trigger(CheckState(failures=1), failed, policy, Inputs(now=1.0))
    open_incident = CheckState(failures=5, triggered=True, severity="critical", notified_at=0.0)
    assert not remediation.would_trigger(open_incident, failed, policy, Inputs(now=1.0))
    from watchdog.model import Hold

    held = Inputs(now=1.0, hold=Hold("maintenance db"))
    assert not remediation.would_trigger(CheckState(failures=1), failed, policy, held)


# --------------------------------------------------------------------------- the config


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "w.yaml"
    path.write_text("state_dir: ./state\n" + textwrap.dedent(text))
    return str(path)


def errors(path: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(path, environ={})
    return [e.replace(str(Path(path).parent) + "/", "") for e in info.value.errors]


def test_bad_remediate_options_are_errors_at_file_and_line(tmp_path):
    path = write(tmp_path, """\
        checks:
          - name: web
            command: "true"
            remediate:
              command: "systemctl restart 'nginx"
              max: 0
              within: forever
              restart_after: 2
          - name: db
            command: "true"
            remediate: systemctl restart db
          - name: cache
            command: "true"
            diagnose: {command: [], timeout: 1s}
          - name: queue
            command: "true"
            diagnose: 42
        """)
    found = errors(path)
    assert any(e.startswith("w.yaml:6: checks[0].remediate.command: cannot split into words")
               for e in found), found
    assert any(e.startswith("w.yaml:7: checks[0].remediate.max: ") for e in found), found
    assert any(e.startswith("w.yaml:8: checks[0].remediate.within: not a duration")
               for e in found), found
    assert any(e.startswith("w.yaml:9: checks[0].remediate.restart_after: unknown key")
               for e in found), found
    assert any(e.startswith("w.yaml:12: checks[1].remediate: must be a mapping, e.g. "
                            "{command: systemctl restart nginx") for e in found), found
    assert any(e.startswith("w.yaml:15: checks[2].diagnose.command: must not be empty")
               for e in found), found
    assert any(e.startswith("w.yaml:18: checks[3].diagnose: must be a string or a list")
               for e in found), found


def test_remediate_after_must_be_below_fail_after(tmp_path):
    path = write(tmp_path, """\
        defaults: {fail_after: 2}
        checks:
          - name: web
            command: "true"
            remediate: {command: "systemctl restart nginx", after: 2}
        """)
    [error] = errors(path)
    assert error == ("w.yaml:6: checks[0].remediate.after: must be below fail_after (2), got 2: "
                     "the page would go out before the remediation could help — raise "
                     "fail_after (e.g. fail_after: 3) or lower after")


def test_a_valid_config_builds_the_actions_once(tmp_path):
    path = write(tmp_path, """\
        checks:
          - name: web
            command: "true"
            fail_after: 4
            diagnose: journalctl -u nginx -n 40 --no-pager
            remediate:
              command: [systemctl, restart, nginx web]
              after: 3
              max: 2
              within: 1h
              timeout: 60s
              env: {MODE: fast}
              cwd: sub
          - name: plain
            command: "true"
        """)
    config = load(path, environ={})
    web, plain = config.checks
    assert web.diagnose.argv == ("journalctl", "-u", "nginx", "-n", "40", "--no-pager")
    assert web.diagnose.timeout == 10.0 and web.diagnose.cwd == str(tmp_path)
    fix = web.remediate
    assert fix.text == "systemctl restart 'nginx web'"
    assert (fix.after, fix.max, fix.within, fix.timeout) == (3, 2, 3600.0, 60.0)
    assert dict(fix.env)["MODE"] == "fast" and fix.cwd == str(tmp_path / "sub")
    assert plain.diagnose is None and plain.remediate is None


def test_a_check_without_them_keeps_its_fingerprint(tmp_path):
    """Stored states survive the upgrade: only checks that set the new keys look changed."""
    text = 'checks:\n  - name: web\n    command: "true"\n'
    before = load(write(tmp_path, text), environ={}).checks[0].fingerprint
    from watchdog.config import checks as checks_module

    added = {k: v for k, v in checks_module.BUILTIN_DEFAULTS.items()
             if k not in ("diagnose", "remediate")}
    assert checks_module._fingerprint("web", "command", {"command": "true"}, str(tmp_path), "",
                                      "k", added) == checks_module._fingerprint(
        "web", "command", {"command": "true"}, str(tmp_path), "", "k",
        dict(checks_module.BUILTIN_DEFAULTS))
    with_fix = text + "    remediate: {command: 'true'}\n    fail_after: 3\n"
    assert load(write(tmp_path, with_fix), environ={}).checks[0].fingerprint != before


# --------------------------------------------------------------------------- the store


def test_runs_are_counted_before_they_end_and_survive_a_reopen(tmp_path):
    with Store(str(tmp_path)) as store:
        store.remediation_started("web", 100.0, 0.0)
        store.remediation_started("db", 150.0, 0.0)
        assert store.remediations(0.0) == [RemediationRun("web", 100.0),
                                           RemediationRun("db", 150.0)]
        store.remediation_finished(RemediationRun("web", 100.0, 101.5, 0, "restarted\n"))
    with Store(str(tmp_path)) as store:
        assert store.remediations(0.0)[0] == RemediationRun("web", 100.0, 101.5, 0, "restarted\n")
        assert [run.check for run in store.remediations(120.0)] == ["db"]
        store.remediation_started("web", 5000.0, 140.0)  # prunes what no window reaches
        assert [run.ran_at for run in store.remediations(0.0)] == [150.0, 5000.0]


# --------------------------------------------------------------------------- running


def test_diagnosis_says_output_exit_code_and_what_went_wrong(tmp_path):
    shell = ("sh", "-c")
    ok = remediation.diagnosis(action(argv=(*shell, "echo hello; echo err >&2")), frozenset())
    assert ok["output"] == "hello\nerr\n" and ok["exit_code"] == 0 and "error" not in ok
    bad = remediation.diagnosis(action(argv=(*shell, "echo token=s3cret-value; exit 4")),
                                frozenset({"s3cret-value"}))
    assert bad["exit_code"] == 4 and bad["error"] == "diagnose exited 4"
    assert "s3cret-value" not in bad["output"] and "token=" in bad["output"]
    hung = remediation.diagnosis(action(argv=(*shell, "echo started; exec sleep 30"),
                                        timeout=0.3), frozenset())
    assert hung["error"] == "diagnose timed out after 300ms" and hung["output"] == "started\n"
    missing = remediation.diagnosis(action(argv=("no-such-program-here",)), frozenset())
    assert missing["error"].startswith("diagnose command not found: no-such-program-here")


def test_output_is_bounded_by_the_cap():
    flood = remediation.diagnosis(action(argv=("sh", "-c", "yes | head -c 1000000")),
                                  frozenset())
    assert len(flood["output"]) == remediation.OUTPUT_CAP


# --------------------------------------------------------------------------- page, status


def test_the_page_says_how_often_it_ran_and_that_it_did_not_help():
    rule = action(max_runs=2, argv=("systemctl", "restart", "nginx"))
    runs = [RemediationRun("web", 100.0, 101.0, 0, "ok"),
            RemediationRun("web", 200.0, 260.0, None, "timed out after 1m")]
    said = history(rule, runs, 300.0)
    assert said["summary"].startswith("remediation ran 2 times in the last 1h; still failing; "
                                      "remediation exhausted (max 2 in 1h), next run allowed at ")
    assert said["command"] == "systemctl restart nginx" and said["exhausted"]
    assert [(r["exit_code"], r["output"], r["took"]) for r in said["runs"]] == [
        (0, "ok", "1s"), (None, "timed out after 1m", "1m")]
    one = history(action(max_runs=2), runs[:1], 300.0)
    assert one["summary"] == "remediation ran 1 time in the last 1h; still failing"
    assert remediation.page_details(None, one) == {"remediation": one}
    assert remediation.page_details({"output": "x"}, None) == {"diagnosis": {"output": "x"}}


def test_status_says_runs_in_the_window_and_exhausted():
    check = Check(name="web", kind="command", probe=None, remediate=action(max_runs=2))
    runs = [RemediationRun("web", 1000.0, 1001.0, 0), RemediationRun("db", 1100.0)]
    entry = remediation.status_entry(check, runs, 1180.0)
    assert remediation.status_text(entry, 1180.0) == ", remediated 1/2 in 1h, last 3m ago exit 0"
    runs.append(RemediationRun("web", 1150.0))
    text = remediation.status_text(remediation.status_entry(check, runs, 1180.0), 1180.0)
    assert text.startswith(", remediated 2/2 in 1h, last 30s ago exit -, remediation exhausted "
                           "until ")
    assert remediation.status_entry(Check(name="db", kind="command", probe=None), runs,
                                    1180.0) is None
    assert remediation.status_text(remediation.status_entry(check, [], 1180.0), 1180.0) == ""


# --------------------------------------------------------------------------- the hook


class Quick:
    def run(self, timeout: float) -> ProbeResult:
        return ProbeResult(ok=False, summary="down")


def test_the_scheduler_runs_the_follow_up_on_the_pool_and_keeps_the_result_if_it_raises():
    seen: list[tuple[str, str]] = []
    threads: list[str] = []
    done = threading.Event()

    def prepare(check, result):
        def fixed():
            threads.append(threading.current_thread().name)
            return ProbeResult(ok=False, summary="down, diagnosed")

        def broken():
            raise RuntimeError("bug")

        return {"a": fixed, "b": broken}.get(check.name)

    def on_result(check, result, planned, started):
        seen.append((check.name, result.summary))
        if {name for name, _ in seen} == {"a", "b", "c"}:
            done.set()

    sched = Scheduler(on_result, workers=2, prepare=prepare)
    sched.set_checks([Check(name=n, kind="fake", probe=Quick(), interval=60, timeout=1,
                            fingerprint="f") for n in "abc"], spread=False)
    sched.start()
    try:
        assert done.wait(10)
    finally:
        sched.shutdown(5)
    assert dict(seen) == {"a": "down, diagnosed", "b": "down", "c": "down"}
    assert threads and all(name.startswith("probe") for name in threads)


def test_status_reads_a_state_file_older_than_the_table(tmp_path):
    """An older runner still running (schema 4): status shows no runs, and no error."""
    import sqlite3

    Store(str(tmp_path)).close()
    conn = sqlite3.connect(tmp_path / "state.db")
    conn.executescript("DROP TABLE remediations; PRAGMA user_version=4;")
    conn.close()
    with Store(str(tmp_path), readonly=True) as store:
        assert remediation.stored_runs(store, (), 1000.0) == []
    with Store(str(tmp_path)) as store:  # the new runner's start migrates it
        store.remediation_started("web", 999.0, 0.0)
        assert [run.check for run in remediation.stored_runs(store, (), 1000.0)] == ["web"]


# --------------------------------------------------------------------------- in the runner


def drive(runner, check, result):
    """What the scheduler does with one result: prepare, the follow-up, then on_result."""
    work = runner.remedies.prepare(check, result)
    if work is not None:
        result = work()
    now = time.time()
    runner._on_result(check, result, now, now)
    return result


def test_in_the_runner_a_pass_after_a_run_is_fixed_and_a_page_is_failed(tmp_path):
    config = tmp_path / "w.yaml"
    config.write_text(
        "state_dir: ./state\ndefaults: {interval: 1h, fail_after: 3}\n"
        "checks:\n  - name: web\n    command: 'false'\n"
        "    remediate: {command: [sh, -c, 'echo restarted'], after: 1, max: 1, timeout: 20s}\n"
        "    diagnose: [sh, -c, 'echo looked']\n")
    runner = Runner(load(str(config)))
    verdicts: list[tuple[str, bool, int | None]] = []
    runner.remedies._on_remediated = lambda check, outcome: verdicts.append(
        (check.name, outcome.fixed, outcome.run.exit_code))
    runner.start()
    try:
        check = runner.checks["web"]
        assert runner._longest_timeout() == 30.0  # remediation and diagnose, one after the other
        drive(runner, check, FAIL)  # run 1 of 1
        assert [run.exit_code for run in runner.remedies.runs("web")] == [0]
        assert verdicts == []  # its result is the one that asked for it: not the verdict
        drive(runner, check, OK)
        assert verdicts == [("web", True, 0)]
        drive(runner, check, FAIL)  # due again, but max 1 in 1h: exhausted, nothing runs
        drive(runner, check, FAIL)
        paged = drive(runner, check, FAIL)
        assert runner.states["web"].triggered and len(runner.remedies.runs("web")) == 1
        assert paged.details["diagnosis"]["output"] == "looked\n"
        assert paged.details["remediation"]["exhausted"] is True
        assert paged.details["remediation"]["runs"][0]["output"] == "restarted\n"
        assert verdicts == [("web", True, 0)]  # no run since: nothing more to judge
        stored = runner.store.load_checks()["web"]
        assert stored.last_result["details"]["diagnosis"]["output"] == "looked\n"
    finally:
        runner.stop_requested.set()
        runner.shutdown()
    with Store(str(tmp_path / "state")) as store:
        [run] = store.remediations(0.0)
        assert run.exit_code == 0 and run.output == "restarted\n" and run.finished_at


def test_in_the_runner_a_run_that_did_not_help_is_judged_at_the_page(tmp_path):
    config = tmp_path / "w.yaml"
    config.write_text(
        "state_dir: ./state\ndefaults: {interval: 1h, fail_after: 3}\n"
        "checks:\n  - name: web\n    command: 'false'\n"
        "    remediate: {command: 'false', after: 2, max: 5}\n")
    runner = Runner(load(str(config)))
    verdicts: list[bool] = []
    runner.remedies._on_remediated = lambda check, outcome: verdicts.append(outcome.fixed)
    runner.start()
    try:
        check = runner.checks["web"]
        drive(runner, check, FAIL)
        drive(runner, check, FAIL)  # run 1
        assert verdicts == []
        drive(runner, check, FAIL)  # the page: run 1 did not help
        assert runner.states["web"].triggered and verdicts == [False]
        drive(runner, check, FAIL)  # run 2, after the page
        drive(runner, check, FAIL)  # still triggered and failing: did not help either
        assert verdicts == [False, False]
        assert [run.exit_code for run in runner.remedies.runs("web")] == [1, 1]
    finally:
        runner.stop_requested.set()
        runner.shutdown()
