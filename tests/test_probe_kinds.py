"""Every probe kind in KINDS has the shape probes/base.py promises (Gatus lets its compiler
check this; here it is a test), and the runner's open-files estimate reads OPEN_SOCKETS."""

from __future__ import annotations

import inspect
import types

import pytest
from pydantic import BaseModel

from watchdog import cli, probes
from watchdog.config.checks import CHECK_KEYS
from watchdog.config.fields import Section
from watchdog.model import Check
from watchdog.probes.base import OptionError

KINDS = sorted(probes.KINDS.items())


@pytest.mark.parametrize(("name", "kind"), KINDS, ids=[name for name, _ in KINDS])
def test_each_kind_has_the_interface(name, kind):
    assert name == kind.NAME
    assert isinstance(kind.Options, type) and issubclass(kind.Options, Section)
    written = {field.alias or key for key, field in kind.Options.model_fields.items()}
    assert frozenset(written) == kind.KEYS and name in kind.KEYS
    assert list(inspect.signature(kind.build).parameters) == ["options", "base_dir"]
    assert list(inspect.signature(kind.parse).parameters) == ["options", "base_dir"]
    assert isinstance(kind.OPEN_SOCKETS, int) and kind.OPEN_SOCKETS >= 0
    assert kind.Options.model_json_schema()["additionalProperties"] is False
    with pytest.raises(OptionError):
        kind.parse({}, "/")  # the kind key itself is required


@pytest.mark.parametrize(("name", "kind"), KINDS, ids=[name for name, _ in KINDS])
def test_each_kinds_options_are_documented(name, kind):
    """The docs table and the schema's help come from these descriptions."""
    for model in _models(kind.Options):
        assert model.__doc__, model
        for key, field in model.model_fields.items():
            assert field.description, f"{name}: {model.__name__}.{key} has no description"


def _models(model: type[BaseModel]) -> list[type[BaseModel]]:
    found = [model]
    for field in model.model_fields.values():
        hint = field.annotation
        if isinstance(hint, type) and issubclass(hint, BaseModel):
            found += _models(hint)
    return found


def test_no_key_belongs_to_two_kinds_or_to_every_check():
    owners: dict[str, str] = {}
    for name, kind in KINDS:
        for key in kind.KEYS:
            assert key not in CHECK_KEYS, f"{name}: {key} is a key of every check"
            assert owners.setdefault(key, name) == name, f"{key}: {owners[key]} and {name}"


def _check(name: str, kind: str) -> Check:
    return Check(name=name, kind=kind, probe=types.SimpleNamespace(run=lambda timeout: None))


def test_the_open_files_estimate_counts_each_kinds_sockets():
    kinds = {
        "pair": types.SimpleNamespace(OPEN_SOCKETS=2),
        "none": types.SimpleNamespace(OPEN_SOCKETS=0),
    }
    checks = [_check(f"p{i}", "pair") for i in range(3)] + [_check("n", "none")]
    assert cli._sockets_held(checks, kinds) == (6, "3 PAIR checks")
    real = [_check("web", "http"), _check("cmd", "command")]
    assert cli._sockets_held(real) == (probes.http.OPEN_SOCKETS, "1 HTTP check")
