"""Read one YAML file into a node tree, refusing what is not a sane config file.

Only nodes are composed here (safe tags, positions kept), so every later error can name
file:line; values are built from them in values.py. Size, encoding and syntax problems
become located errors, never exceptions.
"""

from __future__ import annotations

import os
import stat
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from watchdog.config.report import Report, SourceFile, line_of

MAX_FILE_BYTES = 16 * 1024 * 1024

_TAG = "tag:yaml.org,2002:"
STR, INT, FLOAT, BOOL, NULL = (_TAG + t for t in ("str", "int", "float", "bool", "null"))
TIMESTAMP, VALUE, MERGE = (_TAG + t for t in ("timestamp", "value", "merge"))
MAP, SEQ = _TAG + "map", _TAG + "seq"
SECRET_TAG = "!secret"

YamlBase = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_C_LOADER = YamlBase is not yaml.SafeLoader


class NodeLoader(YamlBase):  # type: ignore[misc, valid-type]
    """Safe loader used only to compose nodes; values are built by values.Values.

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
                table = NodeLoader._by_first
                if table is None:
                    everywhere = self.yaml_implicit_resolvers.get(None, [])
                    table = {first: resolvers + everywhere for first, resolvers
                             in self.yaml_implicit_resolvers.items() if first is not None}
                    table[None] = everywhere
                    NodeLoader._by_first = table
                resolvers = table.get(value[:1])
                for tag, regexp in table[None] if resolvers is None else resolvers:
                    if regexp.match(value):
                        return tag
            return self.DEFAULT_SCALAR_TAG
        if kind is SequenceNode:
            return self.DEFAULT_SEQUENCE_TAG
        return self.DEFAULT_MAPPING_TAG


def compose(report: Report, file: SourceFile, parent: SourceFile | None, where: Node | None,
            at: tuple) -> tuple[bool, MappingNode | None]:
    """(usable, root) of one file; root None for an empty file. Errors go to `report`."""
    data = _read_bytes(report, file, parent, where, at)
    if data is None:
        return False, None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        report.error(file, line, (), f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
                     f"{exc.start}) — save the file as UTF-8")
        return False, None
    root = _compose_text(report, file, data, text)
    if root is False:
        return False, None
    if root is None or (
        isinstance(root, ScalarNode) and root.tag == NULL and root.value in ("", "~", "null")
    ):
        return True, None  # an empty file (e.g. everything commented out) defines nothing
    if not isinstance(root, MappingNode):
        kind = "a list" if isinstance(root, SequenceNode) else "a single value"
        report.error(file, root, (), f"the top level must be a mapping (key: value lines), "
                     f"not {kind} — see watchdog.example.yaml")
        return False, None
    return True, root


def _compose_text(report: Report, file: SourceFile, data: bytes, text: str) -> Any:
    """The root node, or False (error recorded)."""
    loader = NodeLoader(text)
    try:
        return loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        _yaml_error(report, file, exc, text)
    except yaml.reader.ReaderError as exc:
        line = (data if _C_LOADER else text)[: exc.position].count(
            b"\n" if _C_LOADER else "\n") + 1
        char = exc.character
        shown = f"U+{char:04X}" if isinstance(char, int) else repr(char)
        report.error(file, line, (), f"not YAML text: character {shown} is not allowed "
                     f"({exc.reason}) — remove it, or write it as an escape in double quotes")
    except RecursionError:
        report.error(file, None, (), "YAML nested too deeply — flatten the structure")
    except (yaml.YAMLError, ValueError, MemoryError) as exc:
        report.error(file, None, (), f"could not parse YAML: {exc}")
    finally:
        loader.dispose()
    return False


def _read_bytes(report: Report, file: SourceFile, parent: SourceFile | None,
                where: Node | None, at: tuple) -> bytes | None:
    def fail(msg: str) -> None:
        if parent is None:
            report.error(file, None, (), msg)
        else:
            report.error(parent, where, at, f"{file.display}: {msg}")

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


def _yaml_error(report: Report, file: SourceFile, exc: yaml.MarkedYAMLError,
                text: str) -> None:
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
    report.add(file.index, line, f"{where}: YAML syntax error: {problem}{hint}")


def _is_tab(mark: yaml.Mark | None, text: str) -> bool:
    """Whether the error points at a tab (libyaml's marks carry no buffer: use the text)."""
    if mark is None:
        return False
    lines = text.split("\n")
    return mark.line < len(lines) and lines[mark.line][mark.column:mark.column + 1] == "\t"


def locate(node: Node, parts: tuple | list) -> int:
    """Line of the deepest node `parts` reaches from `node` (the nearest parent if missing)."""
    line = line_of(node)
    current = node
    for part in parts:
        found = child(current, part)
        if found is None:
            break
        line = line_of(found[0])
        current = found[1]
    return line


def child(node: Node, part: Any) -> tuple[Node, Node] | None:
    """(key node, value node) of `part` in a mapping (one level of `<<` merges looked
    into), or (item, item) of index `part` in a sequence; None if there is none."""
    if isinstance(node, MappingNode) and isinstance(part, str):
        candidates = list(node.value)
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode) and key_node.tag == MERGE:
                sources = value_node.value if isinstance(value_node, SequenceNode) \
                    else [value_node]
                candidates += [pair for source in sources if isinstance(source, MappingNode)
                               for pair in source.value]
        for key_node, value_node in candidates:
            if isinstance(key_node, ScalarNode) and key_node.value == part:
                return key_node, value_node
    elif isinstance(node, SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        item = node.value[part]
        return item, item
    return None
