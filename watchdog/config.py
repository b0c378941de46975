"""Load, validate and normalise the YAML config into plain immutable objects.

Design points (each one is a user-visible promise, see docs/configuration.md):
  * safe YAML only, composed to a node tree so every error names file:line and key path;
  * unknown keys are errors ("did you mean ...?"): a typo must never silently disable a check;
  * ${VAR} / ${VAR:-default} expand inside string scalars after parsing, so the
    environment can't inject YAML structure; `!secret` marks values never to be logged;
  * every failure (bad YAML, binary file, alias bomb, probe rejecting options) ends in one
    ConfigError listing all problems, never a traceback;
  * linear in the number of checks: no per-check scans, no deep copies.
"""

from __future__ import annotations

import difflib
import gc
import glob
import hashlib
import json
import os
import re
import socket
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from watchdog import probes
from watchdog.durations import parse_duration
from watchdog.model import SEVERITIES, Check
from watchdog.probes.base import OptionError

__all__ = [
    "Config",
    "ConfigError",
    "Heartbeat",
    "PagerDutySettings",
    "default_incident_key",
    "load",
    "parse_duration",
]

MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_NESTING = 64  # levels of YAML collections; configs need < 10
MAX_INCLUDE_DEPTH = 32
MAX_ALIAS_WORK = 250_000  # nodes built again through aliases/merges, per file
MAX_ERRORS = 1000  # a file of 100,000 broken checks needs its first errors fixed, not all
MAX_NAME_CHARS = 200
MAX_INCIDENT_KEY_CHARS = 255
ROUTING_KEY_CHARS = 32
MIN_SECRET_CHARS = 4

DEFAULT_PD_URL = "https://events.pagerduty.com"
DRY_RUN_WARNING = "no routing key: running in dry-run, events are logged, not sent"

MAIN_KEYS = (
    "pagerduty", "state_dir", "workers", "heartbeat", "metrics", "defaults", "include", "checks",
)
INCLUDED_KEYS = ("checks", "include")
PAGERDUTY_KEYS = ("routing_key", "routing_key_file", "api", "url", "source")
HEARTBEAT_KEYS = ("url", "interval", "timeout")
METRICS_KEYS = ("listen",)
DEFAULT_KEYS = (
    "interval", "timeout", "fail_after", "recover_after", "retry_interval", "severity", "details",
)
CHECK_KEYS = ("name", *DEFAULT_KEYS, "incident_key")
BUILTIN_DEFAULTS: dict[str, Any] = {
    "interval": 30.0,
    "timeout": 10.0,
    "fail_after": 3,
    "recover_after": 2,
    "retry_interval": None,
    "severity": "critical",
    "details": {},
}

_TAG = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (_TAG + t for t in ("str", "int", "float", "bool", "null"))
_TIMESTAMP, _VALUE, _MERGE = (_TAG + t for t in ("timestamp", "value", "merge"))
_MAP, _SEQ = _TAG + "map", _TAG + "seq"
SECRET_TAG = "!secret"

_REF = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_REF_BODY = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:-)(.*))?", re.DOTALL)
_INT_TEXT = re.compile(r"[-+]?[0-9]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_URL = re.compile(r"https?://[^/\s?#]+(?:[/?#]\S*)?")
_GLOB_CHARS = re.compile(r"[*?\[]")
_SUBPATH = re.compile(r"\[(\d+)\]|([^.\[\]]+)")
_NO_VALUE = object()


class ConfigError(Exception):
    """The config can't be used. `errors` lists every problem found, one located line each."""

    def __init__(self, errors: list[str] | str):
        self.errors = [errors] if isinstance(errors, str) else list(errors)
        super().__init__("\n".join(self.errors))

    def __str__(self) -> str:
        return "\n".join(self.errors)


@dataclass(frozen=True)
class PagerDutySettings:
    """Where events go. routing_key "" means dry-run (events are logged, not sent)."""

    routing_key: str
    api: str
    url: str
    source: str


@dataclass(frozen=True)
class Heartbeat:
    """A dead-man's switch the runner pings every `interval` so someone notices it died."""

    url: str
    interval: float
    timeout: float


@dataclass(frozen=True)
class Config:
    """A fully validated config; `files` lists every file read, main first (absolute)."""

    path: str
    files: tuple[str, ...]
    pagerduty: PagerDutySettings
    state_dir: str
    checks: tuple[Check, ...]
    heartbeat: Heartbeat | None
    metrics_listen: tuple[str, int] | None
    workers: int
    secrets: frozenset[str]
    warnings: tuple[str, ...]

    @property
    def dry_run(self) -> bool:
        return self.pagerduty.routing_key == ""


def default_incident_key(source: str, name: str) -> str:
    """The incident key of a check that names none: stable across restarts and reorderings.

    Depends only on source and name, so renaming a check opens a new incident and a
    still-open old one must be resolved by whoever renamed it.
    """
    key = f"pd-watchdog/{source}/{name}"
    if len(key) <= MAX_INCIDENT_KEY_CHARS:
        return key
    digest = hashlib.sha256(f"{source}/{name}".encode("utf-8", "surrogatepass")).hexdigest()
    return "pd-watchdog/" + digest


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
    gc.disable()  # the node tree is many small objects; cyclic GC passes tripled load time
    try:
        return _Loader(path, env, need_key=need_key).run()
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
            data = yaml.load(file.read(MAX_FILE_BYTES), Loader=_YamlBase)
    except (OSError, yaml.YAMLError, ValueError):
        data = None
    value = data.get("state_dir") if isinstance(data, dict) else None
    if isinstance(value, str) and value and "\0" not in value:
        def expand(match: re.Match[str]) -> str:
            ref = _REF_BODY.fullmatch(match.group(1) or "")
            if match.group(0) == "$${" or ref is None:
                return "${"
            return env.get(ref.group(1)) or (ref.group(3) or "")
        return os.path.normpath(os.path.join(folder, _REF.sub(expand, value)))
    for candidate in (env.get("STATE_DIRECTORY") or "").split(":"):
        if candidate:
            return os.path.abspath(candidate)
    return os.path.join(folder, ".pd-watchdog")


# --------------------------------------------------------------------------- YAML layer

_YamlBase = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_C_LOADER = _YamlBase is not yaml.SafeLoader


class _NodeLoader(_YamlBase):  # type: ignore[misc, valid-type]
    """Safe loader used only to compose nodes; values are built by _Loader.value().

    resolve() is the stock implicit-tag resolution minus path resolvers (none are
    registered): same tags, a third of the cost, which matters at 10,000 checks.
    """

    _by_first: dict[str | None, list] | None = None

    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        pass

    def ascend_resolver(self) -> None:
        pass

    def resolve(self, kind: type, value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is ScalarNode:
            if implicit[0]:
                table = _NodeLoader._by_first
                if table is None:
                    everywhere = self.yaml_implicit_resolvers.get(None, [])
                    table = {first: resolvers + everywhere for first, resolvers
                             in self.yaml_implicit_resolvers.items() if first is not None}
                    table[None] = everywhere
                    _NodeLoader._by_first = table
                resolvers = table.get(value[:1])
                for tag, regexp in table[None] if resolvers is None else resolvers:
                    if regexp.match(value):
                        return tag
            return self.DEFAULT_SCALAR_TAG
        if kind is SequenceNode:
            return self.DEFAULT_SEQUENCE_TAG
        return self.DEFAULT_MAPPING_TAG


class _Abort(Exception):
    """Stop reading the current file (alias bomb); the error is already recorded."""


class _TooManyErrors(Exception):
    """Stop loading altogether: MAX_ERRORS are recorded."""


class _File:
    """One file being read: where it is, how to name it in messages, its node tree."""

    __slots__ = ("path", "display", "folder", "index", "seen", "alias_work", "aborted")

    def __init__(self, path: str, display: str, index: int):
        self.path = path
        self.display = display
        self.folder = os.path.dirname(path)
        self.index = index
        self.seen: set[int] = set()
        self.alias_work = 0
        self.aborted = False


def _line(node: Node) -> int:
    return node.start_mark.line + 1


def _fmt_path(path: tuple[Any, ...]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (int, float)):
        return "a number"
    return type(value).__name__


def _did_you_mean(key: str, allowed: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    return "allowed here: " + ", ".join(allowed)


class _Loader:
    """One load(): walks files and nodes, collects errors/warnings/secrets, builds Config."""

    def __init__(self, path: str, environ: Mapping[str, str], *, need_key: bool = True):
        self.need_key = need_key
        self.given_path = path
        self.main_path = os.path.abspath(path)
        self.main_dir = os.path.dirname(self.main_path)
        self.env = environ
        self.errors: list[tuple[int, int, int, str]] = []
        self.warnings: list[str] = []
        self.secrets: set[str] = set()
        self.files: list[str] = []
        self.read_paths: set[str] = set()
        self.checks: list[Check] = []
        self.names: dict[str, str] = {}
        self.incident_keys: dict[str, str] = {}
        self.slow_timeouts: list[str] = []
        self.kinds: Mapping[str, Any] = {}
        self.key_owner: dict[str, str] = {}
        self.check_keys: tuple[str, ...] = CHECK_KEYS
        self.defaults: dict[str, Any] = dict(BUILTIN_DEFAULTS)
        self.source = ""
        self.durations: dict[Any, float] = {}
        self.yaml_helper = _NodeLoader("")  # only its scalar constructors are used
        self.unset: set[tuple[int, tuple]] = set()  # (file, key path) of unset ${VAR}s

    # ------------------------------------------------------------------ messages

    def error(self, file: _File | None, node: Node | int | None, path: tuple, msg: str) -> None:
        if (file.index if file else -1, path) in self.unset:
            return  # its ${VAR} is unset: that one error says it all
        line = node if isinstance(node, int) else (_line(node) if node is not None else 0)
        where = file.display if file is not None else self.given_path
        if line:
            where += f":{line}"
        text = f"{where}: {_fmt_path(path)}: {msg}" if path else f"{where}: {msg}"
        self.errors.append((file.index if file else -1, line, len(self.errors), text))
        if len(self.errors) >= MAX_ERRORS:
            raise _TooManyErrors

    def warn(self, file: _File, node: Node | None, path: tuple, msg: str) -> None:
        where = file.display + (f":{_line(node)}" if node is not None else "")
        self.warnings.append(f"{where}: {_fmt_path(path)}: {msg}" if path else f"{where}: {msg}")

    # ------------------------------------------------------------------ top level

    def run(self) -> Config:
        try:
            return self.build()
        except _TooManyErrors:
            self.errors.sort()
            messages = [text for *_, text in self.errors]
            messages.append(f"{self.given_path}: stopped after {MAX_ERRORS} errors — fix these "
                            "and run again")
            raise ConfigError(messages) from None

    def build(self) -> Config:
        self.kinds = probes.KINDS
        for kind, module in self.kinds.items():
            for key in sorted(getattr(module, "KEYS", ()) or (kind,)):
                self.key_owner.setdefault(key, kind)
        self.key_owner.update({kind: kind for kind in self.kinds})
        self.check_keys = CHECK_KEYS + tuple(k for k in self.key_owner if k not in CHECK_KEYS)

        main = self.open(self.main_path, None, None, ())
        pagerduty = PagerDutySettings("", "v2", DEFAULT_PD_URL, self.hostname())
        state_dir = self.default_state_dir()
        heartbeat: Heartbeat | None = None
        metrics: tuple[str, int] | None = None
        workers = 64
        if main is not None:
            file, root = main
            try:
                sections = self.pairs(file, root, ()) if root is not None else {}
                self.unknown_keys(file, sections, MAIN_KEYS, (), "")
                pagerduty = self.pagerduty(file, sections.get("pagerduty"), pagerduty)
                self.source = pagerduty.source
                state_dir = self.state_dir(file, sections.get("state_dir"), state_dir)
                workers = self.workers(file, sections.get("workers"), workers)
                heartbeat = self.heartbeat(file, sections.get("heartbeat"))
                metrics = self.metrics(file, sections.get("metrics"))
                self.read_defaults(file, sections.get("defaults"))
                self.checks_and_includes(file, sections, [os.path.realpath(self.main_path)], 0)
            except _Abort:
                pass
            if not self.checks and not self.errors:
                self.warn(file, None, (), "no checks defined — add some under `checks:`")
        if self.errors:
            self.errors.sort()
            raise ConfigError([text for *_, text in self.errors])
        if self.slow_timeouts:  # one warning, not one per check: defaults often cause it
            names = ", ".join(self.slow_timeouts[:3])
            more = f" and {len(self.slow_timeouts) - 3} more" if len(self.slow_timeouts) > 3 else ""
            self.warnings.append(
                f"timeout is not shorter than interval for {names}{more}: a probe that hangs to "
                "its timeout skips its next run (counted as skipped) — make timeout shorter"
            )
        return Config(
            path=self.main_path,
            files=tuple(self.files),
            pagerduty=pagerduty,
            state_dir=state_dir,
            checks=tuple(self.checks),
            heartbeat=heartbeat,
            metrics_listen=metrics,
            workers=workers,
            secrets=frozenset(s for s in self.secrets if len(s) >= MIN_SECRET_CHARS),
            warnings=tuple(self.warnings),
        )

    def display_name(self, path: str) -> str:
        if path == self.main_path:
            return self.given_path
        rel = os.path.relpath(path, self.main_dir)
        return path if rel.startswith("..") else rel

    def open(
        self, path: str, parent: _File | None, where: Node | None, at: tuple
    ) -> tuple[_File, MappingNode | None] | None:
        """Read and compose one file; None (error recorded) when it can't be used."""
        file = _File(path, self.display_name(path), len(self.files))
        self.files.append(path)
        self.read_paths.add(os.path.realpath(path))
        data = self.read_bytes(file, parent, where, at)
        if data is None:
            return None
        if data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            self.error(file, line, (), f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
                       f"{exc.start}) — save the file as UTF-8")
            return None
        loader = _NodeLoader(text)
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            self.yaml_error(file, exc, text)
            return None
        except yaml.reader.ReaderError as exc:
            line = (data if _C_LOADER else text)[: exc.position].count(
                b"\n" if _C_LOADER else "\n") + 1
            char = exc.character
            shown = f"U+{char:04X}" if isinstance(char, int) else repr(char)
            self.error(file, line, (), f"not YAML text: character {shown} is not allowed "
                       f"({exc.reason}) — remove it, or write it as an escape in double quotes")
            return None
        except RecursionError:
            self.error(file, None, (), "YAML nested too deeply — flatten the structure")
            return None
        except (yaml.YAMLError, ValueError, MemoryError) as exc:
            self.error(file, None, (), f"could not parse YAML: {exc}")
            return None
        finally:
            loader.dispose()
        if root is None or (
            isinstance(root, ScalarNode) and root.tag == _NULL and root.value in ("", "~", "null")
        ):
            return file, None  # an empty file (e.g. everything commented out) defines nothing
        if not isinstance(root, MappingNode):
            kind = "a list" if isinstance(root, SequenceNode) else "a single value"
            self.error(file, root, (), f"the top level must be a mapping (key: value lines), "
                       f"not {kind} — see watchdog.example.yaml")
            return None
        return file, root

    def read_bytes(self, file: _File, parent: _File | None, where: Node | None,
                   at: tuple) -> bytes | None:
        def fail(msg: str) -> None:
            if parent is None:
                self.error(file, None, (), msg)
            else:
                self.error(parent, where, at, f"{file.display}: {msg}")

        try:
            info = os.stat(file.path)
            if stat.S_ISDIR(info.st_mode):
                fail("is a directory — name a YAML file (in include:, a glob like dir/*.yaml)")
                return None
            if info.st_size > MAX_FILE_BYTES:
                fail(f"is {info.st_size} bytes; config files are limited to 16 MB")
                return None
            with open(file.path, "rb") as fh:
                data = fh.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            fail(f"cannot read: {exc.strerror or exc} — check the path and permissions")
            return None
        if len(data) > MAX_FILE_BYTES:
            fail("is larger than 16 MB; config files are limited to 16 MB")
            return None
        nul = data.find(b"\0")
        if nul >= 0:
            fail(f"is binary or UTF-16, not a UTF-8 YAML file (NUL byte at offset {nul})")
            return None
        return data

    def yaml_error(self, file: _File, exc: yaml.MarkedYAMLError, text: str) -> None:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.problem:
            problem = f"{problem} ({exc.context}"
            if exc.context_mark is not None and exc.context_mark is not mark:
                problem += f" at line {exc.context_mark.line + 1}"
            problem += ")"
        where = file.display
        line = 0
        if mark is not None:
            line = mark.line + 1
            where += f":{line}:{mark.column + 1}"
        hint = " — check indentation, colons and quoting"
        if _is_tab(mark, text):
            problem = "a tab character where YAML expects spaces"
            hint = " — YAML indents with spaces only: replace the tab with spaces"
        elif "alias" in problem:
            hint = " — define the &anchor before using *alias"
        elif "single document" in problem:
            hint = " — keep one YAML document per file (remove the extra ---)"
        self.errors.append((file.index, line, len(self.errors),
                            f"{where}: YAML syntax error: {problem}{hint}"))

    # ------------------------------------------------------------------ nodes -> values

    def visit(self, file: _File, node: Node, weight: int = 1) -> None:
        """Account for building `node`; nodes built again through aliases are rationed."""
        if file.aborted:
            raise _Abort
        key = id(node)
        if key in file.seen:
            file.alias_work += weight
            if file.alias_work > MAX_ALIAS_WORK:
                self.error(file, node, (), "too many alias expansions (a YAML 'billion laughs'?)"
                           f" — more than {MAX_ALIAS_WORK} nodes built through *aliases; "
                           "write the values out or use fewer aliases")
                file.aborted = True
                raise _Abort
        else:
            file.seen.add(key)

    def pairs(self, file: _File, node: MappingNode, path: tuple, depth: int = 0
              ) -> dict[str, tuple[Node, Node]]:
        """key -> (key node, value node) of a mapping, `<<` merges applied, duplicates refused."""
        if depth > MAX_NESTING:
            self.error(file, node, path, f"`<<` merges nested more than {MAX_NESTING} deep")
            return {}
        out: dict[str, tuple[Node, Node]] = {}
        merges: list[Node] = []
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self.error(file, key_node, path, "keys must be plain strings, not lists or "
                           "mappings — check for a stray '?' or braces")
                continue
            if key_node.tag == _MERGE:
                merges.append(value_node)
                continue
            key = key_node.value
            if key in out:
                self.error(file, key_node, path + (key,), f"duplicate key (first at line "
                           f"{_line(out[key][0])}) — remove one; YAML would silently keep "
                           "only the last")
                continue
            out[key] = (key_node, value_node)
        for merge in merges:
            sources = merge.value if isinstance(merge, SequenceNode) else [merge]
            for source in sources:
                if not isinstance(source, MappingNode):
                    self.error(file, source, path, "`<<` merges only mappings (or a list of "
                               "*aliases to mappings)")
                    continue
                self.visit(file, source, len(source.value) + 1)
                for key, pair in self.pairs(file, source, path, depth + 1).items():
                    out.setdefault(key, pair)
        return out

    def unknown_keys(self, file: _File, pairs: dict[str, tuple[Node, Node]],
                     allowed: tuple[str, ...], path: tuple, note: str) -> None:
        for key, (key_node, _) in pairs.items():
            if key not in allowed:
                self.error(file, key_node, path + (key,),
                           f"unknown key {key!r}{note} — {_did_you_mean(key, allowed)}")

    def value(self, file: _File, node: Node, path: tuple, depth: int = 0,
              active: set[int] | None = None) -> Any:
        """Plain Python value of a node: env expanded, secrets noted, tags checked."""
        self.visit(file, node)
        if isinstance(node, ScalarNode):
            return self.scalar(file, node, path)
        if depth >= MAX_NESTING:
            self.error(file, node, path, f"nested more than {MAX_NESTING} levels deep")
            return None
        if active is None:
            active = set()
        if id(node) in active:
            self.error(file, node, path, "recursive alias (a value that contains itself)")
            return None
        if node.tag == SECRET_TAG:
            self.error(file, node, path, "!secret marks one string value, not a list or "
                       "mapping — tag each secret value")
            return None
        active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                if node.tag != _SEQ:
                    self.error(file, node, path, f"unsupported tag {node.tag} — remove it")
                return [self.value(file, item, path + (i,), depth + 1, active)
                        for i, item in enumerate(node.value)]
            if node.tag != _MAP:
                self.error(file, node, path, f"unsupported tag {node.tag} — remove it")
            return {key: self.value(file, value_node, path + (key,), depth + 1, active)
                    for key, (_, value_node) in self.pairs(file, node, path).items()}
        finally:
            active.discard(id(node))

    def scalar(self, file: _File, node: ScalarNode, path: tuple) -> Any:
        tag = node.tag
        text = node.value
        if tag == _STR:
            if "${" not in text:
                return text
            return self.expand(file, node, path, text)[0]
        if tag == SECRET_TAG:
            value, substituted = self.expand(file, node, path, text)
            self.secrets.add(value)
            self.secrets.update(substituted or ())
            return value
        if tag == _INT and text.isascii() and text.isdigit() and (text[0] != "0" or text == "0"):
            return int(text)  # the common case, without YAML 1.1's octal/sexagesimal rules
        if tag in (_INT, _FLOAT, _BOOL, _NULL):
            try:
                helper = self.yaml_helper
                return helper.yaml_constructors[tag](helper, node)
            except (ValueError, ArithmeticError, yaml.YAMLError):
                self.error(file, node, path, f"{text!r} is not a valid {tag.rsplit(':', 1)[1]}")
                return None
        if tag in (_TIMESTAMP, _VALUE):
            return text  # kept as written: a config date is a string, not a datetime
        if tag.startswith("!"):
            hint = "only !secret is supported"
        else:
            hint = "remove the tag; only plain values, !secret, lists and mappings are supported"
        self.error(file, node, path, f"unsupported tag {tag} — {hint}")
        return None

    def expand(self, file: _File, node: Node, path: tuple, text: str
               ) -> tuple[str, list[str] | None]:
        """Expand ${VAR}, ${VAR:-default}, $${; return (value, substituted values or None)."""
        if "${" not in text:
            return text, None
        substituted: list[str] = []

        def replace(match: re.Match[str]) -> str:
            whole = match.group(0)
            if whole == "$${":
                return "${"
            body = match.group(1)
            if body is None:
                self.error(file, node, path, "unterminated ${ — close it with }, or write $${ "
                           "for a literal ${")
                return ""
            ref = _REF_BODY.fullmatch(body)
            if ref is None:
                self.error(file, node, path, f"bad reference ${{{body}}} — write ${{NAME}} or "
                           "${NAME:-default} (NAME: letters, digits, _), or $${ for a literal ${")
                return ""
            name, has_default, default = ref.groups()
            found = self.env.get(name)
            if has_default and not found:
                substituted.append(default)
                return default
            if found is None and not self.need_key and path[:1] == ("pagerduty",):
                return ""
            if found is None:
                self.error(file, node, path, f"environment variable {name} is not set — "
                           f"export it, or write ${{{name}:-default}} (${{{name}:-}} allows empty)")
                self.unset.add((file.index, path))
                return ""
            substituted.append(found)
            return found

        value = _REF.sub(replace, text)
        return value, substituted

    # ------------------------------------------------------------------ sections

    def section(self, file: _File, entry: tuple[Node, Node] | None, name: str,
                allowed: tuple[str, ...]) -> dict[str, tuple[Node, Node]] | None:
        """The pairs of a top-level mapping section; None when absent/null/invalid."""
        if entry is None:
            return None
        key_node, node = entry
        self.visit(file, node)
        if isinstance(node, ScalarNode) and node.tag == _NULL:
            return None
        if not isinstance(node, MappingNode):
            self.error(file, key_node, (name,), f"must be a mapping ({', '.join(allowed)})")
            return None
        pairs = self.pairs(file, node, (name,))
        self.unknown_keys(file, pairs, allowed, (name,), "")
        return pairs

    def field(self, file: _File, pairs: dict[str, tuple[Node, Node]] | None, key: str,
              path: tuple) -> tuple[Any, Node | None]:
        """(value, key node) of `key` in a section, or (_NO_VALUE, None) when absent."""
        if not pairs or key not in pairs:
            return _NO_VALUE, None
        key_node, node = pairs[key]
        return self.value(file, node, path + (key,)), key_node

    def string(self, file: _File, value: Any, node: Node | None, path: tuple) -> str | None:
        if isinstance(value, str):
            return value
        self.error(file, node, path, f"must be a string, not {_type_name(value)} — quote it")
        return None

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

    def pagerduty(self, file: _File, entry: tuple[Node, Node] | None,
                  fallback: PagerDutySettings) -> PagerDutySettings:
        pairs = self.section(file, entry, "pagerduty", PAGERDUTY_KEYS)
        path = ("pagerduty",)
        key, key_node = self.field(file, pairs, "routing_key", path)
        key_literal = not self.uses_refs(pairs, "routing_key")
        key_file, file_node = self.field(file, pairs, "routing_key_file", path)
        routing_key = ""
        if key is not _NO_VALUE and key is not None:
            routing_key = self.string(file, key, key_node, path + ("routing_key",)) or ""
            routing_key = routing_key.strip()
        if key_file is not _NO_VALUE and key_file is not None:
            if key is not _NO_VALUE and key is not None:
                self.error(file, file_node, path + ("routing_key_file",), "both routing_key and "
                           "routing_key_file are set — keep only one")
            else:
                routing_key = self.read_key_file(file, key_file, file_node)
                key_literal = False
        if routing_key:
            self.secrets.add(routing_key)
            if len(routing_key) != ROUTING_KEY_CHARS:
                shown = routing_key[-min(4, len(routing_key) // 3):] if len(routing_key) >= 3 \
                    else ""
                ending = f", ending in ...{shown}" if shown else ""
                where = file_node if key_node is None else key_node
                self.error(file, where, path + ("routing_key",),
                           f"must be {ROUTING_KEY_CHARS} characters (got {len(routing_key)}"
                           f"{ending}) — copy the Integration Key of the service's Events API "
                           "integration")
            elif key_literal and key_node is not None:
                self.check_key_permissions(file, key_node)
        else:
            self.warnings.append(DRY_RUN_WARNING)
        api, node = self.field(file, pairs, "api", path)
        if api is _NO_VALUE:
            api = fallback.api
        elif api not in ("v2", "v1"):
            self.error(file, node, path + ("api",), f"must be v2 or v1, not {api!r} — v2 is "
                       "the Events API v2 (routing key); v1 a Generic API service key")
            api = fallback.api
        url, node = self.field(file, pairs, "url", path)
        if url is _NO_VALUE:
            url = fallback.url
        elif not isinstance(url, str) or not _URL.fullmatch(url):
            self.error(file, node, path + ("url",), f"must be an http(s) base URL, not {url!r}"
                       f" — e.g. {DEFAULT_PD_URL} (EU: https://events.eu.pagerduty.com)")
            url = fallback.url
        url = url.rstrip("/")
        source, node = self.field(file, pairs, "source", path)
        if source is _NO_VALUE:
            source = fallback.source
        elif not isinstance(source, str) or not source or _CONTROL.search(source) \
                or len(source) > 255:
            self.error(file, node, path + ("source",), "must be a non-empty string of at most "
                       "255 characters without control characters (default: the hostname)")
            source = fallback.source
        return PagerDutySettings(routing_key=routing_key, api=api, url=url, source=source)

    def uses_refs(self, pairs: dict[str, tuple[Node, Node]] | None, key: str) -> bool:
        if not pairs or key not in pairs:
            return False
        node = pairs[key][1]
        return isinstance(node, ScalarNode) and bool(_REF.search(node.value))

    def read_key_file(self, file: _File, value: Any, node: Node | None) -> str:
        path = ("pagerduty", "routing_key_file")
        name = self.string(file, value, node, path)
        if not name:
            if name == "":
                self.error(file, node, path, "must not be empty")
            return ""
        full = os.path.join(file.folder, name)
        try:
            with open(full, "rb") as fh:
                data = fh.read(4096)
            key = data.decode("utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            if not self.need_key:
                return ""
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            self.error(file, node, path, f"cannot read {name}: {reason or exc} — check the "
                       "path (relative to this file) and that the runner may read it")
            return ""
        if not key:
            self.error(file, node, path, f"{name} is empty — put the routing key in it")
        return key

    def check_key_permissions(self, file: _File, node: Node) -> None:
        try:
            mode = os.stat(file.path).st_mode
        except OSError:
            return
        if mode & 0o044:
            self.warn(file, node, ("pagerduty", "routing_key"),
                      f"routing key written literally in a file readable by group/others "
                      f"(mode {stat.S_IMODE(mode):04o}) — chmod 600 {file.display}, or use "
                      "${PAGERDUTY_ROUTING_KEY} or routing_key_file")

    def state_dir(self, file: _File, entry: tuple[Node, Node] | None, fallback: str) -> str:
        if entry is None:
            return fallback
        key_node, node = entry
        value = self.value(file, node, ("state_dir",))
        if value is None:
            return fallback
        if not isinstance(value, str) or not value or "\0" in value:
            self.error(file, key_node, ("state_dir",), "must be a folder path (string)")
            return fallback
        return os.path.normpath(os.path.join(file.folder, value))

    def workers(self, file: _File, entry: tuple[Node, Node] | None, fallback: int) -> int:
        if entry is None:
            return fallback
        key_node, node = entry
        value = _int_value(self.value(file, node, ("workers",)), node)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1024:
            self.error(file, key_node, ("workers",), f"must be an integer 1..1024, not {value!r}"
                       " — it is the size of the probe worker pool")
            return fallback
        return value

    def duration(self, file: _File, value: Any, node: Node | None, path: tuple) -> float | None:
        cache_key = (type(value), value) if isinstance(value, (str, int, float)) else None
        seconds = self.durations.get(cache_key)  # 10,000 checks say "30s" 10,000 times
        if seconds is not None:
            return seconds
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            self.error(file, node, path, str(exc))
            return None
        if cache_key is not None:
            self.durations[cache_key] = seconds
        return seconds

    def heartbeat(self, file: _File, entry: tuple[Node, Node] | None) -> Heartbeat | None:
        pairs = self.section(file, entry, "heartbeat", HEARTBEAT_KEYS)
        if pairs is None:
            return None
        path = ("heartbeat",)
        url, node = self.field(file, pairs, "url", path)
        if url is _NO_VALUE:
            self.error(file, entry[0] if entry else None, path, "url is required — the URL to "
                       "ping, e.g. https://hc-ping.com/<uuid>")
            return None
        if url == "" or url is None:
            return None  # e.g. url: ${HEARTBEAT_URL:-} left unset: heartbeat off
        if not isinstance(url, str) or not _URL.fullmatch(url):
            self.error(file, node, path + ("url",), f"must be an http(s) URL, not {url!r}")
            return None
        durations = {"interval": 60.0, "timeout": 10.0}
        for key in durations:
            value, node = self.field(file, pairs, key, path)
            if value is not _NO_VALUE:
                seconds = self.duration(file, value, node, path + (key,))
                if seconds is not None:
                    durations[key] = seconds
        return Heartbeat(url=url, interval=durations["interval"], timeout=durations["timeout"])

    def metrics(self, file: _File, entry: tuple[Node, Node] | None) -> tuple[str, int] | None:
        pairs = self.section(file, entry, "metrics", METRICS_KEYS)
        if pairs is None:
            return None
        value, node = self.field(file, pairs, "listen", ("metrics",))
        if value is _NO_VALUE or value is None:
            self.error(file, entry[0] if entry else None, ("metrics",), "listen is required — "
                       'e.g. listen: "127.0.0.1:9108" (or remove metrics:)')
            return None
        listen = _parse_listen(value)
        if listen is None:
            self.error(file, node, ("metrics", "listen"), f"bad address {value!r} — write a "
                       'port (9108), "host:port" ("0.0.0.0:9108") or "[::1]:9108"')
        return listen

    # ------------------------------------------------------------------ check settings

    def read_defaults(self, file: _File, entry: tuple[Node, Node] | None) -> None:
        if entry is None:
            return
        key_node, node = entry
        self.visit(file, node)
        if isinstance(node, ScalarNode) and node.tag == _NULL:
            return
        if not isinstance(node, MappingNode):
            self.error(file, key_node, ("defaults",), "must be a mapping of check settings ("
                       + ", ".join(DEFAULT_KEYS) + ")")
            return
        pairs = self.pairs(file, node, ("defaults",))
        for key, (knode, _) in pairs.items():
            if key not in DEFAULT_KEYS:
                note = " (it is per check, not a default)" if key in self.check_keys else ""
                self.error(file, knode, ("defaults", key), f"unknown key {key!r}{note} — "
                           f"{_did_you_mean(key, DEFAULT_KEYS)}")
        for key in DEFAULT_KEYS:
            if key in pairs:
                knode, vnode = pairs[key]
                raw = self.value(file, vnode, ("defaults", key))
                setting = self.setting(file, key, raw, knode, ("defaults", key), vnode)
                if setting is not _NO_VALUE:
                    self.defaults[key] = setting

    def setting(self, file: _File, key: str, value: Any, node: Node | None,
                path: tuple, value_node: Node | None = None) -> Any:
        """A validated per-check setting, or _NO_VALUE (error recorded)."""
        if key in ("interval", "timeout", "retry_interval"):
            if key == "retry_interval" and value is None:
                return None  # explicit null switches off a defaults.retry_interval
            seconds = self.duration(file, value, node, path)
            return _NO_VALUE if seconds is None else seconds
        if key in ("fail_after", "recover_after"):
            value = _int_value(value, value_node)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10**6:
                self.error(file, node, path, f"must be an integer >= 1, not {value!r} — the "
                           "number of consecutive results needed")
                return _NO_VALUE
            return value
        if key == "severity":
            if value not in SEVERITIES:
                self.error(file, node, path, f"must be one of {', '.join(SEVERITIES)}, not "
                           f"{value!r}")
                return _NO_VALUE
            return value
        if key == "details":
            if value is None:
                return {}
            if not isinstance(value, dict):
                self.error(file, node, path, f"must be a mapping (key: value), not "
                           f"{_type_name(value)} — e.g. {{runbook: https://...}}")
                return _NO_VALUE
            return value
        raise AssertionError(key)

    # ------------------------------------------------------------------ checks & includes

    def checks_and_includes(self, file: _File, sections: dict[str, tuple[Node, Node]],
                            chain: list[str], depth: int) -> None:
        """Checks and includes of one file, in the order the file lists them."""
        for key, (key_node, node) in sections.items():
            if key == "checks":
                self.read_checks(file, key_node, node)
            elif key == "include":
                self.read_includes(file, key_node, node, chain, depth)

    def read_checks(self, file: _File, key_node: Node, node: Node) -> None:
        try:
            self.visit(file, node)
            if isinstance(node, ScalarNode) and node.tag == _NULL:
                return
            if not isinstance(node, SequenceNode):
                self.error(file, key_node, ("checks",), "must be a list of checks (each item "
                           "starts with '- name: ...')")
                return
            for index, item in enumerate(node.value):
                self.read_check(file, item, index)
        except _Abort:
            return

    def read_includes(self, file: _File, key_node: Node, node: Node, chain: list[str],
                      depth: int) -> None:
        try:
            patterns = self.value(file, node, ("include",))
        except _Abort:
            return
        if patterns is None:
            return
        if isinstance(patterns, str):
            patterns = [patterns]
            items: list[Node] = [node]
        elif isinstance(patterns, list) and isinstance(node, SequenceNode):
            items = list(node.value)
        else:
            self.error(file, key_node, ("include",), "must be a list of file paths or globs, "
                       "e.g. [checks/*.yaml] (relative to this file)")
            return
        for index, (pattern, item) in enumerate(zip(patterns, items, strict=True)):
            path = ("include", index) if isinstance(node, SequenceNode) else ("include",)
            if not isinstance(pattern, str) or not pattern or "\0" in pattern:
                self.error(file, item, path, "must be a file path or glob (string)")
                continue
            full = os.path.join(file.folder, pattern)
            if _GLOB_CHARS.search(pattern):
                matches = sorted(p for p in glob.glob(full, recursive=True)
                                 if not os.path.isdir(p))
            elif os.path.exists(full):
                matches = [full]
            else:
                self.error(file, item, path, f"{pattern}: no such file — fix the path "
                           "(relative to this file), or use a glob (conf.d/*.yaml) if it may "
                           "be absent")
                continue
            for match in matches:
                self.include(file, item, path, os.path.abspath(match), chain, depth)

    def include(self, parent: _File, node: Node, path: tuple, target: str, chain: list[str],
                depth: int) -> None:
        real = os.path.realpath(target)
        if real in chain:
            cycle = chain[chain.index(real):] + [real]
            names = " -> ".join(self.display_name(p) for p in cycle)
            self.error(parent, node, path, f"include cycle: {names} — remove one of these "
                       "includes")
            return
        if real in self.read_paths:
            return  # matched again through another glob: read once
        if depth + 1 > MAX_INCLUDE_DEPTH:
            self.error(parent, node, path, f"includes nested more than {MAX_INCLUDE_DEPTH} "
                       "deep — flatten them")
            return
        opened = self.open(target, parent, node, path)
        if opened is None or opened[1] is None:
            return
        file, root = opened
        try:
            self.visit(file, root)
            sections = self.pairs(file, root, ())
        except _Abort:
            return
        for key, (key_node, _) in sections.items():
            if key in MAIN_KEYS and key not in INCLUDED_KEYS:
                self.error(file, key_node, (key,), f"only checks and include are allowed in an "
                           f"included file — move {key} to {self.given_path}")
            elif key not in INCLUDED_KEYS:
                self.error(file, key_node, (key,), f"unknown key {key!r} — "
                           f"{_did_you_mean(key, INCLUDED_KEYS)}")
        self.checks_and_includes(file, sections, chain + [real], depth + 1)

    def read_check(self, file: _File, node: Node, index: int) -> None:
        path: tuple = ("checks", index)
        self.visit(file, node)
        if not isinstance(node, MappingNode):
            self.error(file, node, path, "each check must be a mapping with a name and a probe "
                       f"kind ({' or '.join(k + ':' for k in self.kinds)})")
            return
        pairs = self.pairs(file, node, path)
        values: dict[str, Any] = {}
        for key, (key_node, value_node) in pairs.items():
            if key not in self.key_owner and key not in CHECK_KEYS:
                self.error(file, key_node, path + (key,), f"unknown key {key!r} — "
                           f"{_did_you_mean(key, self.check_keys)}")
                continue
            values[key] = self.value(file, value_node, path + (key,))
        ok = True

        name = values.get("name", _NO_VALUE)
        name_node = pairs["name"][0] if "name" in pairs else node
        if name is _NO_VALUE:
            self.error(file, node, path, "missing name — every check needs a unique name")
            ok = False
        elif not isinstance(name, str) or not name:
            self.error(file, name_node, path + ("name",), "must be a non-empty string "
                       f"(quote it if it looks like a number), not {name!r}")
            ok = False
        elif len(name) > MAX_NAME_CHARS or _CONTROL.search(name):
            self.error(file, name_node, path + ("name",), f"must be at most {MAX_NAME_CHARS} "
                       "characters, without control characters")
            ok = False
        elif name in self.names:
            self.error(file, name_node, path + ("name",), f"duplicate check name {name!r} — "
                       f"also defined at {self.names[name]}; names must be unique across all "
                       "files")
            ok = False
        else:
            self.names[name] = f"{file.display}:{_line(node)}"

        present = [k for k in self.kinds if k in pairs]
        kind = present[0] if len(present) == 1 else None
        if not present:
            loose = [k for k in pairs if k in self.key_owner]
            hint = f" ({loose[0]!r} belongs to {self.key_owner[loose[0]]}:)" if loose else ""
            self.error(file, node, path, "no probe kind: add one of "
                       f"{', '.join(k + ':' for k in self.kinds)}{hint}")
            ok = False
        elif len(present) > 1:
            self.error(file, pairs[present[1]][0], path + (present[1],), "a check has exactly "
                       f"one probe kind, this one has {' and '.join(present)} — split it into "
                       "two checks")
            ok = False
        else:
            for key in pairs:
                owner = self.key_owner.get(key)
                if owner is not None and owner != kind:
                    self.error(file, pairs[key][0], path + (key,), f"{key!r} belongs to the "
                               f"{owner} probe kind, this check is {kind}")
                    ok = False

        settings = dict(self.defaults)
        for key in DEFAULT_KEYS:
            if key in values:
                key_node, value_node = pairs[key]
                setting = self.setting(file, key, values[key], key_node, path + (key,),
                                       value_node)
                if setting is _NO_VALUE:
                    ok = False
                elif key == "details":
                    settings[key] = {**self.defaults["details"], **setting}
                else:
                    settings[key] = setting

        incident_key = values.get("incident_key", _NO_VALUE)
        if incident_key is not _NO_VALUE and (
            not isinstance(incident_key, str)
            or not 1 <= len(incident_key) <= MAX_INCIDENT_KEY_CHARS
        ):
            self.error(file, pairs["incident_key"][0], path + ("incident_key",), "must be a "
                       f"string of 1..{MAX_INCIDENT_KEY_CHARS} characters (or leave it out for "
                       "the default pd-watchdog/<source>/<name>)")
            ok = False

        if kind is None:
            return
        module = self.kinds[kind]
        options = {k: values[k] for k in module.KEYS if k in values}
        if ok:  # fingerprint before parse(): a probe may consume its options dict
            if incident_key is _NO_VALUE:
                incident_key = default_incident_key(self.source, name)
            definition = {
                "name": name,
                "kind": kind,
                "options": options,
                "base_dir": file.folder,
                "source": self.source,
                "incident_key": incident_key,
                **settings,
            }
            canonical = json.dumps(definition, sort_keys=True, separators=(",", ":"),
                                   default=repr)
            fingerprint = hashlib.sha256(canonical.encode()).hexdigest()
        try:
            probe = module.parse(options, file.folder)
        except OptionError as exc:
            for subpath, message in exc.problems or [(kind, str(exc) or "invalid options")]:
                parts = _split_subpath(str(subpath))
                self.error(file, _locate(node, parts), path + tuple(parts), str(message))
            return
        except Exception as exc:  # a probe module bug must not become a traceback
            self.error(file, pairs[kind][0], path + (kind,), f"the {kind} probe could not "
                       f"read these options: {type(exc).__name__}: {exc}")
            return
        if not ok:
            return
        if "incident_key" in values:
            other = self.incident_keys.setdefault(incident_key, name)
            if other != name:
                self.warn(file, pairs["incident_key"][0], path + ("incident_key",),
                          f"check {other!r} uses the same incident key — one check passing "
                          "resolves the other's incident")
        if settings["timeout"] >= settings["interval"]:
            self.slow_timeouts.append(f"{name} ({file.display}:{_line(node)})")
        self.checks.append(Check(
            name=name,
            kind=kind,
            probe=probe,
            interval=settings["interval"],
            timeout=settings["timeout"],
            fail_after=settings["fail_after"],
            recover_after=settings["recover_after"],
            retry_interval=settings["retry_interval"],
            severity=settings["severity"],
            incident_key=incident_key,
            details=dict(settings["details"]),
            source=self.source,
            fingerprint=fingerprint,
            origin=f"{file.display}:{_line(node)}",
        ))


def _is_tab(mark: yaml.Mark | None, text: str) -> bool:
    """Whether the error points at a tab (libyaml's marks carry no buffer: use the text)."""
    if mark is None:
        return False
    lines = text.split("\n")
    return mark.line < len(lines) and lines[mark.line][mark.column:mark.column + 1] == "\t"


def _int_value(value: Any, node: Node | None) -> Any:
    """An int as written, or the digits a ${VAR} expanded to (expansions are strings)."""
    if (
        isinstance(value, str)
        and isinstance(node, ScalarNode)
        and "${" in node.value
        and _INT_TEXT.fullmatch(value.strip())
    ):
        return int(value)
    return value


def _parse_listen(value: Any) -> tuple[str, int] | None:
    """("host", port) from 9108, "9108", "host:9108" or "[::1]:9108"."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        host, port_text = "127.0.0.1", str(value)
    elif isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            host, port_text = "127.0.0.1", text
        elif text.startswith("["):
            match = re.fullmatch(r"\[([0-9A-Fa-f:.%\w]+)\]:(\d+)", text)
            if match is None:
                return None
            host, port_text = match.groups()
        else:
            host, sep, port_text = text.rpartition(":")
            if not sep or not host or ":" in host or _CONTROL.search(host) or " " in host:
                return None
    else:
        return None
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        return None
    return host, int(port_text)


def _split_subpath(subpath: str) -> list[Any]:
    """"http.headers[0].name" -> ["http", "headers", 0, "name"]."""
    return [int(index) if index else key for index, key in _SUBPATH.findall(subpath)]


def _locate(node: Node, parts: list[Any]) -> int:
    """Line of the deepest node `parts` reaches from `node` (the nearest parent if missing)."""
    line = _line(node)
    current = node
    for part in parts:
        found: tuple[Node, Node] | None = None
        if isinstance(current, MappingNode) and isinstance(part, str):
            candidates = list(current.value)
            for key_node, value_node in current.value:  # one level of `<<` merges
                if isinstance(key_node, ScalarNode) and key_node.tag == _MERGE:
                    sources = (value_node.value if isinstance(value_node, SequenceNode)
                               else [value_node])
                    candidates += [pair for source in sources if isinstance(source, MappingNode)
                                   for pair in source.value]
            for key_node, value_node in candidates:
                if isinstance(key_node, ScalarNode) and key_node.value == part:
                    found = (key_node, value_node)
                    break
        elif isinstance(current, SequenceNode) and isinstance(part, int) \
                and 0 <= part < len(current.value):
            item = current.value[part]
            found = (item, item)
        if found is None:
            break
        line = _line(found[0])
        current = found[1]
    return line

