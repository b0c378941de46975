"""Checks: each item of a `checks:` list becomes a Check, or located errors.

A check's keys are CheckFields (name, settings, incident_key) plus the keys of exactly one
probe kind; the kind's module validates its keys (`Options`) and builds the probe.
"""

from __future__ import annotations

import functools
import hashlib
import json
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError, create_model
from yaml.nodes import MappingNode, Node, SequenceNode

from watchdog.config import remediation
from watchdog.config.errors import did_you_mean
from watchdog.config.fields import Section, validate, validate_sections
from watchdog.config.holds import dependency_problems
from watchdog.config.models import CheckFields, CheckSettings, Name
from watchdog.config.page import PAGE_KEYS, build_page
from watchdog.config.report import SourceFile, line_of
from watchdog.config.result import default_incident_key
from watchdog.config.values import Abort
from watchdog.config.yamlfile import locate
from watchdog.flapping import Flapping
from watchdog.model import Check
from watchdog.probes.base import OptionError

CHECK_KEYS = tuple(field.alias or name for name, field in CheckFields.model_fields.items())
BUILTIN_DEFAULTS: dict[str, Any] = {
    key: ({} if key == "details" else field.default)
    for key, field in CheckSettings.model_fields.items()
}
_LATER_DEFAULTS = {"repeat_interval": 4 * 3600.0, "flapping": None, "diagnose": None,
                   "remediate": None}
# the settings a fingerprint covers, read as one tuple (kept until the fingerprint is made:
# a tuple, not the check's whole settings dict, ~1 KB a check)
_FINGERPRINTED_KEYS = tuple(key for key in BUILTIN_DEFAULTS if key not in PAGE_KEYS)
_FINGERPRINTED = operator.itemgetter(*_FINGERPRINTED_KEYS)
_SUBPATH = re.compile(r"\[(\d+)\]|([^.\[\]]+)")
# json.dumps(sort_keys=True, separators=(",", ":"), default=repr), made once: fingerprints
# must stay byte-for-byte what they were (the store compares them across versions)
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=repr)


class CheckReader:
    """The part of a load that reads checks; the Loader provides files and values."""

    def __init__(self, kinds: Mapping[str, Any]):
        self.kinds = kinds
        self.key_owner: dict[str, str] = {}
        for kind, module in kinds.items():
            for key in sorted(getattr(module, "KEYS", ()) or (kind,)):
                self.key_owner.setdefault(key, kind)
        self.key_owner.update({kind: kind for kind in kinds})
        self.check_keys = CHECK_KEYS + tuple(k for k in self.key_owner if k not in CHECK_KEYS)
        self.defaults: dict[str, Any] = dict(BUILTIN_DEFAULTS)
        self.source = ""
        self.key_source = ""  # what default incident keys and fingerprints are made of
        self.host = ""
        self.checks: list[Check] = []
        self.names: dict[str, str] = {}
        self.incident_keys: dict[str, str] = {}
        self.slow_timeouts: list[str] = []
        self.dependencies: dict[str, tuple[SourceFile, Node, tuple, tuple[str, ...]]] = {}

    def defaults_note(self, loc: tuple) -> str:
        """A word for an unknown key under `defaults:` that a check could have."""
        if loc[:1] == ("defaults",) and loc[-1] in self.check_keys:
            return " (it is per check, not a default)"
        return ""

    def read_defaults(self, defaults: CheckSettings | None) -> None:
        """The validated `defaults:` over the models' own defaults (what it sets only)."""
        if defaults is not None:
            for key in defaults.model_fields_set:
                self.defaults[key] = _setting(key, getattr(defaults, key))

    def warn_slow_timeouts(self) -> None:
        if self.slow_timeouts:  # one warning, not one per check: defaults often cause it
            names = ", ".join(self.slow_timeouts[:3])
            count = len(self.slow_timeouts)
            more = f" and {count - 3} more" if count > 3 else ""
            self.report.warnings.append(
                f"timeout is not shorter than interval for {names}{more}: a probe that hangs to "
                "its timeout skips its next run (counted as skipped) — make timeout shorter"
            )

    def read_checks(self, file: SourceFile, key_node: Node, node: Node) -> None:
        try:
            self.values.visit(file, node)
            if self.values.is_null(node):
                return
            if not isinstance(node, SequenceNode):
                self.report.error(file, key_node, ("checks",), "must be a list of checks (each "
                                  "item starts with '- name: ...')")
                return
            for index, item in enumerate(node.value):
                self.read_check(file, item, index)
        except Abort:
            return

    def read_check(self, file: SourceFile, node: Node, index: int) -> None:
        """One item of `checks:`: its keys routed to CheckFields or its kind's Options, both
        validated (every error recorded), the probe built, the Check added."""
        path: tuple = ("checks", index)
        self.values.visit(file, node)
        if not isinstance(node, MappingNode):
            self.report.error(file, node, path, "each check must be a mapping with a name and "
                              f"a probe kind ({' or '.join(k + ':' for k in self.kinds)})")
            return
        pairs = self.values.pairs(file, node, path)
        values: dict[str, Any] = {}
        for key, (key_node, value_node) in pairs.items():
            if key not in self.key_owner and key not in CHECK_KEYS:
                self.report.error(file, key_node, path + (key,), f"unknown key {key!r} — "
                                  f"{did_you_mean(key, self.check_keys)}")
                continue
            values[key] = self.values.value(file, value_node, path + (key,))
        kind, kind_ok = self.kind_of(file, node, pairs, path)
        common = {key: value for key, value in values.items() if key in CHECK_KEYS}
        module = self.kinds[kind] if kind is not None else None
        options = {k: values[k] for k in module.KEYS if k in values} if module else {}
        # the common case in one validation, both parts at once
        fields, valid = _whole_check(kind, module, common, options, file.folder) \
            if module is not None and kind_ok else (None, None)
        if fields is None:  # an error somewhere: part by part, for the messages as they were
            fields = self.validate(CheckFields, common, file, node, path)
        name = self.claim_name(file, node, path, common.get("name"), fields is not None)
        if module is None:
            return
        if valid is None:
            valid = self.validate(module.Options, options, file, node, path)
        if valid is None:
            return
        if fields is None or name is None or not kind_ok:
            self.build_probe(file, node, pairs, path, kind, valid)  # for its errors: all at once
            return
        settings = self.settings_of(fields)
        if (message := remediation.after_problem(settings)) is not None:
            where = ("remediate", "after")
            self.report.error(file, locate(node, where), path + where, message)
            return
        incident_key = fields.incident_key or default_incident_key(self.key_source, name)
        # made when first read (validate never reads it) from values nothing changes later:
        # build() gets the validated options, not these. What the page shows (links,
        # component...) is no part of it: changing a link restarts no counts.
        fingerprint = functools.partial(_fingerprint_of, name, kind, options, file.folder,
                                        self.key_source, incident_key,
                                        _FINGERPRINTED(settings), fields.depends_on)
        probe = self.build_probe(file, node, pairs, path, kind, valid)
        if probe is None:
            return
        if fields.incident_key is not None:
            other = self.incident_keys.setdefault(incident_key, name)
            if other != name:
                self.report.warn(file, pairs["incident_key"][0], path + ("incident_key",),
                                 f"check {other!r} uses the same incident key — one check "
                                 "passing resolves the other's incident")
        self.checks.append(self.make_check(file, node, path, name, kind, probe, fields,
                                           settings, incident_key, fingerprint))

    def make_check(self, file: SourceFile, node: Node, path: tuple, name: str, kind: str,
                   probe: Any, fields: Any, settings: dict[str, Any], incident_key: str,
                   fingerprint: Callable[[], str]) -> Check:
        origin = f"{file.display}:{line_of(node)}"
        if settings["timeout"] >= settings["interval"]:
            self.slow_timeouts.append(f"{name} ({origin})")
        depends_on = tuple(dict.fromkeys(fields.depends_on or ()))
        if depends_on:
            self.dependencies[name] = (file, node, path, depends_on)
        flapping = settings["flapping"]
        page = build_page(settings, {"name": name, "source": self.source, "host": self.host,
                                     "incident_key": incident_key})
        return Check.of_fields(
            name=name, kind=kind, probe=probe, interval=settings["interval"],
            timeout=settings["timeout"], fail_after=settings["fail_after"],
            recover_after=settings["recover_after"], retry_interval=settings["retry_interval"],
            severity=settings["severity"], incident_key=incident_key,
            details=dict(settings["details"]), source=self.source, fingerprint=fingerprint,
            origin=origin, depends_on=depends_on, repeat_interval=settings["repeat_interval"],
            flapping=Flapping(**flapping) if flapping else None, page=page,
            diagnose=remediation.build(settings["diagnose"], file.folder),
            remediate=remediation.build(settings["remediate"], file.folder),
        )

    def check_dependencies(self) -> None:
        """Once every file is read: each parent must exist, and no loop of parents."""
        graph = {check.name: () for check in self.checks}
        graph.update({name: parents for name, (*_, parents) in self.dependencies.items()})
        for name, index, message in dependency_problems(graph):
            file, node, path, _ = self.dependencies[name]
            self.report.error(file, locate(node, ("depends_on", index)),
                              path + ("depends_on", index), message)

    def kind_of(self, file: SourceFile, node: Node, pairs: dict, path: tuple
                ) -> tuple[str | None, bool]:
        """(the check's probe kind, whether its keys agree); kind None when it has none or
        several. Every problem is recorded."""
        present = [k for k in self.kinds if k in pairs]
        if not present:
            loose = [k for k in pairs if k in self.key_owner]
            hint = f" ({loose[0]!r} belongs to {self.key_owner[loose[0]]}:)" if loose else ""
            self.report.error(file, node, path, "no probe kind: add one of "
                              f"{', '.join(k + ':' for k in self.kinds)}{hint}")
            return None, False
        if len(present) > 1:
            self.report.error(file, pairs[present[1]][0], path + (present[1],), "a check has "
                              f"exactly one probe kind, this one has {' and '.join(present)} — "
                              "split it into two checks")
            return None, False
        kind = present[0]
        ok = True
        for key in pairs:
            owner = self.key_owner.get(key)
            if owner is not None and owner != kind:
                self.report.error(file, pairs[key][0], path + (key,), f"{key!r} belongs to the "
                                  f"{owner} probe kind, this check is {kind}")
                ok = False
        return kind, ok

    def claim_name(self, file: SourceFile, node: Node, path: tuple, name: Any,
                   valid: bool) -> str | None:
        """The check's name, if valid and not taken; a duplicate is an error."""
        if not valid and not _valid_name(name):
            return None
        if name in self.names:
            self.report.error(file, locate(node, ("name",)), path + ("name",), "duplicate check "
                              f"name {name!r} — also defined at {self.names[name]}; names must be "
                              "unique across all files")
            return None
        self.names[name] = f"{file.display}:{line_of(node)}"
        return name

    def settings_of(self, fields: Any) -> dict[str, Any]:
        """The check's settings: its own over the defaults (details merged key by key)."""
        settings = dict(self.defaults)
        for key in fields.model_fields_set:
            if key in settings:
                value = _setting(key, getattr(fields, key))
                settings[key] = {**self.defaults["details"], **value} if key == "details" \
                    else value
        return settings

    def build_probe(self, file: SourceFile, node: Node, pairs: dict, path: tuple, kind: str,
                    options: Any) -> Any:
        """The kind's probe from its validated options; None (errors recorded) if it
        refuses them (say, a CA bundle that does not load)."""
        module = self.kinds[kind]
        try:
            return module.build(options, file.folder)
        except OptionError as exc:
            for subpath, message in exc.problems or [(kind, str(exc) or "invalid options")]:
                parts = split_subpath(str(subpath))
                self.report.error(file, locate(node, parts), path + tuple(parts), str(message))
        except Exception as exc:  # a probe module bug must not become a traceback
            self.report.error(file, pairs[kind][0], path + (kind,), f"the {kind} probe could "
                              f"not read these options: {type(exc).__name__}: {exc}")
        return None


@functools.cache
def whole_check_model(kind: str, options: type[Section]) -> type[Section]:
    """A model of a whole check of one kind: its CheckFields (`common`) and its kind's
    Options (`options`), so that one validation gives both parts. CheckFields is built
    on its own first, so that each kind's whole-check model reuses its validator schema."""
    CheckFields.model_rebuild()
    return create_model(f"Whole{kind.capitalize()}Check", __base__=Section,
                        common=(CheckFields, ...), options=(options, ...))


def _whole_check(kind: str, module: Any, common: dict[str, Any], options: dict[str, Any],
                 base_dir: str) -> tuple[Any, Any]:
    """(fields, options) of the check validated in one go; (None, None) on any problem,
    for the caller to validate it part by part (which says each problem where it is)."""
    model = whole_check_model(kind, module.Options)
    whole = validate_sections(model, {"common": (CheckFields, common),
                                      "options": (module.Options, options)},
                              {"base_dir": base_dir})
    return (None, None) if whole is None else (whole.common, whole.options)


def _setting(key: str, value: Any) -> Any:
    if key == "details" and value is None:
        return {}
    if key in ("flapping", "diagnose", "remediate") and value is not None:
        return value.model_dump()  # plain data: fingerprinted and copied like the rest
    return value


def _valid_name(name: Any) -> bool:
    try:
        validate(Name, name)  # its adapter is built on first use: a bad name is rare
    except ValidationError:
        return False
    return True


def _fingerprint_of(name: str, kind: str, options: dict, base_dir: str, source: str,
                    incident_key: str, values: tuple, depends_on: Any) -> str:
    """_fingerprint() with the settings as _FINGERPRINTED read them."""
    return _fingerprint(name, kind, options, base_dir, source, incident_key,
                        dict(zip(_FINGERPRINTED_KEYS, values, strict=True)), depends_on)


def _fingerprint(name: str, kind: str, options: dict, base_dir: str, source: str,
                 incident_key: str, settings: dict, depends_on: Any = None) -> str:
    """SHA-256 of the check's effective definition, as written after ${VAR} expansion."""
    if depends_on:
        settings = {**settings, "depends_on": depends_on}
    definition = {
        "name": name,
        "kind": kind,
        "options": options,
        "base_dir": base_dir,
        "source": source,
        "incident_key": incident_key,
        # Settings added after fingerprints were first stored count only when set, so an
        # upgrade does not make every check look changed.
        **{key: value for key, value in settings.items() if key not in PAGE_KEYS
           and (key not in _LATER_DEFAULTS or value != _LATER_DEFAULTS[key])},
    }
    return hashlib.sha256(_CANONICAL.encode(definition).encode()).hexdigest()


def split_subpath(subpath: str) -> list[Any]:
    """"http.headers[0].name" -> ["http", "headers", 0, "name"]."""
    return [int(index) if index else key for index, key in _SUBPATH.findall(subpath)]
