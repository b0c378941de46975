"""The `command:` check keys, validated once into a CommandProbe (argv, environment and
folder computed there, not per run)."""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable
from typing import Annotated, Any

from pydantic import Field, StringConstraints

from watchdog.config.commandline import Command, EnvName, EnvValue
from watchdog.config.fields import (
    DOC_DEFAULT,
    NO_NUL,
    Flag,
    Says,
    Section,
)
from watchdog.probes.base import validate
from watchdog.probes.command.contain import command_argv, minimal_env
from watchdog.probes.command.probe import CommandProbe

NAME = "command"


class Options(Section):
    """Run a Nagios-style plugin: exit 0 OK, 1 WARNING (severity warning), 2 CRITICAL
    (the check's severity), 3 or anything else UNKNOWN (error); perfdata after "|"."""

    command: Command = Field(description="the program: a string (split like a shell would, "
                             "none started) or a list taken as is; a relative program path "
                             "starts at cwd")
    shell: Flag = Field(False, description="run the command string with /bin/sh -c")
    env: Annotated[
        dict[EnvName, EnvValue] | None, Says("must be a mapping of NAME: value"),
    ] = Field(None, description="variables added to a minimal environment (PATH, LANG)")
    cwd: Annotated[
        str | None, StringConstraints(min_length=1, pattern=NO_NUL),
        Says("must be a folder path (relative paths start at the check file)"),
    ] = Field(None, description="the folder the command runs in; relative to this file",
              json_schema_extra={DOC_DEFAULT: "the folder of this file"})

    @classmethod
    def rules(cls, data: dict[str, Any]) -> Iterable[tuple[tuple, str]]:
        command, shell = data.get("command"), data.get("shell") is True
        if shell and isinstance(command, list):
            yield ("shell",), "shell: true needs command as one string, not a list"
        if not shell and isinstance(command, str) and "\0" not in command and command.strip():
            try:
                argv = shlex.split(command)
            except ValueError as exc:
                yield ("command",), f"cannot split into words ({exc}); check the quotes"
            else:
                if not argv:
                    yield ("command",), "must not be empty: give the program to run"


KEYS = frozenset(Options.model_fields)


def build(options: Options, base_dir: str) -> CommandProbe:
    """The probe, from validated options: argv, environment and folder computed once."""
    argv = command_argv(options.command, options.shell)
    env = minimal_env(options.env)
    cwd = base_dir
    if options.cwd is not None:
        cwd = os.path.normpath(os.path.join(base_dir, os.path.expanduser(options.cwd)))
    return CommandProbe(argv, env, cwd)


def parse(options: dict[str, Any], base_dir: str) -> CommandProbe:
    """Validate the check's command options and build the probe; OptionError lists every
    problem."""
    return build(validate(Options, options, base_dir), base_dir)
