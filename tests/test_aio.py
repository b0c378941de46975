"""Which event loop the runner gets, and its resolver threads."""

from __future__ import annotations

import asyncio
import os

import pytest

from watchdog import aio


def test_the_standard_loop_when_asked_with_enough_resolver_threads(monkeypatch):
    monkeypatch.setenv("PD_WATCHDOG_EVENT_LOOP", "asyncio")
    assert aio.loop_name() == "asyncio"
    loop = aio.new_event_loop()
    try:
        assert type(loop).__module__.startswith("asyncio")
        assert loop._default_executor._max_workers == aio.RESOLVER_THREADS
    finally:
        loop.close()


def test_uvloop_by_default_where_installed_with_enough_resolver_threads(monkeypatch):
    pytest.importorskip("uvloop")
    monkeypatch.delenv("PD_WATCHDOG_EVENT_LOOP", raising=False)
    monkeypatch.delenv("UV_THREADPOOL_SIZE", raising=False)
    assert aio.loop_name() == "uvloop"
    loop = aio.new_event_loop()
    try:
        assert type(loop).__module__.startswith("uvloop")

        assert os.environ["UV_THREADPOOL_SIZE"] == str(aio.RESOLVER_THREADS)
    finally:
        loop.close()


def test_an_operator_set_threadpool_size_is_kept(monkeypatch):
    pytest.importorskip("uvloop")
    monkeypatch.delenv("PD_WATCHDOG_EVENT_LOOP", raising=False)
    monkeypatch.setenv("UV_THREADPOOL_SIZE", "64")
    aio.new_event_loop().close()

    assert os.environ["UV_THREADPOOL_SIZE"] == "64"


def test_run_runs_a_coroutine_to_the_end_and_closes_its_loop():
    seen = []

    async def work():
        seen.append(asyncio.get_running_loop())
        return 42

    assert aio.run(work()) == 42
    assert seen[0].is_closed()
