"""CommandProbe.run: one contained run of the plugin, read the Nagios way."""

from __future__ import annotations

import time

from watchdog.model import ProbeResult
from watchdog.probes._util import fmt_seconds
from watchdog.probes.command.contain import run_contained
from watchdog.probes.command.nagios import output_details, verdict


class CommandProbe:
    """A parsed command check; everything that can be computed once already is."""

    __slots__ = ("argv", "env", "cwd")

    def __init__(self, argv: list[str], env: dict[str, str], cwd: str):
        self.argv = argv
        self.env = env
        self.cwd = cwd

    def __repr__(self) -> str:
        return f"CommandProbe({self.argv!r}, cwd={self.cwd!r})"

    def run(self, timeout: float) -> ProbeResult:
        """Run the plugin once, never longer than `timeout`; never raises."""
        start = time.monotonic()
        try:
            ok, summary, severity, details = self._run(timeout)
        except Exception as exc:  # the runner must survive anything a probe hits
            ok, summary, severity, details = (
                False, f"probe error: {type(exc).__name__}: {exc}", "error", {"exit_code": None}
            )
        return ProbeResult(ok, summary, severity, details, time.monotonic() - start)

    def _run(self, timeout: float) -> tuple[bool, str, str | None, dict]:
        outcome = run_contained(self.argv, timeout=timeout, env=self.env, cwd=self.cwd)
        if outcome.spawn_error is not None:
            return False, outcome.spawn_error, "error", {"exit_code": None}
        if outcome.timed_out or outcome.returncode is None:
            details = output_details(None, outcome.stdout, outcome.stderr)
            summary = f"timed out after {fmt_seconds(timeout)} (process group killed)"
            return False, summary, None, details
        return verdict(outcome.returncode, outcome.stdout, outcome.stderr)
