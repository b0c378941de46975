"""The Alert interface: trigger, acknowledge and resolve incidents through the Events API."""

from __future__ import annotations

# Standard library imports
import hashlib
import re
import socket
from datetime import datetime
from typing import Any

# Third party package imports
import requests

# Local package imports
from pagerduty_api._event import (
    MAX_BODY_BYTES,
    MAX_SUMMARY_LENGTH,
    drop_none,
    fit_body,
    fit_summary,
    iso_timestamp,
    refuse,
)
from pagerduty_api._transport import SEVERITIES, mask_key
from pagerduty_api.base import Resource
from pagerduty_api.exceptions import (
    ConfigurationException,
    IncidentKeyException,
    InvalidEventException,
)
from pagerduty_api.retry import THROTTLE_STATUSES

__all__ = ["MAX_BODY_BYTES", "MAX_KEY_LENGTH", "MAX_SUMMARY_LENGTH", "SEVERITIES", "Alert"]

APIS = ("v1", "v2")
MAX_KEY_LENGTH = 255  # characters of an incident_key / dedup_key

_PATHS = {"v1": "generic/2010-04-15/create_event.json", "v2": "v2/enqueue"}
_KEY_ERROR = re.compile(r"(routing|service|integration)[ _]?key", re.IGNORECASE)
_KEY_HINTS = {
    "v1": "is this an Events API v2 key used with api='v1'?",
    "v2": "is this a v1 Generic API key used with api='v2'?",
}


def _default_key(description: str) -> str:
    """MD5 hex digest of the UTF-8 description: one incident per distinct description."""
    data = description.encode("utf-8", "surrogatepass")  # lone surrogates still get a key
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _v2_payload(
    summary: str | None,
    source: str,
    severity: str,
    *,
    timestamp: datetime | str | None,
    component: str | None,
    group: str | None,
    event_class: str | None,
    details: dict[str, Any] | None,
) -> dict[str, Any]:
    """An Events API v2 trigger's payload; a severity PagerDuty does not know is refused."""
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, got {severity!r}")
    return drop_none({
        "summary": summary,
        "source": source,
        "severity": severity,
        "timestamp": iso_timestamp(timestamp),
        "component": component,
        "group": group,
        "class": event_class,
        "custom_details": details,
    })


def _v1_contexts(
    links: list[dict[str, str]] | None, images: list[dict[str, str]] | None
) -> list[dict[str, str]] | None:
    """Links and images as the Generic API (v1) carries them: typed `contexts`."""
    contexts = [{"type": "link", **link} for link in links or ()]
    contexts += [{"type": "image", **image} for image in images or ()]
    return contexts or None


class Alert(Resource):
    """An interface for interacting with PagerDuty alerts.

    Instantiate with a service API key (a unique id for the service you want to trigger an
    alert for). api="v1" (the default) talks to the Generic API (Events API v1) and needs that
    integration's key; api="v2" talks to Events API v2 and needs an Events API v2 key.
    """

    default_url = "https://events.pagerduty.com"

    def __init__(
        self,
        service_key: str,
        api: str = "v1",
        url: str = "https://events.pagerduty.com",
        source: str | None = None,
        severity: str = "critical",
        timeout: float = 10,
        retry_deadline: float = 60,
        session: requests.Session | None = None,
    ) -> None:
        if not isinstance(service_key, str) or not service_key.strip():
            raise ConfigurationException("service_key is required (the integration key)")
        if api not in APIS:
            raise ConfigurationException(f"api must be 'v1' or 'v2', got {api!r}")
        if severity not in SEVERITIES:
            raise ConfigurationException(f"severity must be one of {SEVERITIES}, got {severity!r}")
        super().__init__(url=url, timeout=timeout, retry_deadline=retry_deadline, session=session)
        self._service_key = service_key
        self.api = api
        self.source = source or socket.gethostname() or "unknown"
        self.severity = severity
        self.incident_key: str | None = None
        self.retry_statuses = THROTTLE_STATUSES[api]  # v1 answers 403 when throttled, v2 not

    @property
    def service_key(self) -> str:
        """The integration key (kept out of repr, messages and logs)."""
        return self._service_key

    def __repr__(self) -> str:
        return f"Alert(api={self.api!r}, key={mask_key(self._service_key)!r}, url={self.url!r})"

    @property
    def URL(self) -> str:  # noqa: N802 - the original package's name for it
        """The whole endpoint this Alert posts to, as the original package's Alert.URL."""
        return f"{self.url}/{_PATHS[self.api]}"

    def _secrets(self) -> tuple[str, ...]:
        return (self._service_key,)

    def _explain_invalid(self, detail: str) -> str:
        if not _KEY_ERROR.search(detail):
            return ""
        return (
            f" — key {mask_key(self._service_key)}: {_KEY_HINTS[self.api]} PagerDuty ties each key"
            " to its integration type: api='v1' needs a Generic API (Events API v1) integration"
            " key, api='v2' an Events API v2 integration key"
        )

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
        component: str | None = None,
        group: str | None = None,
        event_class: str | None = None,
        timestamp: datetime | str | None = None,
        links: list[dict[str, str]] | None = None,
        images: list[dict[str, str]] | None = None,
    ) -> dict[str, Any]:
        """Triggers a PagerDuty alert and remembers its key for acknowledge() and resolve().

        Without incident_key the key is the MD5 hex digest of the description (UTF-8), so the
        same description re-triggers the same incident. The keyword-only extras are Events API
        v2 payload fields; with api="v1" only links and images are sent (as v1 `contexts`).
        """
        if not isinstance(description, str) or not description.strip():
            raise InvalidEventException(
                "a trigger needs a description", errors=["description must not be empty or blank"]
            )
        key = incident_key or _default_key(description)
        self._check_key(key)
        summary = fit_summary(description)
        if self.api == "v1":
            event = {
                "service_key": self._service_key,
                "event_type": "trigger",
                "incident_key": key,
                "description": summary,
                "details": details,
                "client": client, "client_url": client_url,
                "contexts": _v1_contexts(links, images),
            }
        else:
            payload = _v2_payload(
                summary, source or self.source, self.severity if severity is None else severity,
                timestamp=timestamp, component=component, group=group, event_class=event_class,
                details=details,
            )
            event = {
                "routing_key": self._service_key,
                "event_action": "trigger",
                "dedup_key": key,
                "payload": payload,
                "client": client,
                "client_url": client_url,
                "links": links,
                "images": images,
            }
        body = fit_body(drop_none(event))
        # Remembered before sending: if the answer is lost, resolve() can still close it.
        self.incident_key = key
        return self.request("POST", _PATHS[self.api], body)

    def acknowledge(
        self,
        incident_key: str | None = None,
        description: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Acknowledges a PagerDuty alert (the last triggered one unless incident_key is given).

        With api="v2" only the key is sent: Events API v2 acknowledgements carry no payload,
        so description and details are not sent.
        """
        return self._follow_up("acknowledge", incident_key, description, details)

    def resolve(
        self,
        incident_key: str | None = None,
        description: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Resolves a PagerDuty alert (the last triggered one unless incident_key is given).

        With api="v2" only the key is sent: Events API v2 resolutions carry no payload,
        so description and details are not sent.
        """
        return self._follow_up("resolve", incident_key, description, details)

    def _follow_up(
        self,
        action: str,
        incident_key: str | None,
        description: str | None,
        details: dict[str, Any] | None,
    ) -> dict[str, Any]:
        key = incident_key or self.incident_key
        if not key:
            raise IncidentKeyException(
                f"no incident key to {action}: pass incident_key or trigger() first"
            )
        self._check_key(key)
        if self.api == "v1":
            event = {
                "service_key": self._service_key,
                "event_type": action,
                "incident_key": key,
                "description": fit_summary(description),
                "details": details,
            }
        else:
            event = {"routing_key": self._service_key, "event_action": action, "dedup_key": key}
        return self.request("POST", _PATHS[self.api], fit_body(drop_none(event)))

    def _check_key(self, key: Any) -> None:
        """Refuse keys PagerDuty would answer 400 to, before anything is sent."""
        name = "incident_key" if self.api == "v1" else "dedup_key"
        if not isinstance(key, str):
            raise refuse(f"{name} is a {type(key).__name__}, not a string")
        if len(key) > MAX_KEY_LENGTH:
            raise refuse(
                f"{name} is {len(key)} characters; PagerDuty accepts at most {MAX_KEY_LENGTH}"
            )
