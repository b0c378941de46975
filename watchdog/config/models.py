"""The config file, one model per section. Each field declares its type, default, range,
help, our error sentence and its reload policy (fields.RESTART); nothing else repeats them.

A probe kind's own keys are declared by its module (`Options`, see probes/base.py); a
check is CheckFields plus its kind's Options. `file_model()` puts it all together for
the JSON Schema and the docs table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    PlainValidator,
    StringConstraints,
    create_model,
)

from watchdog.config.fields import (
    DOC_DEFAULT,
    NO_CONTROL,
    NO_NUL,
    RESTART,
    Duration,
    EnvAlternative,
    Says,
    Section,
    env_int,
    one_or_many,
    problem,
)
from watchdog.config.holds import FlappingSettings, Maintenance, RepeatInterval
from watchdog.config.listen import LISTEN_SAYS, LISTEN_SCHEMA, Address, Listen, to_address
from watchdog.config.page import with_page_fields
from watchdog.config.remediation import Diagnose, Remediate
from watchdog.config.statecfg import StateSettings
from watchdog.model import SEVERITIES

MAX_NAME_CHARS = 200
MAX_INCIDENT_KEY_CHARS = 255
DEFAULT_PD_URL = "https://events.pagerduty.com"
URL_PATTERN = r"^https?://[^/\s?#]+(?:[/?#]\S*)?$"


# --------------------------------------------------------------------------- pagerduty

ROUTING_KEY_CHARS = 32


def wrong_length(routing_key: str) -> str | None:
    """Our sentence for a routing key that can't be one; it shows at most 4 characters."""
    if not routing_key or len(routing_key) == ROUTING_KEY_CHARS:
        return None
    shown = routing_key[-min(4, len(routing_key) // 3):] if len(routing_key) >= 3 else ""
    ending = f", ending in ...{shown}" if shown else ""
    return (f"must be {ROUTING_KEY_CHARS} characters (got {len(routing_key)}{ending}) — copy "
            "the Integration Key of the service's Events API integration")


CHANGE_KINDS = ("reload", "maintenance", "silence", "remediation")
ChangeKind = Annotated[
    Literal["reload", "maintenance", "silence", "remediation"],
    Says(f"must be one of {', '.join(CHANGE_KINDS)}, not {{value!r}}"),
]


def _routing_key(value: str | None) -> str | None:
    """Surrounding whitespace is not part of the key (a key file's newline, an env file's)."""
    if value is None:
        return None
    message = wrong_length(value.strip())
    if message:
        raise problem(message)
    return value.strip()



class PagerDuty(Section):
    """Where events go. Without a routing key pd-watchdog runs in dry-run: events are
    logged, not sent."""

    routing_key: Annotated[
        str | None, AfterValidator(_routing_key), Says("must be a string, not {type} — quote it"),
    ] = Field(
        None, description="the Integration Key (32 characters) of the service's Events API "
        "integration; keep it out of the file with ${PAGERDUTY_ROUTING_KEY}",
        json_schema_extra={DOC_DEFAULT: "none (dry-run)"})
    routing_key_file: Annotated[
        str | None, StringConstraints(min_length=1),
        Says("must be a string, not {type} — quote it", string_too_short="must not be empty"),
    ] = Field(None, description="read the routing key from this file instead (whitespace is "
              "stripped); relative to this file")
    api: Annotated[
        Literal["v2", "v1"],
        Says("must be v2 or v1, not {value!r} — v2 is the Events API v2 (routing key); v1 a "
             "Generic API service key"),
    ] = Field("v2", description="v2: Events API v2 (a routing key); v1: a Generic API "
              "service key")
    url: Annotated[
        str, StringConstraints(pattern=URL_PATTERN), EnvAlternative(),
        Says(f"must be an http(s) base URL, not {{value!r}} — e.g. {DEFAULT_PD_URL} (EU: "
             "https://events.eu.pagerduty.com)"),
    ] = Field(DEFAULT_PD_URL, description="base URL of the Events API; EU accounts: "
              "https://events.eu.pagerduty.com")
    source: Annotated[
        str, StringConstraints(min_length=1, max_length=255, pattern=NO_CONTROL),
        Says("must be a non-empty string of at most 255 characters without control "
             "characters (default: this host's FQDN)"),
    ] = Field(None, description="shown on incidents; when set, part of the default incident "
              "keys (else the hostname is)",
              json_schema_extra={DOC_DEFAULT: "this machine's FQDN, else its hostname"})
    change_events: Annotated[
        list[ChangeKind], Says(f"must be a list of {', '.join(CHANGE_KINDS)} — the changes to "
                               "tell PagerDuty about, e.g. [reload, maintenance]"),
    ] = Field(default_factory=list, description="send a PagerDuty Change Event when a reload "
              "changes checks, a maintenance window or silence starts or ends, a remediation "
              "ran (Events API v2 only)",
              json_schema_extra={DOC_DEFAULT: "[] (none)"})

    @classmethod
    def rules(cls, data: dict[str, Any]) -> Iterable[tuple[tuple, str]]:
        if data.get("routing_key") is not None and data.get("routing_key_file") is not None:
            yield ("routing_key_file",), ("both routing_key and routing_key_file are set — "
                                          "keep only one")
        if data.get("api") == "v1" and data.get("change_events"):
            yield ("change_events",), ("change events need api v2 (the Change Events API "
                                       "takes an Events API v2 routing key) — set api: v2, or "
                                       "remove change_events")


# --------------------------------------------------------------------------- heartbeat


class HeartbeatSettings(Section):
    """A dead-man's switch: the runner requests `url` every `interval` while it is
    healthy, so a stopped or stuck runner is noticed at the other end."""

    url: Annotated[
        str | None, StringConstraints(pattern=r"^(?:" + URL_PATTERN[1:-1] + r")?$"),
        EnvAlternative(),
        Says("must be an http(s) URL, not {value!r}",
             missing="url is required — the URL to ping, e.g. https://hc-ping.com/<uuid>",
             at_parent=True),
    ] = Field(description="the http:// or https:// URL to request; empty turns the heartbeat "
              "off (url: ${HEARTBEAT_URL:-})")
    interval: Duration = Field(60.0, description="how often to ping")
    timeout: Duration = Field(10.0, description="how long one ping may take")


# --------------------------------------------------------------------------- metrics


class MetricsSettings(Section):
    """A Prometheus /metrics endpoint."""

    listen: Listen = Field(description="a port (9108 binds 127.0.0.1), \"host:port\" "
                           "(\"0.0.0.0:9108\": every IPv4 interface) or \"[::1]:9108\"; port 0 "
                           "takes any free port", json_schema_extra=RESTART)


# --------------------------------------------------------------------------- push

PushListen = Annotated[
    Address, PlainValidator(to_address), LISTEN_SCHEMA,
    Says(LISTEN_SAYS.text, missing='listen is required — e.g. listen: "127.0.0.1:9109" (or '
         "remove push:)", at_parent=True, null_is_unset=True),
]


class PushSettings(Section):
    """An HTTP endpoint where other hosts report to passive checks: POST
    /ping/NAME[/start|/fail|/EXIT_CODE] with `Authorization: Bearer TOKEN`."""

    listen: PushListen = Field(description="a port (9109 binds 127.0.0.1), \"host:port\" or "
                               "\"[::1]:9109\"", json_schema_extra=RESTART)
    token: Annotated[
        str, StringConstraints(min_length=16, pattern=NO_CONTROL),
        Says("must be a string of at least 16 characters without control characters (e.g. "
             "`openssl rand -hex 16`)",
             missing="token is required: the endpoint answers no one without it — e.g. "
             "token: !secret ${PUSH_TOKEN}", at_parent=True),
    ] = Field(description="what a report must send as `Authorization: Bearer TOKEN`; keep it "
              "out of the file (!secret ${PUSH_TOKEN})")


# --------------------------------------------------------------------------- checks

Consecutive = env_int(1, 10**6, Says("must be an integer >= 1, not {value!r} — the number "
                                     "of consecutive results needed"))


class CheckSettings(Section):
    """Settings of a check; under `defaults:` they apply to every check that does not set
    them itself (a check's `details` are merged over the defaults' key by key)."""

    interval: Duration = Field(30.0, description="time between runs")
    timeout: Duration = Field(10.0, description="how long one run may take")
    fail_after: Consecutive = Field(3, description="consecutive failures before the "
                                    "incident is triggered")
    recover_after: Consecutive = Field(2, description="consecutive passes before it is "
                                       "resolved")
    retry_interval: Duration | None = Field(
        None, description="while failing but not yet triggered, re-check this often instead "
        "of interval; null cancels a defaults.retry_interval")
    severity: Annotated[
        Literal[SEVERITIES],
        Says(f"must be one of {', '.join(SEVERITIES)}, not {{value!r}}"),
    ] = Field("critical", description="the severity of the incident")
    details: Annotated[
        dict[str, Any] | None,
        Says("must be a mapping (key: value), not {type} — e.g. {{runbook: https://...}}"),
    ] = Field(None, description="a mapping sent with every event, merged over "
              "defaults.details", json_schema_extra={DOC_DEFAULT: "{}"})
    repeat_interval: RepeatInterval = Field(
        4 * 3600.0, json_schema_extra={DOC_DEFAULT: "4h"},
        description="while triggered, send the trigger again this often (same key: PagerDuty "
        "adds it to the open incident, or reopens one resolved by hand while "
        "the check still fails); 0 turns it off")
    flapping: Annotated[
        FlappingSettings | None,
        Says("must be a mapping, e.g. {{window: 21, high: 50%, low: 25%}} ({keys})"),
    ] = Field(None, description="flap detection, off unless set: {window, high, low}")
    diagnose: Diagnose = Field(None, description="a command whose output goes with the trigger")
    remediate: Remediate = Field(None, description="a command that may fix it before the page: "
                                 "{command, after, max, within, timeout, env, cwd}")


CheckSettings = with_page_fields(CheckSettings)  # component, group, class, links, images, runbook

Name = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_NAME_CHARS, pattern=NO_CONTROL),
    Says("must be a non-empty string (quote it if it looks like a number), not {value!r}",
         missing="missing name — every check needs a unique name", at_parent=True,
         string_too_long=f"must be at most {MAX_NAME_CHARS} characters, without control "
         "characters",
         string_pattern_mismatch=f"must be at most {MAX_NAME_CHARS} characters, without "
         "control characters"),
]
IncidentKey = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_INCIDENT_KEY_CHARS),
    Says(f"must be a string of 1..{MAX_INCIDENT_KEY_CHARS} characters (or leave it out for "
         "the default pd-watchdog/<source>/<name>)"),
]

CheckFields: type[Section] = create_model(
    "CheckFields",
    __base__=Section,
    __doc__="The keys every check has, whatever its probe kind.",
    name=(Name, Field(description="unique across all files; state and open incidents "
                      "follow it")),
    **{key: (field.annotation, field) for key, field in CheckSettings.model_fields.items()},
    depends_on=(Annotated[
        one_or_many(Name, Says("must be a list of check names, e.g. [uplink, dns]"),
                    single=str) | None,
        Says("must be a list of check names, e.g. [uplink, dns]"),
    ], Field(None, description="parents: while one of them is not passing, this check's "
             "triggers are held (its resolves are not); checked for unknown names and "
             "cycles")),
    incident_key=(IncidentKey, Field(
        None, description="used exactly as written; two checks sharing one resolve each "
        "other's incident", json_schema_extra={DOC_DEFAULT: "pd-watchdog/<source>/<name>"})),
)


# --------------------------------------------------------------------------- the file

IncludePattern = Annotated[
    str, StringConstraints(min_length=1, pattern=NO_NUL),
    Says("must be a file path or glob (string)"),
]


class Includes(Section):
    """`include:` alone, validated where the loader meets it (checks come in file order)."""

    include: Annotated[
        one_or_many(IncludePattern, Says("must be a list of file paths or globs, e.g. "
                                          "[checks/*.yaml] (relative to this file)"),
                    single=str) | None,
        Says("must be a list of file paths or globs, e.g. [checks/*.yaml] (relative to "
             "this file)"),
    ] = Field(None, description="more files of checks: paths or globs (* ? [abc] **), "
              "relative to this file; a glob may match nothing, a plain path must exist")


class Settings(Section):
    """Everything in the main file but its checks: read once, before them."""

    pagerduty: PagerDuty | None = None
    state_dir: Annotated[
        str | None, StringConstraints(min_length=1, pattern=NO_NUL),
        Says("must be a folder path (string)"),
    ] = Field(None, description="where open incidents and check state are kept; relative "
              "to this file", json_schema_extra={
                  **RESTART, DOC_DEFAULT: "$STATE_DIRECTORY, else .pd-watchdog beside this "
                  "file"})
    state: StateSettings | None = Field(
        None, description="shared state on PostgreSQL for a group of runners (docs/ha.md); "
        "absent: SQLite in state_dir")
    workers: env_int(1, 1024, Says("must be an integer 1..1024, not {value!r} — it is the "
                                   "size of the probe worker pool")) = Field(
        64, description="how many blocking probes (command) may run at once",
        json_schema_extra=RESTART)
    heartbeat: HeartbeatSettings | None = None
    metrics: MetricsSettings | None = None
    push: PushSettings | None = None
    defaults: Annotated[
        CheckSettings | None, Says("must be a mapping of check settings ({keys})"),
    ] = None
    maintenance: Maintenance | None = Field(
        None, description="planned windows in which the named checks do not page "
        "(resolves still go out)")


MAIN_KEYS = (*Settings.model_fields, *Includes.model_fields, "checks")
INCLUDED_KEYS = ("checks", *Includes.model_fields)


def check_model(name: str, options: type[BaseModel]) -> type[BaseModel]:
    """A whole check of one probe kind, for the schema: CheckFields and the kind's keys."""
    return create_model(
        f"{name.capitalize()}Check",
        __base__=CheckFields,
        __doc__=f"A check of probe kind {name}. " + (options.__doc__ or ""),
        **{key: (field.annotation, field) for key, field in options.model_fields.items()},
    )


def file_model(kinds: Mapping[str, Any]) -> type[BaseModel]:
    """The whole file (main or included), with every probe kind's checks."""
    check_types = tuple(check_model(name, kind.Options) for name, kind in kinds.items())
    check = Union[check_types] if len(check_types) > 1 else check_types[0]  # noqa: UP007
    return create_model(
        "ConfigFile",
        __base__=Settings,
        __doc__="A pd-watchdog config file (included files hold only checks and include).",
        include=(Includes.model_fields["include"].annotation,
                 Includes.model_fields["include"]),
        checks=(list[check] | None, Field(None, description="the checks, each a name, one "
                                          "probe kind and optional settings")),
    )
