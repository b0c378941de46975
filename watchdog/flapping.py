"""Flap detection as Nagios does it: percent state change over the last results, weighted
toward the recent ones, with a high threshold to start flapping and a low one to stop.

Pure arithmetic on a history string ("1" a pass, "0" a failure, oldest first), so the state
machine can keep the history in its (stored) state and a restart changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

# Nagios weighs the oldest state change 0.75 and the newest 1.25 (flapping.c).
LOW_WEIGHT = 0.75
HIGH_WEIGHT = 1.25


@dataclass(frozen=True)
class Flapping:
    """A check's flap detection: `window` results, thresholds in percent."""

    window: int = 21
    high: float = 50.0
    low: float = 25.0


def remember(history: str, ok: bool, window: int) -> str:
    """The history with one more result, keeping the last `window`."""
    return (history + ("1" if ok else "0"))[-window:]


def state_changes(history: str) -> int:
    """How many times the result flipped within the history (unweighted)."""
    return sum(history[i] != history[i - 1] for i in range(1, len(history)))


def percent_state_change(history: str, window: int) -> float:
    """Weighted percent of state changes among the last `window` results (0..100).

    A history shorter than the window counts as if padded with no changes at the old end,
    as Nagios's history starts filled with the first state: a new check cannot flap on its
    first few results.
    """
    if window < 3:
        raise ValueError("a flapping window needs at least 3 results")
    transitions = window - 1
    offset = window - len(history)  # the missing, oldest, unchanged positions
    total = 0.0
    for index in range(1, len(history)):
        if history[index] != history[index - 1]:
            position = offset + index - 1  # 0 = the oldest transition in the window
            total += LOW_WEIGHT + (HIGH_WEIGHT - LOW_WEIGHT) * position / (transitions - 1)
    return total * 100.0 / transitions
