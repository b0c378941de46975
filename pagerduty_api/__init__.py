"""A PagerDuty Events client: Alert triggers, acknowledges and resolves (Events API v1 or v2)."""

# Local package imports
from pagerduty_api.alert import Alert
from pagerduty_api.exceptions import (
    ConfigurationException,
    IncidentKeyException,
    InvalidEventException,
    PagerDutyAPIServerException,
    PagerDutyException,
)
from pagerduty_api.retry import is_retryable
from pagerduty_api.version import __version__

__all__ = [
    "Alert",
    "ConfigurationException",
    "IncidentKeyException",
    "InvalidEventException",
    "PagerDutyAPIServerException",
    "PagerDutyException",
    "__version__",
    "is_retryable",
]
