"""Load, validate and normalise the YAML config into plain immutable objects.

Design points (each one is a user-visible promise, see docs/configuration.md):
  * safe YAML only, composed to a node tree so every error names file:line and key path;
  * each section is a model (models.py; a probe kind's keys are its module's `Options`),
    declaring once each key's type, default, range, help and reload policy: the JSON
    Schema (`pd-watchdog schema`), the docs table and the restart-only list come from them;
  * unknown keys are errors ("did you mean ...?"): a typo must never silently disable a check;
  * ${VAR} / ${VAR:-default} expand inside string scalars after parsing, so the
    environment can't inject YAML structure; `!secret` marks values never to be logged;
  * every failure (bad YAML, binary file, alias bomb, probe rejecting options) ends in one
    ConfigError listing all problems, never a traceback;
  * linear in the number of checks: no per-check scans, no deep copies.
"""

from __future__ import annotations

import gc
import os
import re
from collections.abc import Mapping

import yaml

from watchdog.config.loader import Loader
from watchdog.config.report import ConfigError
from watchdog.config.result import (
    DRY_RUN_WARNING,
    Config,
    Heartbeat,
    PagerDutySettings,
    default_incident_key,
)
from watchdog.config.values import REF, REF_BODY
from watchdog.config.yamlfile import MAX_FILE_BYTES, YamlBase
from watchdog.durations import parse_duration

__all__ = [
    "DRY_RUN_WARNING",
    "Config",
    "ConfigError",
    "Heartbeat",
    "PagerDutySettings",
    "default_incident_key",
    "load",
    "parse_duration",
    "state_dir_of",
]


def load(
    path: str, *, environ: Mapping[str, str] | None = None, need_key: bool = True
) -> Config:
    """Read the config at `path` (and its includes); raise ConfigError listing every problem.

    need_key=False is for commands that never send (status, check): an unset ${VAR} or an
    unreadable key file under `pagerduty:` then reads as "no key" instead of an error, so
    an operator's shell without the service's secrets can still look.
    """
    env = os.environ if environ is None else environ
    gc_was_enabled = gc.isenabled()
    gc.unfreeze()  # a reload: what the last load froze may be garbage now
    gc.disable()  # the node tree is many small objects; cyclic GC passes tripled load time
    try:
        config = Loader(path, env, need_key=need_key).run()
        # A config lives until the next reload: no collection (nor the one at exit) need
        # walk its objects again. 10,000 checks: ~6 % of `validate`'s instructions.
        gc.freeze()
        return config
    except ConfigError:
        raise
    except Exception as exc:  # a bug here must still read as a config problem, not a trace
        raise ConfigError(
            f"{path}: internal error while loading the config: {type(exc).__name__}: {exc}"
            " — please report this with the config that caused it"
        ) from exc
    finally:
        if gc_was_enabled:
            gc.enable()


def state_dir_of(path: str, environ: Mapping[str, str] | None = None) -> str:
    """Where the config at `path` keeps its state, read as leniently as it can be.

    For `status` when the file does not load: the runner kept its previous config, and the
    operator needs its state most right then. Same rules as load(): `state_dir` relative to
    the file, else $STATE_DIRECTORY, else .pd-watchdog beside the file."""
    env = os.environ if environ is None else environ
    main_path = os.path.abspath(path)
    folder = os.path.dirname(main_path)
    try:
        with open(main_path, "rb") as file:
            data = yaml.load(file.read(MAX_FILE_BYTES), Loader=YamlBase)
    except (OSError, yaml.YAMLError, ValueError):
        data = None
    value = data.get("state_dir") if isinstance(data, dict) else None
    if isinstance(value, str) and value and "\0" not in value:
        def expand(match: re.Match[str]) -> str:
            ref = REF_BODY.fullmatch(match.group(1) or "")
            if match.group(0) == "$${" or ref is None:
                return "${"
            return env.get(ref.group(1)) or (ref.group(3) or "")
        return os.path.normpath(os.path.join(folder, REF.sub(expand, value)))
    for candidate in (env.get("STATE_DIRECTORY") or "").split(":"):
        if candidate:
            return os.path.abspath(candidate)
    return os.path.join(folder, ".pd-watchdog")
