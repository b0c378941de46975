"""What a reload may change live, and what needs a restart: read from the models.

A field whose json_schema_extra says fields.RESTART (state_dir, workers, metrics.listen)
keeps its old value on reload, and the runner says so; everything else applies live. A
new restart-only setting is one marker on its field, nothing here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from watchdog.config.errors import fmt_path, unwrap
from watchdog.config.fields import RELOAD
from watchdog.config.models import Settings


def restart_paths(model: type[BaseModel] = Settings, prefix: tuple = ()) -> tuple[tuple, ...]:
    """The key paths under `model` whose change takes a restart, in declaration order."""
    out: list[tuple] = []
    for name, field in model.model_fields.items():
        extra = field.json_schema_extra
        if isinstance(extra, dict) and extra.get(RELOAD) == "restart":
            out.append(prefix + (name,))
            continue
        hint = unwrap(field.annotation)[0]
        if isinstance(hint, type) and issubclass(hint, BaseModel):
            out.extend(restart_paths(hint, prefix + (name,)))
    return tuple(out)


RESTART_ONLY = restart_paths()


@dataclass(frozen=True)
class Change:
    """A restart-only setting that a reload would change."""

    path: tuple
    old: Any
    new: Any

    @property
    def key(self) -> str:
        return fmt_path(self.path)

    @staticmethod
    def show(value: Any) -> str:
        return "none" if value is None else str(value)


def value_at(settings: BaseModel, path: tuple) -> Any:
    """The setting at `path`; None when a section on the way is absent."""
    value: Any = settings
    for part in path:
        if value is None:
            return None
        value = getattr(value, part)
    return value


def restart_changes(old: Settings, new: Settings) -> list[Change]:
    """Each restart-only setting that differs between the running and the new settings."""
    changes = []
    for path in RESTART_ONLY:
        before, after = value_at(old, path), value_at(new, path)
        if before != after:
            changes.append(Change(path, before, after))
    return changes


def keep_running(old: Settings, new: Settings, changes: list[Change]) -> Settings:
    """`new` with the running value of each changed restart-only setting put back."""
    for change in changes:
        new = _put(new, old, change.path)
    return new


def _put(new: BaseModel, old: BaseModel, path: tuple) -> BaseModel:
    head = path[0]
    inner_new, inner_old = getattr(new, head), getattr(old, head)
    if len(path) == 1 or inner_new is None or inner_old is None:
        # a section that appears or goes away wholly: the running one stays as it is
        return new.model_copy(update={head: inner_old})
    return new.model_copy(update={head: _put(inner_new, inner_old, path[1:])})
