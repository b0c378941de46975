"""What one load found wrong: located errors (sorted by file and line), warnings."""

from __future__ import annotations

import os

from yaml.nodes import Node

from watchdog.config.errors import fmt_path

MAX_ERRORS = 1000  # a file of 100,000 broken checks needs its first errors fixed, not all


class ConfigError(Exception):
    """The config can't be used. `errors` lists every problem found, one located line each."""

    def __init__(self, errors: list[str] | str):
        self.errors = [errors] if isinstance(errors, str) else list(errors)
        super().__init__("\n".join(self.errors))

    def __str__(self) -> str:
        return "\n".join(self.errors)


class TooManyErrors(Exception):
    """Stop loading altogether: MAX_ERRORS are recorded."""


class SourceFile:
    """One file being read: where it is, how to name it in messages, its alias budget."""

    __slots__ = ("path", "display", "folder", "index", "seen", "alias_work", "aborted")

    def __init__(self, path: str, display: str, index: int):
        self.path = path
        self.display = display
        self.folder = os.path.dirname(path)
        self.index = index
        self.seen: set[int] = set()
        self.alias_work = 0
        self.aborted = False


def line_of(node: Node) -> int:
    return node.start_mark.line + 1


class Report:
    """Errors and warnings of one load, each "file:line: key.path: message"."""

    def __init__(self, given_path: str):
        self.given_path = given_path
        self.errors: list[tuple[int, int, int, str]] = []
        self.warnings: list[str] = []
        self.unset: set[tuple[int, tuple]] = set()  # (file, key path) of unset ${VAR}s

    def error(self, file: SourceFile | None, node: Node | int | None, path: tuple,
              msg: str) -> None:
        index = file.index if file else -1
        if (index, tuple(path)) in self.unset:
            return  # its ${VAR} is unset: that one error says it all
        line = node if isinstance(node, int) else (line_of(node) if node is not None else 0)
        self.add(index, line, self.locate(file, line, path, msg))

    def add(self, index: int, line: int, text: str) -> None:
        self.errors.append((index, line, len(self.errors), text))
        if len(self.errors) >= MAX_ERRORS:
            raise TooManyErrors

    def locate(self, file: SourceFile | None, line: int, path: tuple, msg: str) -> str:
        where = file.display if file is not None else self.given_path
        if line:
            where += f":{line}"
        return f"{where}: {fmt_path(path)}: {msg}" if path else f"{where}: {msg}"

    def warn(self, file: SourceFile, node: Node | int | None, path: tuple, msg: str) -> None:
        line = node if isinstance(node, int) else (line_of(node) if node is not None else 0)
        where = file.display + (f":{line}" if line else "")
        self.warnings.append(f"{where}: {fmt_path(path)}: {msg}" if path else f"{where}: {msg}")

    def messages(self) -> list[str]:
        return [text for *_, text in sorted(self.errors)]

    def fail(self, *, stopped: bool = False) -> ConfigError:
        messages = self.messages()
        if stopped:
            messages.append(f"{self.given_path}: stopped after {MAX_ERRORS} errors — fix these "
                            "and run again")
        return ConfigError(messages)
