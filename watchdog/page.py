"""What a page carries: the one place a trigger's custom_details are put together, and where
an event is made to fit PagerDuty's limits.

The state machine (watchdog.state) stays pure and knows only the result and the check's
own details; the runner's edge calls enrich() on the events a step produced, before they
are recorded (in the same transaction as the state), and gives it what the state machine
does not keep: the last few results and when the current run of failures began (History,
in memory, seeded from the state file at a start). Nothing here writes to disk.

Limits are met by cutting, never by refusing: the summary to 1024 characters, the body to
PagerDuty's 512 KB by cutting the largest details first, each cut marked.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from pagerduty_api._event import MAX_BODY_BYTES, MAX_SUMMARY_LENGTH
from pagerduty_api._transport import encode_json, truncate
from watchdog.durations import format_duration
from watchdog.model import TRIGGER, Check, CheckState, Event, ProbeResult

RECENT = 5  # results a page lists
RECENT_SUMMARY_CHARS = 200  # of each of them
ENVELOPE_BYTES = 2048  # routing and dedup keys, action, client, JSON framing: with room
MIN_DETAILS_BYTES = 4096  # what links and images must leave for the details
CUT_MARK = "cut_to_fit"  # the details key that lists what was cut
_MAX_ROUNDS = 64


def iso_utc(epoch: float) -> str:
    """ISO 8601 in UTC to the second, as PagerDuty and its users read times."""
    moment = dt.datetime.fromtimestamp(epoch, dt.timezone.utc).replace(microsecond=0)
    return moment.isoformat().replace("+00:00", "Z")


class History:
    """Per check, the last RECENT results (at, ok, summary) and when its current run of
    failures began; in memory only: observe() is on every result's path and writes nothing."""

    def __init__(self, keep: int = RECENT) -> None:
        self.keep = keep
        self._recent: dict[str, deque[tuple[float, bool, str]]] = {}
        self._failing_since: dict[str, float] = {}

    def seed(self, name: str, last_result: Mapping[str, Any] | None, last_at: float | None,
             failing_since: float | None) -> None:
        """What the state file remembers of a check from the last run (at a start)."""
        if last_result is not None and last_at is not None:
            self.observe(name, ProbeResult(ok=bool(last_result.get("ok")),
                                           summary=str(last_result.get("summary", ""))), last_at)
        if failing_since is not None:
            self._failing_since[name] = failing_since

    def observe(self, name: str, result: ProbeResult, at: float) -> None:
        recent = self._recent.get(name)
        if recent is None:
            recent = self._recent[name] = deque(maxlen=self.keep)
        summary = result.summary
        if len(summary) > RECENT_SUMMARY_CHARS:
            summary = truncate(summary, RECENT_SUMMARY_CHARS)
        recent.append((at, result.ok, summary))
        if result.ok:
            self._failing_since.pop(name, None)
        elif name not in self._failing_since:
            self._failing_since[name] = at

    def forget(self, name: str) -> None:
        self._recent.pop(name, None)
        self._failing_since.pop(name, None)

    def recent(self, name: str) -> list[dict[str, Any]]:
        """The last results, newest first, as a page shows them."""
        return [{"at": iso_utc(at), "ok": ok, "summary": summary}
                for at, ok, summary in reversed(self._recent.get(name, ()))]

    def failing_since(self, name: str) -> float | None:
        return self._failing_since.get(name)


def custom_details(details: Mapping[str, Any], check: Check, state: CheckState,
                   history: History, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A trigger's custom_details: the probe's result fields and the check's `details` (as
    the state machine merged them), then what on-call needs to judge it: failing since
    (ISO 8601 UTC, and how many results in a row), where the check is defined, its interval
    and fail_after, the last results, then `extra` (sections others add: diagnosis,
    remediation). A key the probe or the config already set is never overwritten."""
    out = dict(details)
    since = history.failing_since(check.name)
    context: dict[str, Any] = {
        "failing_since": iso_utc(since) if since is not None else None,
        "failing_results": state.failures,
        "origin": check.origin,
        "interval": format_duration(check.interval),
        "fail_after": check.fail_after,
        "recent_results": history.recent(check.name),
        **(extra or {}),
    }
    for key, value in context.items():
        if value is not None and value != "":
            out.setdefault(key, value)
    return out


def enrich(events: Iterable[Event], check: Check, state: CheckState, history: History,
           extra: Mapping[str, Any] | None = None) -> list[Event]:
    """The events with what a page carries: a trigger gets the full custom_details and the
    check's component, group, class, links and images; every event is made to fit."""
    out = []
    for event in events:
        if event.action == TRIGGER:
            page = check.page
            event = replace(
                event, details=custom_details(event.details, check, state, history, extra),
                component=page.component, group=page.group, event_class=page.event_class,
                links=[dict(link) for link in page.links],
                images=[dict(image) for image in page.images])
        out.append(fit(event))
    return out


# ------------------------------------------------------------------------ limits


def _size(value: Any) -> int:
    return len(encode_json(value))


def fit(event: Event, limit: int = MAX_BODY_BYTES) -> Event:
    """The event within PagerDuty's limits: summary <= 1024 characters, the whole body
    <= `limit` bytes (images, then links, dropped only when they alone leave the details no
    room), details cut largest first. Never raises."""
    summary = truncate(event.summary, MAX_SUMMARY_LENGTH)
    links, images = list(event.links), list(event.images)

    def rest() -> int:
        shell = [summary, event.source, event.incident_key, event.severity, event.component,
                 event.group, event.event_class, links, images]
        return _size(shell) + ENVELOPE_BYTES

    while (images or links) and limit - rest() < MIN_DETAILS_BYTES:
        (images or links).pop()
    details = fit_details(event.details, limit - rest())
    if (summary is event.summary and details is event.details and len(links) == len(event.links)
            and len(images) == len(event.images)):
        return event
    return replace(event, summary=summary, details=details, links=links, images=images)


def fit_details(details: Mapping[str, Any], budget: int) -> dict[str, Any]:
    """`details` in at most `budget` bytes of JSON: the largest field cut first (text kept
    from its start, lists to their first items, mappings field by field), each cut marked,
    and the cut fields named under CUT_MARK."""
    if not isinstance(details, dict):
        details = {"details": details}
    size = _size(details)
    if size <= budget:
        return details
    out, original = dict(details), size
    sizes = {key: _size(value) for key, value in out.items()}
    cut: list[str] = []
    for _ in range(_MAX_ROUNDS):
        over = size - budget
        if over <= 0:
            return out
        key = max(sizes, key=sizes.__getitem__)
        if key == CUT_MARK or sizes[key] < 64:
            break  # nothing large is left to cut
        out[key] = _cut(out[key], max(0, sizes[key] - over - 64))
        sizes[key] = _size(out[key])
        if key not in cut:
            cut.append(key)
        out[CUT_MARK] = _cut_note(cut, original)
        sizes[CUT_MARK] = _size(out[CUT_MARK])
        size = _size(out)
    if size <= budget:
        return out
    fallback = {CUT_MARK: f"all details cut: {original} bytes is more than PagerDuty's "
                          "limit leaves room for"}
    return fallback if _size(fallback) <= budget else {}


def _cut_note(keys: list[str], size: int) -> str:
    named = ", ".join(str(key)[:64] for key in keys[:10])
    more = f" and {len(keys) - 10} more" if len(keys) > 10 else ""
    return f"{named}{more} (details were {size} bytes; PagerDuty takes {MAX_BODY_BYTES} in all)"


def _cut(value: Any, target: int) -> Any:
    """`value` in about `target` bytes of JSON or fewer."""
    if target < 64:
        return f"[cut: {_size(value)} bytes]"
    if isinstance(value, str):
        return _cut_text(value, target)
    if isinstance(value, dict):
        return fit_details(value, target)
    if isinstance(value, list | tuple):
        return _cut_list(list(value), target)
    return f"[cut: {_size(value)} bytes]"


def _cut_text(text: str, target: int) -> str:
    keep = min(len(text), target)
    while keep > 0:
        mark = f"… [cut: {len(text) - keep} of {len(text)} characters]"
        candidate = text[:keep] + mark
        size = _size(candidate)
        if size <= target:
            return candidate
        keep = max(0, keep - max(size - target, keep // 8, 1))
    return f"[cut: {len(text)} characters]"


def _cut_list(items: list[Any], target: int) -> list[Any]:
    kept: list[Any] = []
    used = 2 + 48  # the brackets and the marker
    for item in items:
        size = _size(item) + 1
        if used + size > target:
            break
        kept.append(item)
        used += size
    if len(kept) < len(items):
        kept.append(f"… [cut: {len(items) - len(kept)} more items]")
    return kept
