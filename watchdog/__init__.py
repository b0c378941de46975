"""pd-watchdog: checks declared in YAML, paged through PagerDuty."""

__version__ = "0.1.0"
