"""The dry run's stand-in for pagerduty_api.Alert (and ChangeEvent): it logs what would be
sent and sends nothing."""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger("watchdog.sender")  # where the sender's own lines go: read together


class LoggingAlert:
    """Dry-run stand-in for pagerduty_api.Alert: logs what would be sent, sends nothing."""

    def trigger(
        self,
        description: str,
        incident_key: str | None = None,
        client: str | None = None,
        client_url: str | None = None,
        details: dict[str, Any] | None = None,
        *,
        severity: str | None = None,
        source: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Log the trigger at WARNING (dry runs should be noticed) and pretend it went out."""
        logger.warning(
            "dry-run: would trigger %s: %s (%s, %s)", incident_key, description, severity, source
        )
        return {"status": "dry-run"}

    def resolve(
        self,
        incident_key: str | None = None,
        description: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Log the resolve at WARNING and pretend it went out."""
        logger.warning("dry-run: would resolve %s: %s", incident_key, description)
        return {"status": "dry-run"}

    def send(self, summary: str, **fields: Any) -> dict[str, Any]:
        """Log a change event (ChangeEvent.send's stand-in) at WARNING; nothing is sent."""
        logger.warning("dry-run: would send change event: %s", summary)
        return {"status": "dry-run"}
