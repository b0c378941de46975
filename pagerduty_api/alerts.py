"""The original package's module name: `from pagerduty_api.alerts import Alert` keeps working.

Alert lives in pagerduty_api.alert; this module gives it, and the original's AlertTypes, under
the old import path for code and test suites written against the original `pagerduty-api`.
"""

from __future__ import annotations

# Local package imports
from pagerduty_api.alert import Alert

__all__ = ["Alert", "AlertTypes"]


class AlertTypes:
    """The Events API v1 event types, as the original package named them."""

    TRIGGER = "trigger"
    RESOLVE = "resolve"
    ACKNOWLEDGE = "acknowledge"
