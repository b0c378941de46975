"""A PagerDuty Events client: Alert triggers, acknowledges and resolves (Events API v1 or v2)."""

# Local package imports
from pagerduty_api.alert import Alert
from pagerduty_api.exceptions import (
    ConfigurationException,
    IncidentKeyException,
    InvalidEventException,
    PagerDutyAPIServerException,
)
from pagerduty_api.version import __version__

__all__ = [
    "Alert",
    "ConfigurationException",
    "IncidentKeyException",
    "InvalidEventException",
    "PagerDutyAPIServerException",
    "__version__",
]
