"""Plain data shared by the runner's parts: what a probe saw, what a check is, what to send.

Everything here is immutable and free of I/O so the state machine can be a pure function.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

# PagerDuty's severities are the client's (the wire contract), named here for watchdog's use.
from pagerduty_api._transport import SEVERITIES as SEVERITIES

TRIGGER = "trigger"
RESOLVE = "resolve"


@dataclass(frozen=True)
class ProbeResult:
    """One run of a probe.

    `severity` is the failure's own severity when the probe knows better than the check
    (a Nagios WARNING is "warning", UNKNOWN is "error"); None means "use the check's".
    """

    ok: bool
    summary: str
    severity: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    latency: float = 0.0


class Probe(Protocol):
    """A configured probe: call it with a timeout, get a result; it must never raise."""

    def run(self, timeout: float) -> ProbeResult: ...


@dataclass(frozen=True)
class Check:
    """One check as the config defines it. `origin` is "file:line" for messages."""

    name: str
    kind: str
    probe: Probe
    interval: float = 30.0
    timeout: float = 10.0
    fail_after: int = 3
    recover_after: int = 2
    retry_interval: float | None = None
    severity: str = "critical"
    incident_key: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    fingerprint: str = ""
    origin: str = ""


@dataclass(frozen=True)
class Policy:
    """The part of a check the state machine needs; kept apart so the core sees no probe."""

    name: str
    incident_key: str
    source: str
    fail_after: int = 3
    recover_after: int = 2
    severity: str = "critical"
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, check: Check) -> Policy:
        return cls(
            name=check.name,
            incident_key=check.incident_key,
            source=check.source,
            fail_after=check.fail_after,
            recover_after=check.recover_after,
            severity=check.severity,
            details=check.details,
        )


@dataclass(frozen=True)
class CheckState:
    """What the runner remembers about a check between results (and across restarts).

    `failures`/`passes` count the current run of consecutive results; `triggered` is True
    while an incident is open on PagerDuty, with the severity it was last triggered at.
    """

    failures: int = 0
    passes: int = 0
    triggered: bool = False
    severity: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "failures": self.failures,
            "passes": self.passes,
            "triggered": self.triggered,
            "severity": self.severity,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckState:
        return cls(
            **{k: data[k] for k in ("failures", "passes", "triggered", "severity") if k in data}
        )


@dataclass(frozen=True)
class Event:
    """An event for PagerDuty, as plain data; the sender turns it into an Alert call."""

    action: str
    incident_key: str
    check: str
    summary: str
    severity: str
    source: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        return cls(**data)
