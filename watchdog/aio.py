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
from typing import Any, TypeVar

T = TypeVar("T")


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

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


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
