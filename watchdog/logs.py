"""Log lines for a terminal or for journald, with secrets masked before they are written."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable
from typing import Any

from pagerduty_api._transport import redact

_PRIORITY = {  # syslog priorities; journald reads a leading <N> as the line's level
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


# Each secret becomes its last 4 characters (nothing of one under 16), so a key can be
# recognised, not used. One function for all of pd-watchdog and its PagerDuty client: it lives
# in pagerduty_api, which must stay importable on its own; watchdog names it `mask`.
mask = redact


def mask_data(value: Any, secrets: Iterable[str]) -> Any:
    """mask() through nested dicts and lists: probe output can echo a secret it was given.

    Returns `value` itself when it holds no secret (the usual case, once per probe result):
    nothing is copied then."""
    if isinstance(value, str):
        return mask(value, secrets)
    if isinstance(value, dict):
        masked = None
        for key, item in value.items():
            new = mask_data(item, secrets)
            if new is not item:
                if masked is None:
                    masked = dict(value)
                masked[key] = new
        return value if masked is None else masked
    if isinstance(value, list | tuple):
        items = [mask_data(item, secrets) for item in value]
        if isinstance(value, list) and all(a is b for a, b in zip(items, value, strict=True)):
            return value
        return items
    return value


class _Formatter(logging.Formatter):
    def __init__(self, journald: bool, secrets: list[str]) -> None:
        fmt = "%(message)s" if journald else "%(asctime)s %(levelname)s %(message)s"
        super().__init__(fmt)
        self.journald = journald
        self.secrets = secrets

    def format(self, record: logging.LogRecord) -> str:
        text = mask(super().format(record), self.secrets)
        if self.journald:
            prefix = f"<{_PRIORITY.get(record.levelno, 6)}>"
            text = "\n".join(prefix + line for line in text.splitlines())
        return text


_secrets: list[str] = []


def setup(level: str = "INFO") -> None:
    """Log to stderr; under systemd (JOURNAL_STREAM set) without timestamps, with priorities."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter("JOURNAL_STREAM" in os.environ, _secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("urllib3", "schedule"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def add_secrets(secrets: Iterable[str]) -> None:
    """Mask these values in every log line from now on (longest first, so overlaps mask whole)."""
    merged = set(_secrets) | {s for s in secrets if s}
    _secrets[:] = sorted(merged, key=len, reverse=True)
