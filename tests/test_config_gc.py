"""A loaded config is frozen out of the cyclic GC (gc.freeze): no collection, nor the one
at exit, walks its objects again; the next load gives the last one back to the GC."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from watchdog.config import ConfigError, load


def write(tmp_path: Path, checks: int) -> str:
    lines = ["checks:"]
    for n in range(checks):
        lines += [f"  - name: c{n}", f"    command: 'true {n}'"]
    path = tmp_path / "watchdog.yaml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_a_loaded_config_is_frozen_and_a_reload_does_not_pile_up(tmp_path: Path) -> None:
    path = write(tmp_path, 200)
    gc.unfreeze()
    try:
        config = load(path, environ={}, need_key=False)
        assert len(config.checks) == 200
        assert gc.isenabled()
        first = gc.get_freeze_count()
        assert first > 200 * 5  # the checks' objects (and what was alive before) are frozen
        config = load(path, environ={}, need_key=False)  # as a reload does
        again = gc.get_freeze_count()
        # unfrozen first, so the old config can go: the count does not grow by a config
        assert again < first + 200 * 5 // 2
    finally:
        gc.unfreeze()


def test_a_config_that_fails_to_load_freezes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "watchdog.yaml"
    path.write_text("checks:\n  - name: a\n    commnd: x\n")
    gc.unfreeze()
    try:
        with pytest.raises(ConfigError):
            load(str(path), environ={}, need_key=False)
        assert gc.get_freeze_count() == 0
        assert gc.isenabled()
    finally:
        gc.unfreeze()
