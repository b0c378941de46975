"""The suite's loopback-only guard (tests/conftest.py) really refuses other addresses."""

from __future__ import annotations

import socket

import pytest

from pagerduty_api import Alert


def test_a_socket_cannot_reach_a_non_loopback_address() -> None:
    with socket.socket() as sock, pytest.raises(AssertionError, match="loopback only"):
        sock.connect(("203.0.113.7", 443))  # TEST-NET-3


def test_an_unmocked_alert_cannot_reach_pagerduty() -> None:
    """Without `responses`, the default URL is PagerDuty's; the guard stops it at connect."""
    alert = Alert("4baa5d20cfba466a5e075b02698f455c", retry_deadline=0, url="http://192.0.2.1")
    with pytest.raises(AssertionError, match="loopback only"):
        alert.trigger("must never leave this machine")


@pytest.mark.parametrize("url", ["http://203.0.113.7/", "https://example.com/"])
@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_an_http_probe_cannot_reach_a_non_loopback_address(monkeypatch, loop, url) -> None:
    """uvloop connects inside libuv, past socket.connect: guarded there too; names are
    refused before any lookup."""
    from watchdog import aio
    from watchdog.probes import http
    from watchdog.probes.base import run_once

    monkeypatch.setenv("PD_WATCHDOG_EVENT_LOOP", loop)
    if loop == "uvloop" and aio.loop_name() != "uvloop":
        pytest.skip("uvloop is not installed")
    result = run_once(http.parse({"http": {"url": url}}, "."), 5)
    assert not result.ok and "loopback only" in result.summary


def test_a_udp_datagram_cannot_go_to_a_non_loopback_address() -> None:
    """UDP needs no connect (a DNS query is one sendto): the guard checks sendto too."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock, \
            pytest.raises(AssertionError, match="loopback only"):
        sock.sendto(b"\x00", ("192.0.2.53", 53))
