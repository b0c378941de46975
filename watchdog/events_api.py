"""How an Event becomes a call on an Alert, and how a failed call is told to a person."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from pagerduty_api._transport import redact
from pagerduty_api.exceptions import InvalidEventException, PagerDutyAPIServerException
from watchdog.model import CHANGE, RESOLVE, TRIGGER, Event

CLIENT_NAME = "pd-watchdog"
MAX_ERROR_CHARS = 500  # of an error kept in the outbox / a dead letter's reason


def send_event(alert: Any, event: Event) -> Any:
    """trigger() or resolve() on the Alert (or the dry run's LoggingAlert)."""
    if event.action == TRIGGER:
        return alert.trigger(
            description=event.summary,
            incident_key=event.incident_key,
            details=_details(alert, event),
            client=CLIENT_NAME,
            severity=event.severity,
            source=event.source,
            component=event.component or None,
            group=event.group or None,
            event_class=event.event_class or None,
            links=list(event.links) or None,
            images=list(event.images) or None,
        )
    if event.action == RESOLVE:
        return alert.resolve(
            incident_key=event.incident_key, description=event.summary, details=event.details
        )
    if event.action == CHANGE:
        return send_change(alert, event)
    raise InvalidEventException(
        f"unknown event action {event.action!r}", errors=[f"unknown action {event.action!r}"]
    )


def _details(alert: Any, event: Event) -> dict[str, Any]:
    """The details as sent: v1 has no component/group/class fields, so they go in here
    (its links and images go as contexts: the client does that)."""
    if getattr(alert, "api", "v2") != "v1":
        return event.details
    fields = {"component": event.component, "group": event.group, "class": event.event_class}
    extra = {key: value for key, value in fields.items() if value and key not in event.details}
    return {**extra, **event.details} if extra else event.details


def send_change(client: Any, event: Event) -> Any:
    """send() on the ChangeEvent (or the dry run's LoggingAlert). Without one (api: v1, or a
    row queued before the key changed) PagerDuty could never take it: refused for good."""
    if not callable(getattr(client, "send", None)):
        reason = "change events need api v2 (a routing key of an Events API v2 integration)"
        raise InvalidEventException(reason, errors=[reason])
    when = None
    if event.timestamp is not None:
        when = datetime.fromtimestamp(event.timestamp, timezone.utc)
    return client.send(event.summary, source=event.source or None,
                       links=[dict(link) for link in event.links] or None,
                       custom_details=event.details or None, timestamp=when)


def describe_error(alert: Any, exc: BaseException, *, invalid: bool) -> str:
    """The failure as stored with the event and logged: bounded, the routing key masked."""
    if invalid:
        # The client's message carries PagerDuty's errors and, for a key of the wrong kind,
        # the hint that says so; the operator needs both.
        text = str(exc) or "; ".join(str(error) for error in getattr(exc, "errors", []))
    elif isinstance(exc, PagerDutyAPIServerException):
        text = str(exc)  # the client's own words say what PagerDuty answered
    else:
        text = f"{type(exc).__name__}: {exc}"
    key = getattr(alert, "service_key", None) or getattr(alert, "routing_key", None)
    if isinstance(key, str):
        text = redact(text, [key])
    return text[:MAX_ERROR_CHARS]
