"""One load(): files and includes in order, the main file's settings, then the checks.

The YAML layer (yamlfile.py, values.py) turns each file into plain values and keeps the
nodes; the models (models.py, and each probe kind's Options) validate those values; the
errors they raise are translated (errors.py) and located back on the nodes.
"""

from __future__ import annotations

import glob
import os
import re
import socket
import stat
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from watchdog import probes
from watchdog.config import statecfg
from watchdog.config.checks import CheckReader
from watchdog.config.errors import did_you_mean, translate
from watchdog.config.fields import validate
from watchdog.config.holds import windows
from watchdog.config.models import (
    DEFAULT_PD_URL,
    INCLUDED_KEYS,
    MAIN_KEYS,
    IncludePattern,
    Includes,
    PagerDuty,
    Settings,
    wrong_length,
)
from watchdog.config.page import host_fqdn
from watchdog.config.report import Report, SourceFile, TooManyErrors
from watchdog.config.result import DRY_RUN_WARNING, Config, Heartbeat, PagerDutySettings
from watchdog.config.values import REF, Abort, Values
from watchdog.config.yamlfile import child, compose, locate
from watchdog.holds import Window, unmatched

MAX_INCLUDE_DEPTH = 32
MIN_SECRET_CHARS = 4
_GLOB_CHARS = re.compile(r"[*?\[]")


class Loader(CheckReader):
    """One load(): walks files and nodes, collects errors/warnings/secrets, builds Config."""

    def __init__(self, path: str, environ: Mapping[str, str], *, need_key: bool = True):
        self.given_path = path
        self.main_path = os.path.abspath(path)
        self.main_dir = os.path.dirname(self.main_path)
        self.env = environ
        self.need_key = need_key
        self.report = Report(path)
        self.values = Values(self.report, environ, need_key)
        self.files: list[str] = []
        self.read_paths: set[str] = set()
        super().__init__(probes.KINDS)

    def run(self) -> Config:
        try:
            return self.build()
        except TooManyErrors:
            raise self.report.fail(stopped=True) from None

    def build(self) -> Config:
        file, root = self.open(self.main_path, None, None, ())
        settings = Settings(state_dir=self.default_state_dir())
        self.host = self.key_source = self.hostname()
        pagerduty = PagerDutySettings("", "v2", DEFAULT_PD_URL, host_fqdn(self.host))
        if file is not None:
            try:
                sections = self.values.pairs(file, root, ()) if root is not None else {}
                settings, pagerduty = self.read_settings(file, root, sections, settings,
                                                         pagerduty)
                self.source = pagerduty.source
                # Default incident keys keep the hostname (as before the FQDN was the
                # source) unless a source is set: an upgrade must not re-key every incident.
                if settings.pagerduty is not None and settings.pagerduty.source is not None:
                    self.key_source = self.source
                self.checks_and_includes(file, sections, [os.path.realpath(self.main_path)], 0)
            except Abort:
                pass
            if not self.checks and not self.report.errors:
                self.report.warn(file, None, (), "no checks defined — add some under `checks:`")
        self.check_dependencies()
        maintenance = self.read_maintenance(file, root, settings)
        if self.report.errors:
            raise self.report.fail()
        self.warn_slow_timeouts()
        return Config(
            path=self.main_path,
            files=tuple(self.files),
            settings=settings,
            pagerduty=pagerduty,
            checks=tuple(self.checks),
            heartbeat=_heartbeat(settings),
            secrets=frozenset(s for s in self.values.secrets if len(s) >= MIN_SECRET_CHARS),
            warnings=tuple(self.report.warnings),
            maintenance=maintenance,
        )

    def read_maintenance(self, file: SourceFile | None, root: MappingNode | None,
                         settings: Settings) -> tuple[Window, ...]:
        """The windows, zones resolved; a glob that names no check is a warning (a typo
        would hold nothing), a repeated window name an error."""
        if file is None or root is None or not settings.maintenance:
            return ()
        names = [check.name for check in self.checks]
        seen: dict[str, int] = {}
        origins = []
        for index, window in enumerate(settings.maintenance):
            at = ("maintenance", index)
            origins.append(f"{file.display}:{locate(root, at)}")
            if window.name in seen:
                self.report.error(file, locate(root, at + ("name",)), at + ("name",),
                                  f"duplicate window name {window.name!r} — also window "
                                  f"{seen[window.name]}; names must be unique")
            seen.setdefault(window.name, index)
            for position, pattern in enumerate(window.checks):
                if self.checks and unmatched([pattern], names):
                    where = at + ("checks", position)
                    self.report.warn(file, locate(root, where), where,
                                     f"{pattern!r} matches no check — the window holds "
                                     "nothing for it")
        return windows(settings.maintenance, origins, self.env)

    # ------------------------------------------------------------------ files

    def display_name(self, path: str) -> str:
        if path == self.main_path:
            return self.given_path
        rel = os.path.relpath(path, self.main_dir)
        return path if rel.startswith("..") else rel

    def open(self, path: str, parent: SourceFile | None, where: Node | None, at: tuple
             ) -> tuple[SourceFile | None, MappingNode | None]:
        """(file, root) read and composed; file None (error recorded) when it can't be used."""
        file = SourceFile(path, self.display_name(path), len(self.files))
        self.files.append(path)
        self.read_paths.add(os.path.realpath(path))
        usable, root = compose(self.report, file, parent, where, at)
        return (file if usable else None), root

    def validate(self, model: Any, data: Any, file: SourceFile, node: Node,
                 prefix: tuple = (), note: Any = None) -> Any:
        """`model` (a model class, or any type) validated from `data`, found at `prefix`
        under `node` in `file`; None if invalid, every error recorded at its line."""
        try:
            return validate(model, data, {"base_dir": file.folder})
        except ValidationError as exc:
            extra = {"unknown_note": note} if note is not None else {}
            for path, message in translate(exc, model, data, prefix=prefix, **extra):
                self.report.error(file, locate(node, path[len(prefix):]), path, message)
            return None

    # ------------------------------------------------------------------ main settings

    def read_settings(self, file: SourceFile, root: MappingNode | None,
                      sections: dict[str, tuple[Node, Node]], settings: Settings,
                      pagerduty: PagerDutySettings) -> tuple[Settings, PagerDutySettings]:
        """The main file's settings validated (unknown top-level keys refused), state_dir
        resolved against the file, the routing key read: (settings, where events go)."""
        data: dict[str, Any] = {}
        for key, (key_node, node) in sections.items():
            if key not in MAIN_KEYS:
                self.report.error(file, key_node, (key,),
                                  f"unknown key {key!r} — {did_you_mean(key, MAIN_KEYS)}")
            elif key in Settings.model_fields:
                data[key] = self.values.value(file, node, (key,))
        valid = settings
        if root is not None and data:
            valid = self.validate(Settings, data, file, root, note=self.defaults_note)
            if valid is None:
                return settings, pagerduty
        self.read_defaults(valid.defaults)
        state_dir = settings.state_dir
        if "state_dir" in data and valid.state_dir is not None:
            state_dir = os.path.normpath(os.path.join(file.folder, valid.state_dir))
        entry = child(root, "pagerduty") if root is not None else None
        resolved = self.resolve_pagerduty(file, entry, valid.pagerduty, pagerduty)
        source_set = valid.pagerduty is not None and valid.pagerduty.source is not None
        state = statecfg.resolve(valid.state, file, root, self.report, self.values.secrets,
                                 source_set=source_set)
        return valid.model_copy(update={"state_dir": state_dir, "state": state}), resolved

    def hostname(self) -> str:
        try:
            return socket.gethostname() or "localhost"
        except OSError:
            return "localhost"

    def default_state_dir(self) -> str:
        for candidate in (self.env.get("STATE_DIRECTORY") or "").split(":"):
            if candidate:
                return os.path.abspath(candidate)
        # Beside the config, not in the current directory: `status` from another folder, or
        # a second `run` started elsewhere, must find (and lock) the same state.
        return os.path.join(self.main_dir, ".pd-watchdog")

    # ------------------------------------------------------------------ pagerduty

    def resolve_pagerduty(self, file: SourceFile, entry: tuple[Node, Node] | None,
                          section: PagerDuty | None,
                          fallback: PagerDutySettings) -> PagerDutySettings:
        """The routing key read (from its file too), checked and noted as a secret."""
        if section is None or entry is None or not isinstance(entry[1], MappingNode):
            self.report.warnings.append(DRY_RUN_WARNING)
            return fallback
        key_pair = child(entry[1], "routing_key")
        file_pair = child(entry[1], "routing_key_file")
        key_node = key_pair[0] if key_pair else None
        file_node = file_pair[0] if file_pair else None
        routing_key = (section.routing_key or "").strip()
        literal = key_pair is not None and not (
            isinstance(key_pair[1], ScalarNode) and REF.search(key_pair[1].value))
        if section.routing_key_file is not None:
            routing_key = self.read_key_file(file, section.routing_key_file, file_node)
            literal = False
        if routing_key:
            self.values.secrets.add(routing_key)
            wrong = wrong_length(routing_key)  # a literal key was checked by the model
            if wrong:
                self.report.error(file, key_node or file_node, ("pagerduty", "routing_key"),
                                  wrong)
            elif literal and key_node is not None:
                self.check_key_permissions(file, key_node)
        else:
            self.report.warnings.append(DRY_RUN_WARNING)
        source = fallback.source if section.source is None else section.source
        return PagerDutySettings(routing_key=routing_key, api=section.api,
                                 url=section.url.rstrip("/"), source=source)

    def read_key_file(self, file: SourceFile, name: str, node: Node | None) -> str:
        path = ("pagerduty", "routing_key_file")
        full = os.path.join(file.folder, name)
        try:
            with open(full, "rb") as fh:
                data = fh.read(4096)
            key = data.decode("utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            if not self.need_key:
                return ""
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            self.report.error(file, node, path, f"cannot read {name}: {reason or exc} — check "
                              "the path (relative to this file) and that the runner may read it")
            return ""
        if not key:
            self.report.error(file, node, path, f"{name} is empty — put the routing key in it")
        return key

    def check_key_permissions(self, file: SourceFile, node: Node) -> None:
        try:
            mode = os.stat(file.path).st_mode
        except OSError:
            return
        if mode & 0o044:
            self.report.warn(file, node, ("pagerduty", "routing_key"),
                             f"routing key written literally in a file readable by group/others "
                             f"(mode {stat.S_IMODE(mode):04o}) — chmod 600 {file.display}, or "
                             "use ${PAGERDUTY_ROUTING_KEY} or routing_key_file")

    # ------------------------------------------------------------------ includes

    def checks_and_includes(self, file: SourceFile, sections: dict[str, tuple[Node, Node]],
                            chain: list[str], depth: int) -> None:
        """Checks and includes of one file, in the order the file lists them."""
        for key, (key_node, node) in sections.items():
            if key == "checks":
                self.read_checks(file, key_node, node)
            elif key == "include":
                self.read_includes(file, key_node, node, chain, depth)

    def read_includes(self, file: SourceFile, key_node: Node, node: Node, chain: list[str],
                      depth: int) -> None:
        try:
            raw = self.values.value(file, node, ("include",))
        except Abort:
            return
        if isinstance(raw, list) and isinstance(node, SequenceNode):
            entries = [(pattern, item, ("include", index))
                       for index, (pattern, item) in enumerate(zip(raw, node.value, strict=True))]
        elif self.validate(Includes, {"include": raw}, file, _holder(key_node, node)) is None:
            return
        else:
            entries = [] if raw is None else [(raw, node, ("include",))]
        for pattern, item, path in entries:  # in order: each item's errors where it stands
            if self.validate(IncludePattern, pattern, file, item, path) is None:
                continue
            full = os.path.join(file.folder, pattern)
            if _GLOB_CHARS.search(pattern):
                matches = sorted(p for p in glob.glob(full, recursive=True)
                                 if not os.path.isdir(p))
            elif os.path.exists(full):
                matches = [full]
            else:
                self.report.error(file, item, path, f"{pattern}: no such file — fix the path "
                                  "(relative to this file), or use a glob (conf.d/*.yaml) if it "
                                  "may be absent")
                continue
            for match in matches:
                self.include(file, item, path, os.path.abspath(match), chain, depth)

    def include(self, parent: SourceFile, node: Node, path: tuple, target: str,
                chain: list[str], depth: int) -> None:
        real = os.path.realpath(target)
        if real in chain:
            cycle = chain[chain.index(real):] + [real]
            names = " -> ".join(self.display_name(p) for p in cycle)
            self.report.error(parent, node, path, f"include cycle: {names} — remove one of "
                              "these includes")
            return
        if real in self.read_paths:
            return  # matched again through another glob: read once
        if depth + 1 > MAX_INCLUDE_DEPTH:
            self.report.error(parent, node, path, f"includes nested more than "
                              f"{MAX_INCLUDE_DEPTH} deep — flatten them")
            return
        file, root = self.open(target, parent, node, path)
        if file is None or root is None:
            return
        try:
            self.values.visit(file, root)
            sections = self.values.pairs(file, root, ())
        except Abort:
            return
        for key, (key_node, _) in sections.items():
            if key in MAIN_KEYS and key not in INCLUDED_KEYS:
                self.report.error(file, key_node, (key,), f"only checks and include are "
                                  f"allowed in an included file — move {key} to "
                                  f"{self.given_path}")
            elif key not in INCLUDED_KEYS:
                self.report.error(file, key_node, (key,), f"unknown key {key!r} — "
                                  f"{did_you_mean(key, INCLUDED_KEYS)}")
        self.checks_and_includes(file, sections, chain + [real], depth + 1)


def _holder(key_node: Node, node: Node) -> MappingNode:
    """A mapping of the one pair `include: ...`, to locate errors under it."""
    return MappingNode("tag:yaml.org,2002:map", [(key_node, node)], key_node.start_mark,
                       node.end_mark)


def _heartbeat(settings: Settings) -> Heartbeat | None:
    beat = settings.heartbeat
    if beat is None or not beat.url:
        return None  # e.g. url: ${HEARTBEAT_URL:-} left unset: heartbeat off
    return Heartbeat(url=beat.url, interval=beat.interval, timeout=beat.timeout)
