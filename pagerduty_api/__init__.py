"""A PagerDuty Events client: Alert triggers, acknowledges and resolves (Events API v1 or v2);
ChangeEvent sends change events (the Change Events API)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# Local package imports
from pagerduty_api.exceptions import (
    ConfigurationException,
    IncidentKeyException,
    InvalidEventException,
    PagerDutyAPIServerException,
    PagerDutyException,
)
from pagerduty_api.retry import is_retryable
from pagerduty_api.version import __version__

if TYPE_CHECKING:
    from pagerduty_api.alert import Alert
    from pagerduty_api.change import ChangeEvent

__all__ = [
    "Alert",
    "ChangeEvent",
    "ConfigurationException",
    "IncidentKeyException",
    "InvalidEventException",
    "PagerDutyAPIServerException",
    "PagerDutyException",
    "__version__",
    "is_retryable",
]


def __getattr__(name: str) -> Any:
    """Alert and ChangeEvent on first use: they import requests (~0.15 s), which the
    submodules pd-watchdog reads without sending (masking, severities, retry rules) must not
    pay for."""
    if name == "Alert":
        from pagerduty_api.alert import Alert as found
    elif name == "ChangeEvent":
        from pagerduty_api.change import ChangeEvent as found
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = found  # asked once
    return found
