"""The event loop probes run on: uvloop where it is installed, the standard one otherwise.

uvloop (libuv) costs about half the CPU of asyncio's own loop per loopback HTTP probe
(bench/RESULTS.md), and the runner's HTTP probes are its hot path. Setting
PD_WATCHDOG_EVENT_LOOP=asyncio in the environment picks the standard loop, should uvloop
ever be the suspect in an incident.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

# Host-name lookups block, so both loops run them on threads: libuv's pool (4 threads unless
# UV_THREADPOOL_SIZE says otherwise, read once, at its first use) or the loop's default
# executor. With thousands of host-name checks and a resolver a few ms away, 4 is too few.
RESOLVER_THREADS = 16


def loop_name() -> str:
    """Which loop new_event_loop() makes: "uvloop" or "asyncio"."""
    if os.environ.get("PD_WATCHDOG_EVENT_LOOP", "").strip().lower() == "asyncio":
        return "asyncio"
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def new_event_loop() -> asyncio.AbstractEventLoop:
    if loop_name() == "uvloop":
        import uvloop

        os.environ.setdefault("UV_THREADPOOL_SIZE", str(RESOLVER_THREADS))
        return uvloop.new_event_loop()
    loop = asyncio.new_event_loop()
    loop.set_default_executor(
        ThreadPoolExecutor(max_workers=RESOLVER_THREADS, thread_name_prefix="resolve")
    )
    return loop


def run(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on the loop new_event_loop() picks (for one-off work: `check`, tests)."""
    loop = new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()
