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
