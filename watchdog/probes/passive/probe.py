"""PassiveProbe: judges the reports the runner put in its inbox; it probes nothing."""

from __future__ import annotations

import time

from watchdog.model import ProbeResult
from watchdog.probes.passive.judge import Expect, judge
from watchdog.reports import Record

Inbox = dict[str, Record]  # check name -> its record, kept current by the runner


class PassiveProbe:
    """A passive check's probe. build() cannot know the check's name or where reports are
    kept; the runner (or `pd-watchdog check`) binds it to both before it runs. Unbound, it
    has nothing to judge: its run is pending (None)."""

    def __init__(self, expect: Expect) -> None:
        self.expect = expect
        self.name = ""
        self.inbox: Inbox | None = None

    def bind(self, name: str, inbox: Inbox) -> None:
        self.name, self.inbox = name, inbox

    async def run(self, timeout: float) -> ProbeResult | None:
        """The verdict now: on the event loop, and costs a dict lookup (never blocks)."""
        return self.judge(time.time())

    def judge(self, now: float) -> ProbeResult | None:
        record = self.inbox.get(self.name) if self.inbox is not None else None
        return judge(self.expect, record, now)
