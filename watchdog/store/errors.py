"""What the store raises: one exception an operator can act on, and its locked-out case."""

from __future__ import annotations


class StoreError(Exception):
    """The state store cannot be used; the message names the file and what to do."""


class StoreLocked(StoreError):
    """Another pd-watchdog run holds this state_dir."""
