"""One of each: the rules watchdog shares with pagerduty_api are the client's, not copies."""

from __future__ import annotations

from pagerduty_api import alert
from watchdog import model


def test_severities_are_the_clients_wire_contract():
    assert model.SEVERITIES is alert.SEVERITIES
