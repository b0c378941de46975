"""The ChangeEvent interface: tell PagerDuty what changed (a deploy, a config push) through
the Change Events API, so responders see it beside the incidents of the same service."""

from __future__ import annotations

# Standard library imports
import re
from datetime import datetime
from typing import Any

# Third party package imports
import requests

# Local package imports
from pagerduty_api._event import drop_none, fit_body, fit_summary, iso_timestamp, refuse
from pagerduty_api._transport import mask_key
from pagerduty_api.base import Resource
from pagerduty_api.exceptions import ConfigurationException
from pagerduty_api.retry import THROTTLE_STATUSES

__all__ = ["PATH", "ROUTING_KEY_LENGTH", "ChangeEvent"]

PATH = "v2/change/enqueue"
ROUTING_KEY_LENGTH = 32  # an Events API v2 integration key
_KEY_ERROR = re.compile(r"(routing|integration)[ _]?key", re.IGNORECASE)


class ChangeEvent(Resource):
    """Sends change events for one service: `ChangeEvent(routing_key).send(summary, ...)`.

    The routing key is the integration key of an Events API v2 (or Change Events)
    integration; EU accounts pass url="https://events.eu.pagerduty.com". Retries, limits,
    deadlines and masking are Alert's (the same Resource underneath).
    """

    default_url = "https://events.pagerduty.com"
    retry_statuses = THROTTLE_STATUSES["v2"]  # 429; 5xx and no answer are retried too

    def __init__(
        self,
        routing_key: str,
        url: str = "https://events.pagerduty.com",
        timeout: float = 10,
        retry_deadline: float = 60,
        session: requests.Session | None = None,
    ) -> None:
        if not isinstance(routing_key, str) or len(routing_key) != ROUTING_KEY_LENGTH:
            got = (
                f"{len(routing_key)} characters"
                if isinstance(routing_key, str)
                else f"a {type(routing_key).__name__}"
            )
            raise ConfigurationException(
                f"routing_key must be the {ROUTING_KEY_LENGTH}-character integration key of an "
                f"Events API v2 integration, got {got}"
            )
        super().__init__(url=url, timeout=timeout, retry_deadline=retry_deadline, session=session)
        self._routing_key = routing_key

    @property
    def routing_key(self) -> str:
        """The integration key (kept out of repr, messages and logs)."""
        return self._routing_key

    @property
    def URL(self) -> str:  # noqa: N802 - the name Alert.URL has in the original package
        """The whole endpoint change events are posted to."""
        return f"{self.url}/{PATH}"

    def __repr__(self) -> str:
        return f"ChangeEvent(key={mask_key(self._routing_key)!r}, url={self.url!r})"

    def _secrets(self) -> tuple[str, ...]:
        return (self._routing_key,)

    def _explain_invalid(self, detail: str) -> str:
        if not _KEY_ERROR.search(detail):
            return ""
        return (
            f" — key {mask_key(self._routing_key)}: change events need the integration key of"
            " an Events API v2 integration on the service (a Generic API v1 key is refused)"
        )

    def send(
        self,
        summary: str,
        *,
        source: str | None = None,
        links: list[dict[str, str]] | None = None,
        custom_details: dict[str, Any] | None = None,
        timestamp: datetime | str | None = None,
    ) -> dict[str, Any]:
        """Send one change event; PagerDuty answers 202 {"status": "success", "message":
        "Change event processed"}, returned as a dict.

        The summary is required (cut to 1024 characters with a marker); timestamp is a
        datetime (naive: UTC) or an ISO 8601 string, when the change happened (PagerDuty's
        default: when it arrives); links is a list of {"href", "text"} dicts, sent as given.
        """
        if not isinstance(summary, str) or not summary.strip():
            raise refuse("a change event needs a summary: it must not be empty or blank")
        payload = drop_none({
            "summary": fit_summary(summary),
            "timestamp": iso_timestamp(timestamp),
            "source": source,
            "custom_details": custom_details,
        })
        event = drop_none({"routing_key": self._routing_key, "payload": payload, "links": links})
        return self.request("POST", PATH, fit_body(event))
