"""YAML nodes to plain Python values: ${VAR} expanded, !secret noted, tags and aliases
rationed. What comes out is what the models validate; where it came from stays in the
nodes, for file:line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from watchdog.config.fields import EnvText
from watchdog.config.report import Report, SourceFile, line_of
from watchdog.config.yamlfile import (
    BOOL,
    FLOAT,
    INT,
    MAP,
    MERGE,
    NULL,
    SECRET_TAG,
    SEQ,
    STR,
    TIMESTAMP,
    VALUE,
    NodeLoader,
)

MAX_NESTING = 64  # levels of YAML collections; configs need < 10
MAX_ALIAS_WORK = 250_000  # nodes built again through aliases/merges, per file

REF = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
REF_BODY = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:-)(.*))?", re.DOTALL)


class Abort(Exception):
    """Stop reading the current file (alias bomb); the error is already recorded."""


class Values:
    """Builds values from nodes for one load; collects the secrets it meets."""

    def __init__(self, report: Report, environ: Mapping[str, str], need_key: bool):
        self.report = report
        self.env = environ
        self.need_key = need_key
        self.secrets: set[str] = set()
        self.helper = NodeLoader("")  # only its scalar constructors are used

    def visit(self, file: SourceFile, node: Node, weight: int = 1) -> None:
        """Account for building `node`; nodes built again through aliases are rationed."""
        if file.aborted:
            raise Abort
        key = id(node)
        if key in file.seen:
            file.alias_work += weight
            if file.alias_work > MAX_ALIAS_WORK:
                self.report.error(file, node, (), "too many alias expansions (a YAML 'billion "
                                  f"laughs'?) — more than {MAX_ALIAS_WORK} nodes built through "
                                  "*aliases; write the values out or use fewer aliases")
                file.aborted = True
                raise Abort
        else:
            file.seen.add(key)

    def pairs(self, file: SourceFile, node: MappingNode, path: tuple, depth: int = 0
              ) -> dict[str, tuple[Node, Node]]:
        """key -> (key node, value node) of a mapping, `<<` merges applied, duplicates refused."""
        if depth > MAX_NESTING:
            self.report.error(file, node, path, f"`<<` merges nested more than {MAX_NESTING} "
                              "deep")
            return {}
        out: dict[str, tuple[Node, Node]] = {}
        merges: list[Node] = []
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self.report.error(file, key_node, path, "keys must be plain strings, not lists "
                                  "or mappings — check for a stray '?' or braces")
                continue
            if key_node.tag == MERGE:
                merges.append(value_node)
                continue
            key = key_node.value
            if key in out:
                self.report.error(file, key_node, path + (key,), f"duplicate key (first at line "
                                  f"{line_of(out[key][0])}) — remove one; YAML would silently "
                                  "keep only the last")
                continue
            out[key] = (key_node, value_node)
        for merge in merges:
            sources = merge.value if isinstance(merge, SequenceNode) else [merge]
            for source in sources:
                if not isinstance(source, MappingNode):
                    self.report.error(file, source, path, "`<<` merges only mappings (or a "
                                      "list of *aliases to mappings)")
                    continue
                self.visit(file, source, len(source.value) + 1)
                for key, pair in self.pairs(file, source, path, depth + 1).items():
                    out.setdefault(key, pair)
        return out

    def value(self, file: SourceFile, node: Node, path: tuple, depth: int = 0,
              active: set[int] | None = None) -> Any:
        """Plain Python value of a node: env expanded, secrets noted, tags checked."""
        self.visit(file, node)
        if isinstance(node, ScalarNode):
            return self.scalar(file, node, path)
        if depth >= MAX_NESTING:
            self.report.error(file, node, path, f"nested more than {MAX_NESTING} levels deep")
            return None
        if active is None:
            active = set()
        if id(node) in active:
            self.report.error(file, node, path, "recursive alias (a value that contains itself)")
            return None
        if node.tag == SECRET_TAG:
            self.report.error(file, node, path, "!secret marks one string value, not a list or "
                              "mapping — tag each secret value")
            return None
        active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                if node.tag != SEQ:
                    self.report.error(file, node, path, f"unsupported tag {node.tag} — remove it")
                return [self.value(file, item, path + (i,), depth + 1, active)
                        for i, item in enumerate(node.value)]
            if node.tag != MAP:
                self.report.error(file, node, path, f"unsupported tag {node.tag} — remove it")
            return {key: self.value(file, value_node, path + (key,), depth + 1, active)
                    for key, (_, value_node) in self.pairs(file, node, path).items()}
        finally:
            active.discard(id(node))

    def scalar(self, file: SourceFile, node: ScalarNode, path: tuple) -> Any:
        tag = node.tag
        text = node.value
        if tag == STR:
            if "${" not in text:
                return text
            return EnvText(self.expand(file, node, path, text)[0])
        if tag == SECRET_TAG:
            value, substituted = self.expand(file, node, path, text)
            self.secrets.add(value)
            self.secrets.update(substituted or ())
            return EnvText(value) if "${" in text else value
        if tag == INT and text.isascii() and text.isdigit() and (text[0] != "0" or text == "0"):
            return int(text)  # the common case, without YAML 1.1's octal/sexagesimal rules
        if tag in (INT, FLOAT, BOOL, NULL):
            try:
                helper = self.helper
                return helper.yaml_constructors[tag](helper, node)
            except (ValueError, ArithmeticError, yaml.YAMLError):
                self.report.error(file, node, path, f"{text!r} is not a valid "
                                  f"{tag.rsplit(':', 1)[1]}")
                return None
        if tag in (TIMESTAMP, VALUE):
            return text  # kept as written: a config date is a string, not a datetime
        if tag.startswith("!"):
            hint = "only !secret is supported"
        else:
            hint = "remove the tag; only plain values, !secret, lists and mappings are supported"
        self.report.error(file, node, path, f"unsupported tag {tag} — {hint}")
        return None

    def expand(self, file: SourceFile, node: Node, path: tuple, text: str
               ) -> tuple[str, list[str] | None]:
        """Expand ${VAR}, ${VAR:-default}, $${; return (value, substituted values or None)."""
        if "${" not in text:
            return text, None
        substituted: list[str] = []
        report = self.report

        def replace(match: re.Match[str]) -> str:
            whole = match.group(0)
            if whole == "$${":
                return "${"
            body = match.group(1)
            if body is None:
                report.error(file, node, path, "unterminated ${ — close it with }, or write $${ "
                             "for a literal ${")
                return ""
            ref = REF_BODY.fullmatch(body)
            if ref is None:
                report.error(file, node, path, f"bad reference ${{{body}}} — write ${{NAME}} or "
                             "${NAME:-default} (NAME: letters, digits, _), or $${ for a literal "
                             "${")
                return ""
            name, has_default, default = ref.groups()
            found = self.env.get(name)
            if has_default and not found:
                substituted.append(default)
                return default
            if found is None and not self.need_key and path[:1] == ("pagerduty",):
                return ""
            if found is None:
                report.error(file, node, path, f"environment variable {name} is not set — "
                             f"export it, or write ${{{name}:-default}} (${{{name}:-}} allows "
                             "empty)")
                report.unset.add((file.index, path))
                return ""
            substituted.append(found)
            return found

        return REF.sub(replace, text), substituted

    def is_null(self, node: Node) -> bool:
        return isinstance(node, ScalarNode) and node.tag == NULL
