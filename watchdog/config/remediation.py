"""The `diagnose:` and `remediate:` check keys: what to run when a check fails.

Both run a program the way the command probe does (probes/command/contain.py): an argv
from a string or a list, a minimal environment plus `env`, a folder relative to the check's
file, a timeout. `build()` turns the validated settings into a plain `Action` once, at load.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field, PlainValidator, StringConstraints

from watchdog.config.commandline import Command, EnvName, EnvValue
from watchdog.config.fields import (
    DOC_DEFAULT,
    NO_NUL,
    Duration,
    Says,
    Section,
    env_int,
    validate,
)
from watchdog.durations import format_duration
from watchdog.probes.command.contain import command_argv, minimal_env

DIAGNOSE_TIMEOUT = 10.0
REMEDIATE_TIMEOUT = 60.0

# The program and its environment are typed as the command probe's (config/commandline.py).
Env = Annotated[dict[EnvName, EnvValue] | None, Says("must be a mapping of NAME: value")]
Cwd = Annotated[
    str | None, StringConstraints(min_length=1, pattern=NO_NUL),
    Says("must be a folder path (relative paths start at the check file)"),
]
_CWD_DEFAULT = {DOC_DEFAULT: "the folder of the check's file"}


def _split_rules(data: dict[str, Any]) -> Iterable[tuple[tuple, str]]:
    """A command string must split into words (it is run without a shell)."""
    command = data.get("command")
    if isinstance(command, str) and "\0" not in command and command.strip():
        try:
            shlex.split(command)
        except ValueError as exc:
            yield ("command",), f"cannot split into words ({exc}); check the quotes"


class DiagnoseSettings(Section):
    """A program whose output is attached to the check's trigger (once per incident)."""

    command: Command = Field(description="the program: a string (split like a shell would, "
                             "none started) or a list taken as is")
    timeout: Duration = Field(DIAGNOSE_TIMEOUT, description="how long it may run; the page "
                              "waits at most this long for it")
    env: Env = Field(None, description="variables added to a minimal environment (PATH, LANG)")
    cwd: Cwd = Field(None, description="the folder it runs in; relative to the check's file",
                     json_schema_extra=_CWD_DEFAULT)

    @classmethod
    def rules(cls, data: dict[str, Any]) -> Iterable[tuple[tuple, str]]:
        return _split_rules(data)


def _diagnose(value: Any) -> DiagnoseSettings:
    """A command (string or argv list) alone, or the mapping {command, timeout, env, cwd}."""
    if isinstance(value, dict):
        return validate(DiagnoseSettings, value)
    if isinstance(value, str):
        return validate(DiagnoseSettings, {"command": value})  # its words checked too
    return DiagnoseSettings(command=validate(Command, value))


Diagnose = Annotated[
    DiagnoseSettings | None,
    PlainValidator(_diagnose, json_schema_input_type=str | list[str] | DiagnoseSettings),
    Says("must be a command (a string or a list of strings) or a mapping {command, timeout, "
         "env, cwd}", null_is_unset=True),
]

Count = env_int(1, 1000, Says("must be an integer 1..1000, not {value!r}"))


class RemediateSettings(Section):
    """A program that may fix what failed, run before anyone is paged; bounded: at most
    `max` runs within `within`, one per `after` failures in a row."""

    command: Command = Field(description="the program: a string (split like a shell would, "
                             "none started) or a list taken as is")
    after: Count = Field(1, description="failures in a row before it runs (then again after "
                         "as many more); must be below fail_after to run before the page")
    max: Count = Field(3, description="runs at most this often within `within`; a restart "
                       "of pd-watchdog does not reset the count")
    within: Duration = Field(3600.0, description="the window `max` counts runs in",
                             json_schema_extra={DOC_DEFAULT: "1h"})
    timeout: Duration = Field(REMEDIATE_TIMEOUT, description="how long one run may take "
                              "(then its process group is killed)",
                              json_schema_extra={DOC_DEFAULT: "1m"})
    env: Env = Field(None, description="variables added to a minimal environment (PATH, LANG)")
    cwd: Cwd = Field(None, description="the folder it runs in; relative to the check's file",
                     json_schema_extra=_CWD_DEFAULT)

    @classmethod
    def rules(cls, data: dict[str, Any]) -> Iterable[tuple[tuple, str]]:
        return _split_rules(data)


Remediate = Annotated[
    RemediateSettings | None,
    Says("must be a mapping, e.g. {{command: systemctl restart nginx, after: 1, max: 2, "
         "within: 1h}} ({keys})"),
]


@dataclass(frozen=True)
class Action:
    """A program ready to run contained: argv, environment and folder computed once.
    `text` is the command as written, for logs and the page."""

    text: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    cwd: str
    timeout: float
    after: int = 0  # remediate only: the run rule's numbers
    max: int = 0
    within: float = 0.0


def build(settings: dict[str, Any] | None, base_dir: str) -> Action | None:
    """The Action of a `diagnose:` or `remediate:` (as plain data), or None when unset."""
    if settings is None:
        return None
    command = settings["command"]
    text = command if isinstance(command, str) else shlex.join(command)
    cwd = base_dir
    if settings.get("cwd") is not None:
        cwd = os.path.normpath(os.path.join(base_dir, os.path.expanduser(settings["cwd"])))
    return Action(
        text=text, argv=tuple(command_argv(command)),
        env=tuple(sorted(minimal_env(settings.get("env")).items())), cwd=cwd,
        timeout=settings["timeout"], after=settings.get("after", 0),
        max=settings.get("max", 0), within=settings.get("within", 0.0),
    )


def after_problem(settings: dict[str, Any]) -> str | None:
    """Why a check's remediate.after cannot work with its fail_after, or None.

    An error, not a warning: with after >= fail_after the page goes out before (or with)
    the first run, so the block would never do what it is there for, and nothing but a
    line in validate's output would say so."""
    remediate = settings.get("remediate")
    if remediate is None or remediate["after"] < settings["fail_after"]:
        return None
    return (f"must be below fail_after ({settings['fail_after']}), got {remediate['after']}: "
            "the page would go out before the remediation could help — raise fail_after "
            f"(e.g. fail_after: {remediate['after'] + 1}) or lower after")


def describe_window(within: float) -> str:
    """1h, 30m: the window as the page and status say it."""
    return format_duration(within, "age")
