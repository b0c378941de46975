"""`state:`: where a runner group keeps its state, when it is not the SQLite file.

Absent (or `postgresql:` empty, e.g. `${PG_DSN:-}` unset), the state is SQLite in
state_dir, as always. With `postgresql:` the checks, outbox, silences and passive records
live in that database, shared by every runner of the group named `lock`: one of them holds
the group's lock and works, the others wait (docs/ha.md). Every key takes a restart.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, PlainValidator, StringConstraints, WithJsonSchema

from watchdog import dsn
from watchdog.config.fields import (
    DOC_TYPE,
    ENV_REF,
    NO_CONTROL,
    NO_NUL,
    RESTART,
    Says,
    Section,
    _duration_parser,
    duration_schema,
    problem,
)
from watchdog.config.report import Report, SourceFile
from watchdog.config.yamlfile import locate

DEFAULT_LOCK = "pd-watchdog"
MIN_FAILOVER = 3.0  # keepalives count in whole seconds; less would flap on a busy network
DEFAULT_FAILOVER = 10.0


def _dsn(value: Any) -> dsn.Dsn | None:
    if isinstance(value, dsn.Dsn):
        return value
    if not isinstance(value, str):
        raise problem(f"must be a postgresql:// URL (a string), not {type(value).__name__}")
    text = value.strip()
    if not text:
        return None  # ${PG_DSN:-} unset: the SQLite state of state_dir
    wrong = dsn.problem(text)
    if wrong:
        raise problem(wrong)
    return dsn.Dsn(text)


PostgresUrl = Annotated[
    dsn.Dsn | None, PlainValidator(_dsn),
    WithJsonSchema({"anyOf": [{"type": "string", "pattern": r"^\s*(postgres(ql)?://\S*)?\s*$"},
                              ENV_REF], DOC_TYPE: "URL"}),
]

FailoverAfter = Annotated[
    float, BeforeValidator(_duration_parser(MIN_FAILOVER)),
    WithJsonSchema(duration_schema(MIN_FAILOVER, "FailoverDuration")),
]


class StateSettings(Section):
    """Shared state for a group of runners (high availability, docs/ha.md): a PostgreSQL
    database instead of the SQLite file in state_dir."""

    postgresql: PostgresUrl = Field(
        None, description="postgresql://user[:password]@host[:port]/db[?sslmode=require]; "
        "keep the password out of the file (${PG_DSN}, !secret, postgresql_file or "
        "~/.pgpass); empty: SQLite in state_dir", json_schema_extra={**RESTART})
    postgresql_file: Annotated[
        str | None, StringConstraints(min_length=1, pattern=NO_NUL),
        Says("must be a file path (string)"),
    ] = Field(None, description="read the postgresql:// URL from this file instead "
              "(whitespace is stripped); relative to this file", json_schema_extra=RESTART)
    lock: Annotated[
        str, StringConstraints(min_length=1, max_length=200, pattern=NO_CONTROL),
        Says("must be a non-empty name of at most 200 characters without control characters"),
    ] = Field(DEFAULT_LOCK, description="the group's name: the runners sharing one database "
              "and one lock name are one group, of which one works", json_schema_extra=RESTART)
    failover_after: FailoverAfter = Field(
        DEFAULT_FAILOVER, description="how soon a dead or cut-off leader is noticed (by its "
        "own connection and by the server): keepalives and timeouts are set from it",
        json_schema_extra=RESTART)

    @classmethod
    def rules(cls, data: dict[str, Any]) -> Iterable[tuple[tuple, str]]:
        if data.get("postgresql") not in (None, "") and data.get("postgresql_file") is not None:
            yield ("postgresql_file",), ("both postgresql and postgresql_file are set — keep "
                                         "only one")


def read_dsn_file(path: str) -> tuple[dsn.Dsn | None, str | None]:
    """(the URL in the file at `path`, None) or (None, why it cannot be used)."""
    try:
        with open(path, "rb") as fh:
            text = fh.read(8192).decode("utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        return None, (f"cannot read {path}: {reason or exc} — check the path (relative to "
                      "this file) and that the runner may read it")
    if not text:
        return None, f"{path} is empty — put the postgresql:// URL in it"
    wrong = dsn.problem(text)
    if wrong:
        return None, f"the URL in {path} {wrong}"
    return dsn.Dsn(text), None


DRIVER_MISSING = ("the PostgreSQL state needs the psycopg driver, which is not installed — "
                  "pip install 'pd-watchdog[postgresql]'")


SOURCE_NEEDED = ("a group's members must key incidents alike: set pagerduty.source to one "
                 "name on every member (e.g. source: web-pair) — by default each host keys "
                 "its incidents by its own hostname, and a takeover would page again")


def resolve(section: StateSettings | None, file: SourceFile, root: Any, report: Report,
            secrets: set[str], *, source_set: bool = True) -> StateSettings | None:
    """The section with postgresql_file read into postgresql, its password noted as a
    secret (never logged) and the driver's presence checked; None when it is SQLite.
    A group needs an explicit pagerduty.source (`source_set`): its default incident keys
    would differ from host to host."""
    if section is None:
        return None
    url = section.postgresql
    key = "postgresql"
    if section.postgresql_file is not None:
        key = "postgresql_file"
        url, wrong = read_dsn_file(os.path.join(file.folder, section.postgresql_file))
        if wrong:
            report.error(file, locate(root, ("state", key)), ("state", key), wrong)
            return None
    if url is None:
        return None
    secrets.update(dsn.secrets_of(url.text))
    if not source_set:
        report.error(file, locate(root, ("state", key)), ("state", key), SOURCE_NEEDED)
    if importlib.util.find_spec("psycopg") is None:
        report.error(file, locate(root, ("state", key)), ("state", key), DRIVER_MISSING)
    return section.model_copy(update={"postgresql": url, "postgresql_file": None})
