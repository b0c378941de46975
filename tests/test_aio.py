"""Which event loop the runner gets."""

from __future__ import annotations

import asyncio

import pytest

from watchdog import aio


def test_the_standard_loop_when_asked(monkeypatch):
    monkeypatch.setenv("PD_WATCHDOG_EVENT_LOOP", "asyncio")
    assert aio.loop_name() == "asyncio"
    loop = aio.new_event_loop()
    try:
        assert type(loop).__module__.startswith("asyncio")
    finally:
        loop.close()


def test_uvloop_by_default_where_installed(monkeypatch):
    pytest.importorskip("uvloop")
    monkeypatch.delenv("PD_WATCHDOG_EVENT_LOOP", raising=False)
    assert aio.loop_name() == "uvloop"
    loop = aio.new_event_loop()
    try:
        assert type(loop).__module__.startswith("uvloop")
    finally:
        loop.close()


def test_run_runs_a_coroutine_to_the_end_and_closes_its_loop():
    seen = []

    async def work():
        seen.append(asyncio.get_running_loop())
        return 42

    assert aio.run(work()) == 42
    assert seen[0].is_closed()
