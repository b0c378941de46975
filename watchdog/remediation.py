"""`diagnose:` and `remediate:`: what a check runs when it fails, bounded and remembered.

Restart it first, page if that did not help, and never loop: a remediation runs once per
`after` failures in a row, at most `max` times within `within` (runs are counted in the
store before they start, so neither a restart nor a runner killed in the middle of one
resets the count). After a run the check is probed again at once; a pass before fail_after
means no page. `diagnose` runs once per incident, just before its trigger is recorded, and
its output goes with the trigger.

Both run contained (probes/command/contain.py) on the scheduler's worker pool, never on
the event loop: `Remedies.prepare` (loop thread, quick) decides from the check's state
whether a result needs either, and hands the scheduler the blocking work, which returns the
result (with what the page should carry) to be judged as usual. The state machine stays
pure; the trigger and its state are still recorded together.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from watchdog.config.remediation import Action, describe_window
from watchdog.durations import format_duration, format_time
from watchdog.model import TRIGGER, Check, CheckState, Inputs, Policy, ProbeResult
from watchdog.probes.command.contain import run_contained
from watchdog.state import step
from watchdog.store import RemediationRun, StoreError
from watchdog.words import plural

log = logging.getLogger("watchdog.runner")

OUTPUT_CAP = 16 * 1024  # bytes kept per stream of a diagnose or remediation run
RUNS_ON_PAGE = 3  # the newest runs whose output a page carries
MIN_KEEP = 86400.0  # runs are kept at least this long (status shows them), else `within`

RUN, NOT_DUE, EXHAUSTED = "run", "not due", "exhausted"


# --------------------------------------------------------------------------- the rule


def recent(times: Sequence[float], within: float, now: float) -> list[float]:
    """The runs `max` counts now: those that started in the last `within` (or, after the
    clock went back, later than now: counted, never forgotten)."""
    return [t for t in times if t >= now - within]


def due(failures: int, action: Action, times: Sequence[float], now: float) -> str:
    """RUN, NOT_DUE or EXHAUSTED for a check now failing `failures` times in a row.

    One run per `after` failures (at after, 2*after, ...), and never more than `max` runs
    within any `within`: a run is due only while fewer than `max` started in the window."""
    if failures < action.after or failures % action.after:
        return NOT_DUE
    return RUN if len(recent(times, action.within, now)) < action.max else EXHAUSTED


def next_allowed(times: Sequence[float], action: Action, now: float) -> float | None:
    """When the window lets another run start (None: it does now)."""
    window = sorted(recent(times, action.within, now))
    if len(window) < action.max:
        return None
    return window[len(window) - action.max] + action.within


def would_trigger(before: CheckState, result: ProbeResult, policy: Policy,
                  inputs: Inputs) -> bool:
    """True when this result opens an incident (not a repeat of an open one)."""
    if before.triggered:
        return False
    _, events = step(before, result, policy, inputs)
    return any(event.action == TRIGGER for event in events)


# --------------------------------------------------------------------------- running


def longest_run(check: Check) -> float:
    """The longest one job of this check may hold a worker: its probe, or its remediation
    and diagnose one after the other (for the runner's health: a busy pool is no wedge)."""
    follow = sum(action.timeout for action in (check.diagnose, check.remediate) if action)
    return max(check.timeout, follow)


def run_action(action: Action, secrets: frozenset[str]) -> tuple[int | None, str, float, str]:
    """(exit code or None, output, seconds taken, what went wrong or "") of one run."""
    began = time.monotonic()
    try:
        outcome = run_contained(action.argv, timeout=action.timeout, env=dict(action.env),
                                cwd=action.cwd, capture_cap=OUTPUT_CAP, secrets=secrets)
    except OSError as exc:  # no file descriptors left, and the like
        return None, "", time.monotonic() - began, f"could not run: {exc}"
    took = time.monotonic() - began
    output = (outcome.stdout + outcome.stderr).decode("utf-8", "replace")
    if outcome.spawn_error:
        return None, output, took, outcome.spawn_error
    if outcome.timed_out:
        return None, output, took, f"timed out after {format_duration(action.timeout)}"
    return outcome.returncode, output, took, ""


def diagnosis(action: Action, secrets: frozenset[str]) -> dict[str, Any]:
    """What the page carries of one diagnose run; its failure said in words."""
    code, output, took, error = run_action(action, secrets)
    entry: dict[str, Any] = {"command": action.text, "exit_code": code, "output": output,
                             "took": format_duration(took, "measured")}
    if error:
        entry["error"] = f"diagnose {error}"
    elif code != 0:
        entry["error"] = f"diagnose exited {code}"
    return entry


# --------------------------------------------------------------------------- the page


def page_details(diagnosed: dict[str, Any] | None, remediated: dict[str, Any] | None
                 ) -> dict[str, Any]:
    """The custom_details keys this module adds to a trigger: "diagnosis", "remediation"."""
    details: dict[str, Any] = {}
    if diagnosed is not None:
        details["diagnosis"] = diagnosed
    if remediated is not None:
        details["remediation"] = remediated
    return details


def history(action: Action, runs: Sequence[RemediationRun], now: float) -> dict[str, Any]:
    """What a page says of the remediations: the sentence, and the newest runs."""
    window = [run for run in runs if run.ran_at >= now - action.within]
    span = describe_window(action.within)
    summary = f"remediation ran {plural(len(window), 'time')} in the last {span}; still failing"
    allowed = next_allowed([run.ran_at for run in window], action, now)
    if allowed is not None:
        summary += (f"; remediation exhausted (max {action.max} in {span}), next run allowed "
                    f"at {format_time(allowed, seconds=True)}")
    return {
        "summary": summary,
        "command": action.text,
        "exhausted": allowed is not None,
        "runs": [_run_entry(run) for run in window[-RUNS_ON_PAGE:]],
    }


def _run_entry(run: RemediationRun) -> dict[str, Any]:
    took = None if run.finished_at is None else run.finished_at - run.ran_at
    return {"at": format_time(run.ran_at, seconds=True), "exit_code": run.exit_code,
            "took": None if took is None else format_duration(took, "measured"),
            "output": run.output}


@dataclass(frozen=True)
class Remediated:
    """A run and what became of the check: fixed (it passed before paging) or not."""

    run: RemediationRun
    fixed: bool
    command: str

    def change_note(self) -> tuple[str, dict[str, Any]]:
        """(summary, details) of the change event a run is told as (changes.remediation)."""
        how = "timed out or failed to start" if self.run.exit_code is None \
            else f"exited {self.run.exit_code}"
        came = "the check passes again" if self.fixed else "the check still fails"
        summary = f"{self.run.check}: remediation `{self.command}` {how}; {came}"
        return summary, {"command": self.command, "fixed": self.fixed,
                         **_run_entry(self.run)}


# --------------------------------------------------------------------------- the runner's


class Remedies:
    """The runner's diagnose and remediation runs: the run rule, the durable count, and what
    the page and the change event are told (`on_remediated(check, Remediated)`)."""

    def __init__(self, runner: Any, on_remediated: Callable[[Check, Remediated], None]) -> None:
        self._runner = runner
        self._on_remediated = on_remediated
        self._lock = threading.Lock()  # the pool's threads and the loop thread share these
        self._runs: dict[str, list[RemediationRun]] = {}
        self._just_ran: dict[str, RemediationRun] = {}  # its result is on its way
        self._awaiting: dict[str, RemediationRun] = {}  # has it helped? the next results say
        self._said: dict[str, str] = {}  # why a due run did not happen, said once per streak
        try:
            stored = runner.store.remediations(time.time() - self.keep(runner.config.checks))
        except StoreError as exc:
            log.warning("remediation counts could not be read (%s); counting from zero", exc)
            stored = []
        for run in stored:
            self._runs.setdefault(run.check, []).append(run)

    @staticmethod
    def keep(checks: Sequence[Check]) -> float:
        """How long runs are kept: the longest window, and at least a day."""
        return max([MIN_KEEP, *(c.remediate.within for c in checks if c.remediate)])

    def runs(self, name: str) -> list[RemediationRun]:
        with self._lock:
            return list(self._runs.get(name, ()))

    # --- the loop thread ----------------------------------------------------------------

    def prepare(self, check: Check, result: ProbeResult) -> Callable[[], ProbeResult] | None:
        """The blocking work this result needs before it is judged, or None (most)."""
        if check.remediate is None and check.diagnose is None:
            return None
        if result.ok and (check.diagnose is None or check.flapping is None):
            return None  # a pass triggers only a flapping check, and never remediates
        runner, now = self._runner, time.time()
        with runner._lock:
            current = runner.checks.get(check.name)
            if current is None or current.fingerprint != check.fingerprint:
                return None
            before, policy = runner.states[check.name], runner.policies[check.name]
            holds = runner.keeper.holds_of(check.name, now, runner.states)
        decision = NOT_DUE
        if check.remediate is not None and not result.ok:
            times = [run.ran_at for run in self.runs(check.name)]
            decision = due(before.failures + 1, check.remediate, times, now)
            if decision == RUN and holds:
                # Maintenance, a silence or a failing parent explains the failure: a restart
                # would fight the person at work, or cannot help.
                decision = NOT_DUE
                self._say_once(check, f"remediation not run while held: {holds[0].reason}")
            elif decision == EXHAUSTED:
                self._say_exhausted(check, times, now)
        inputs = Inputs(now=now, hold=holds[0] if holds else None)
        pages = would_trigger(before, result, policy, inputs)
        if decision != RUN and not pages:
            return None
        failures = before.failures + 1 if decision == RUN else 0
        return functools.partial(self._work, check, result, failures, pages)

    def judge(self, check: Check, ok: bool, triggered: bool) -> list[str]:
        """After a result was judged: the checks to probe at once (this one, right after a
        run), and whether a run helped: a pass before the page (fixed), or the page."""
        if check.remediate is None or not (self._just_ran or self._awaiting or self._said):
            return []  # nearly every result: no lock taken
        name = check.name
        with self._lock:
            if ok:
                self._said.pop(name, None)
            ran = self._just_ran.pop(name, None)
            if ran is not None:
                earlier = self._awaiting.pop(name, None)
                self._awaiting[name] = ran
                done = (earlier, False) if earlier is not None else None
            else:
                awaiting = self._awaiting.get(name)
                done = None
                if awaiting is not None and (ok or triggered):
                    del self._awaiting[name]
                    done = (awaiting, ok)
        if done is not None:
            self._verdict(check, *done)
        return [name] if ran is not None else []

    def _verdict(self, check: Check, run: RemediationRun, fixed: bool) -> None:
        command = check.remediate.text if check.remediate else ""
        if fixed:
            log.warning("check %s: remediation helped: passing again after %r (exit %s); no "
                        "page", check.name, command, run.exit_code)
        else:
            log.warning("check %s: remediation did not help: still failing after %r (exit %s)",
                        check.name, command, run.exit_code)
        self._on_remediated(check, Remediated(run, fixed, command))

    def _say_exhausted(self, check: Check, times: list[float], now: float) -> None:
        action = check.remediate
        allowed = next_allowed(times, action, now)
        ran = plural(len(recent(times, action.within, now)), "time")
        self._say_once(check, f"remediation exhausted: ran {ran} in the last "
                       f"{describe_window(action.within)} (max {action.max}); not run again "
                       f"before {format_time(allowed or now, seconds=True)}")

    def _say_once(self, check: Check, why: str) -> None:
        """Log why a due run did not happen, once per failure streak."""
        with self._lock:
            if self._said.get(check.name) == why.partition(":")[0]:
                return
            self._said[check.name] = why.partition(":")[0]
        log.warning("check %s: %s", check.name, why)

    # --- a worker thread -----------------------------------------------------------------

    def _work(self, check: Check, result: ProbeResult, failures: int, pages: bool
              ) -> ProbeResult:
        """Remediate (when `failures` in a row made a run due), then diagnose and say what
        the page carries (when this result opens an incident)."""
        if failures:
            self._remediate(check, failures)
        if not pages:
            return result
        secrets = self._runner.config.secrets
        diagnosed = diagnosis(check.diagnose, secrets) if check.diagnose else None
        if diagnosed is not None and diagnosed.get("error"):
            log.warning("check %s: %s; the page goes out with what it printed", check.name,
                        diagnosed["error"])
        remediated = None
        if check.remediate is not None:
            remediated = history(check.remediate, self.runs(check.name), time.time())
        extra = page_details(diagnosed, remediated)
        return replace(result, details={**result.details, **extra})

    def _remediate(self, check: Check, failures: int) -> RemediationRun:
        """Count the run (durably, first), run it, record how it ended."""
        action, name, store = check.remediate, check.name, self._runner.store
        ran_at = time.time()
        forget_before = ran_at - self.keep(self._runner.config.checks)
        with self._lock:
            runs = [run for run in self._runs.get(name, ()) if run.ran_at >= forget_before]
            runs.append(RemediationRun(name, ran_at))
            self._runs[name] = runs
            count = len(recent([run.ran_at for run in runs], action.within, ran_at))
        try:
            store.remediation_started(name, ran_at, forget_before)
        except StoreError as exc:
            log.warning("check %s: the remediation run could not be recorded (%s); it is "
                        "counted in memory only", name, exc)
        log.warning("check %s: failing %d in a row: remediation %d/%d in %s: %s", name,
                    failures, count, action.max, describe_window(action.within),
                    action.text)
        code, output, took, error = run_action(action, self._runner.config.secrets)
        run = RemediationRun(name, ran_at, ran_at + took, code, f"{error}\n{output}".strip()
                             if error else output)
        with self._lock:
            self._runs[name] = [run if r.ran_at == ran_at else r for r in self._runs[name]]
            self._just_ran[name] = run
        try:
            store.remediation_finished(run)
        except StoreError as exc:
            log.warning("check %s: the remediation's end could not be recorded (%s)", name, exc)
        log.warning("check %s: remediation %s after %s; probing again now", name,
                    error or f"exited {code}", format_duration(took, "measured"))
        return run


# --------------------------------------------------------------------------- status


def stored_runs(store: Any, checks: Sequence[Check], now: float) -> list[RemediationRun]:
    """The runs `status` shows; none from a state file older than the table (a runner of
    an older version still running: it has made none)."""
    try:
        return store.remediations(now - Remedies.keep(checks))
    except StoreError:
        return []


def status_entry(check: Check | None, runs: Sequence[RemediationRun], now: float
                 ) -> dict[str, Any] | None:
    """For `status`: the runs of a check with `remediate:` in its window."""
    if check is None or check.remediate is None:
        return None
    action = check.remediate
    mine = [run for run in runs if run.check == check.name and run.ran_at >= now - action.within]
    last = mine[-1] if mine else None
    allowed = next_allowed([run.ran_at for run in mine], action, now)
    return {"runs": len(mine), "max": action.max, "within": action.within,
            "exhausted": allowed is not None, "next_allowed": allowed,
            "last_at": last.ran_at if last else None,
            "last_exit_code": last.exit_code if last else None}


def status_text(entry: dict[str, Any] | None, now: float) -> str:
    """", remediated 1/2 in 1h, last 3m ago exit 0" (and "remediation exhausted")."""
    if not entry or not entry["runs"]:
        return ""
    text = f"remediated {entry['runs']}/{entry['max']} in {describe_window(entry['within'])}"
    text += (f", last {format_duration(now - entry['last_at'], 'age')} ago exit "
             f"{'-' if entry['last_exit_code'] is None else entry['last_exit_code']}")
    if entry["exhausted"]:
        text += (", remediation exhausted until "
                 f"{format_time(entry['next_allowed'], seconds=True, zone=False)}")
    return ", " + text
