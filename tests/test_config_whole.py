"""A valid check is validated in one pass (CheckFields and its kind's Options at once);
one with a problem part by part, for the messages. Both must build the same checks."""

from __future__ import annotations

import dataclasses
import ssl
from pathlib import Path

import pytest

from watchdog.config import ConfigError, checks, load
from watchdog.config.loader import Loader
from watchdog.config.models import CheckFields
from watchdog.probes import KINDS

ROOT = Path(__file__).resolve().parent.parent
ENV = {"PING_HOST": "127.0.0.1", "WEBSITE_URL": "https://127.0.0.1:8443/health"}


@pytest.fixture
def shipped(tmp_path):
    """A main file with defaults, including every shipped check (all the probe kinds)."""
    main = tmp_path / "w.yaml"
    main.write_text("defaults:\n  interval: 45s\n  details: {team: ops}\n"
                    f"include: ['{ROOT}/checks/*.yaml.example', '{ROOT}/checks/*.yaml']\n")
    return main


def _shape(value, depth=0):
    """A probe (or any part of it) as plain data, to compare two loads."""
    if isinstance(value, (str, int, float, bool, bytes, type(None))):
        return value
    if isinstance(value, ssl.SSLContext):
        return ("SSLContext", value.verify_mode, value.check_hostname)
    if isinstance(value, (list, tuple, set, frozenset)):
        return type(value).__name__, [_shape(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {k: _shape(v, depth + 1) for k, v in value.items()}
    if depth > 6:
        return type(value).__name__
    names = getattr(value, "__slots__", None) or list(getattr(value, "__dict__", {}))
    if isinstance(names, str):
        names = [names]
    return type(value).__name__, {n: _shape(getattr(value, n, None), depth + 1) for n in names
                                  if not n.startswith("_")}


def _checks(config):
    return [({f.name: getattr(check, f.name) for f in dataclasses.fields(check)
              if f.name != "probe"}, _shape(check.probe)) for check in config.checks]


def test_a_valid_check_is_validated_in_one_pass(shipped, monkeypatch):
    parts = []
    original = Loader.validate

    def counting(self, model, *args, **kwargs):
        if model is CheckFields or any(model is kind.Options for kind in KINDS.values()):
            parts.append(model)
        return original(self, model, *args, **kwargs)

    monkeypatch.setattr(Loader, "validate", counting)
    config = load(str(shipped), environ=ENV)
    assert {check.kind for check in config.checks} == set(KINDS)
    assert parts == []


def test_one_pass_and_part_by_part_build_the_same_checks(shipped, monkeypatch):
    whole = load(str(shipped), environ=ENV)
    monkeypatch.setattr(checks, "_whole_check", lambda *args: (None, None))
    by_parts = load(str(shipped), environ=ENV)
    assert len(whole.checks) == len(by_parts.checks) >= len(KINDS)
    assert _checks(whole) == _checks(by_parts)


def test_a_check_with_problems_in_both_parts_still_says_each(tmp_path):
    main = tmp_path / "w.yaml"
    main.write_text("checks:\n  - name: a\n    interval: soon\n    http: {url: 'ftp://x/'}\n")
    with pytest.raises(ConfigError) as caught:
        load(str(main), environ={})
    said = str(caught.value)
    assert f"{main}:3: checks[0].interval:" in said
    assert f"{main}:4: checks[0].http.url: must start with http:// or https://" in said
