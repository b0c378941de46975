"""Plain data shared by the runner's parts: what a probe saw, what a check is, what to send.

Everything here is immutable and free of I/O so the state machine can be a pure function.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Protocol

# PagerDuty's severities are the client's (the wire contract), named here for watchdog's use.
from pagerduty_api._transport import SEVERITIES as SEVERITIES
from watchdog.flapping import Flapping

TRIGGER = "trigger"
RESOLVE = "resolve"
CHANGE = "change"  # a PagerDuty Change Event (watchdog/changes.py): no incident, no severity


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
class Page:
    """What a check's page carries besides its summary and details (Events API v2 fields),
    placeholders already filled in: see watchdog/config/page.py."""

    component: str = ""
    group: str = ""
    event_class: str = ""
    links: tuple[dict[str, str], ...] = ()
    images: tuple[dict[str, str], ...] = ()


NO_PAGE = Page()


class OnFirstRead:
    """A str field of a frozen dataclass that Check.of_fields may give as a function: it
    runs on the first read, and its answer goes into the instance's __dict__, where every
    later read finds it as a plain attribute (a non-data descriptor, as cached_property).
    For the check's fingerprint, which `validate` never reads: hashing 10,000 definitions
    was ~12 % of its time. Through __init__ the field is a str like any other."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        self.maker = f"_{name}_maker"

    def __get__(self, obj: Any, owner: type | None = None) -> str:
        if obj is None:
            return ""  # the field's default
        maker = obj.__dict__.get(self.maker)
        if maker is None:  # another thread made it since this read began
            return obj.__dict__[self.name]
        value = obj.__dict__[self.name] = maker()  # two threads at once: the same str
        obj.__dict__.pop(self.maker, None)
        return value


@dataclass(frozen=True)
class Check:
    """One check as the config defines it. `origin` is "file:line" for messages.
    `fingerprint` (SHA-256 of the definition: a reload keeps a check's counts while it is
    unchanged) may be given to of_fields as a function, run when first read."""

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
    fingerprint: str = OnFirstRead()  # type: ignore[assignment]  # read: always a str
    origin: str = ""
    depends_on: tuple[str, ...] = ()
    flapping: Flapping | None = None
    repeat_interval: float = 0.0
    page: Page = NO_PAGE
    diagnose: Any = None  # a config.remediation.Action: run when it is about to page
    remediate: Any = None  # an Action with its run rule: run before it pages

    @classmethod
    def of_fields(cls, **values: Any) -> Check:
        """The same Check as Check(**values), given a value for every field (the loader's
        way): a frozen dataclass's __init__ sets each field through object.__setattr__,
        ~10 us for these 20, ~5 % of validate's time at 10,000 checks; this fills the
        instance's __dict__ at once."""
        if values.keys() != _CHECK_FIELDS:
            raise TypeError(f"Check.of_fields needs every field, exactly: "
                            f"{sorted(_CHECK_FIELDS.symmetric_difference(values))}")
        for name, maker in _MADE_ON_READ.items():
            if callable(values[name]):
                values[maker] = values.pop(name)
        check = object.__new__(cls)
        check.__dict__.update(values)
        return check


_CHECK_FIELDS = frozenset(f.name for f in fields(Check))
_MADE_ON_READ = {name: attr.maker for name, attr in vars(Check).items()
                 if isinstance(attr, OnFirstRead)}


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
    repeat_interval: float = 0.0
    flapping: Flapping | None = None

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
            repeat_interval=check.repeat_interval,
            flapping=check.flapping,
        )


@dataclass(frozen=True)
class Hold:
    """Why a trigger must wait, and until when (None: until something recovers)."""

    reason: str
    until: float | None = None


@dataclass(frozen=True)
class Inputs:
    """What the state machine is told besides the result: the time, the hold that applies
    now (maintenance, silence, a failing parent) and, for a parent's page, the dependents
    failing behind it."""

    now: float = 0.0
    hold: Hold | None = None
    dependents: tuple[str, ...] = ()


NO_INPUTS = Inputs()


@dataclass(frozen=True)
class CheckState:
    """What the runner remembers about a check between results (and across restarts).

    `failures`/`passes` count the current run of consecutive results; `triggered` is True
    while an incident is open on PagerDuty, with the severity it was last triggered at.
    `held` is True while a trigger is owed but held back; `notified_at` is when the last
    trigger was queued (for repeat_interval); `history` and `flapping` are flap detection's
    ("1" a pass, "0" a failure, oldest first; only kept when flap detection is on).
    """

    failures: int = 0
    passes: int = 0
    triggered: bool = False
    severity: str | None = None
    held: bool = False
    notified_at: float | None = None
    history: str = ""
    flapping: bool = False

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "failures": self.failures,
            "passes": self.passes,
            "triggered": self.triggered,
            "severity": self.severity,
        }
        # Newer fields only when set: rows stay small and older versions read them.
        for key, unset in _OPTIONAL_STATE.items():
            value = getattr(self, key)
            if value != unset:
                data[key] = value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckState:
        return cls(**{k: data[k] for k in _STATE_KEYS if k in data})


_OPTIONAL_STATE = {"held": False, "notified_at": None, "history": "", "flapping": False}
_STATE_KEYS = ("failures", "passes", "triggered", "severity", *_OPTIONAL_STATE)


@dataclass(frozen=True)
class Event:
    """An event for PagerDuty, as plain data; the sender turns it into an Alert call (a
    CHANGE into a ChangeEvent call: `check` is then its kind, `details` its custom_details,
    `timestamp` when it happened, `links` its [{href, text}])."""

    action: str
    incident_key: str
    check: str
    summary: str
    severity: str
    source: str
    details: dict[str, Any] = field(default_factory=dict)
    # Events API v2 payload fields (watchdog/page.py fills them in); v1 gets what it has.
    component: str = ""
    group: str = ""
    event_class: str = ""
    links: tuple[dict[str, str], ...] = ()
    images: tuple[dict[str, str], ...] = ()
    timestamp: float | None = None

    def __post_init__(self) -> None:
        # One spelling of the sequences (a list from JSON, a tuple from code) so events compare.
        for key in _SEQUENCES:
            if not isinstance(getattr(self, key), tuple):
                object.__setattr__(self, key, tuple(getattr(self, key)))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        # Newer fields only when set: outbox rows stay small and older versions read them.
        for key, unset in _OPTIONAL_EVENT.items():
            if data[key] is unset or data[key] in ("", (), []):
                del data[key]
        for key in _SEQUENCES:
            if key in data:
                data[key] = list(data[key])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        return cls(**data)


_OPTIONAL_EVENT: dict[str, Any] = {
    "component": "", "group": "", "event_class": "", "links": (), "images": (), "timestamp": None}
_SEQUENCES = ("links", "images")
