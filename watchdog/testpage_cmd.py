"""`pd-watchdog test-page CONFIG [NAME]`: prove the path to PagerDuty works, end to end.

It sends a real trigger through the configured `pagerduty` settings, prints what PagerDuty
answered, waits, and resolves it. With NAME it runs that check's probe once and sends the
page the runner would send now (built by the same functions), marked as a test, under the
check's incident key plus "-test" so it never touches the real incident. It opens neither
the state file nor the outbox: a running runner is not disturbed.
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import socket
import sys
import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from pagerduty_api._transport import SEVERITIES, mask_key
from watchdog import logs
from watchdog.durations import format_duration, parse_duration

if TYPE_CHECKING:  # what sends and probes is imported by the command, not by every start
    from pagerduty_api import Alert
    from pagerduty_api.exceptions import InvalidEventException, PagerDutyAPIServerException
    from watchdog.model import Check, Event

DEFAULT_WAIT = 10.0  # seconds before the resolve when stdin is no terminal
SEND_TIMEOUT = 10.0  # seconds one request may take (one attempt: the answer is the point)
MAX_KEY = 255
TEST_MARK = "[test page] "


def add_parser(sub: Any) -> argparse.ArgumentParser:
    page = sub.add_parser(
        "test-page", help="send a real test page to PagerDuty, then resolve it",
        description="Send a trigger through CONFIG's pagerduty settings, print PagerDuty's "
        "answer, wait (--resolve-after, or Enter on a terminal), then resolve it. With NAME, "
        "run that check's probe once and send the page it would send now, marked as a test "
        "(its incident key + \"-test\"). Never touches the runner's state or outbox. Exit 1 "
        "when PagerDuty refuses or cannot be reached, saying why.")
    page.add_argument("config", metavar="CONFIG")
    page.add_argument("name", metavar="NAME", nargs="?", help="send this check's page")
    page.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    page.add_argument("--severity", choices=SEVERITIES, default=None,
                      help="the test page's severity (default: the check's; without NAME "
                      "critical, as a real page)")
    page.add_argument("--resolve-after", metavar="DURATION", default=None,
                      help=f"resolve after this long (default: Enter on a terminal, else "
                      f"{format_duration(DEFAULT_WAIT)})")
    page.set_defaults(func=cmd_test_page)
    return page


def cmd_test_page(args: argparse.Namespace) -> int:
    from pagerduty_api import Alert
    from pagerduty_api.base import deadline_session
    from watchdog import cli
    from watchdog.model import RESOLVE, Event

    wait = _wait_of(args.resolve_after)
    if isinstance(wait, str):
        return _fail(wait, 2)
    config = cli.load_config(args.config)
    if config is None:
        return 1
    pd = config.pagerduty
    if not pd.routing_key:
        return _fail("no routing key in the pagerduty settings: nothing to send a test page "
                     "to (set pagerduty.routing_key, or routing_key_file)")
    check = None
    if args.name is not None:
        check = _find(config.checks, args.name)
        if check is None:
            names = [c.name for c in config.checks]
            close = difflib.get_close_matches(args.name, names, n=1)
            hint = f"did you mean {close[0]!r}?" if close else \
                "`pd-watchdog validate` lists the checks"
            return _fail(f"no such check: {args.name!r} — {hint}", 2)
    event = _check_event(check, config.secrets) if check else _plain_event(pd.source)
    if args.severity:
        event = replace(event, severity=args.severity)
    key = mask_key(pd.routing_key)
    say = _printer(config.secrets)
    say(f"test page: {event.summary}")
    if not args.yes and not _confirm(f"Send a test page to {pd.url} (api {pd.api}) with key "
                                     f"{key}? [y/N] "):
        say("not sent")
        return 1
    statuses: list[int] = []
    session = deadline_session()
    session.hooks["response"].append(lambda response, *_, **__: statuses.append(
        response.status_code))
    alert = Alert(pd.routing_key, api=pd.api, url=pd.url, source=pd.source,
                  timeout=SEND_TIMEOUT, retry_deadline=0, session=session)
    try:
        if not _send(alert, event, statuses, say, pd.api):
            return 1
        _wait(wait, say)
        resolve = Event(RESOLVE, event.incident_key, event.check,
                        f"{event.summary} (test over)", event.severity, event.source)
        return 0 if _send(alert, resolve, statuses, say, pd.api) else 1
    finally:
        session.close()


def _wait_of(text: str | None) -> float | None | str:
    """Seconds to wait (None: Enter), or why --resolve-after is wrong."""
    if text is None:
        return None if sys.stdin.isatty() else DEFAULT_WAIT
    try:
        return 0.0 if text.strip() in ("0", "0s") else parse_duration(text, 0.001)
    except ValueError as exc:
        return f"--resolve-after {text!r}: {exc}"


def _find(checks: tuple[Check, ...], name: str) -> Check | None:
    return next((check for check in checks if check.name == name), None)


def _plain_event(source: str) -> Event:
    from watchdog.model import TRIGGER, Event
    from watchdog.page import iso_utc

    now = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    host = socket.gethostname() or "localhost"
    return Event(TRIGGER, f"pd-watchdog-test-page-{host}-{stamp}"[:MAX_KEY], "test-page",
                 f"{TEST_MARK}pd-watchdog on {source}: the path to PagerDuty works",
                 "critical", source, {"test_page": True, "sent_at": iso_utc(now)})


def _check_event(check: Check, secrets: frozenset[str]) -> Event:
    """The page `check` would send now: its probe run once (its timeout bounds it), the
    event built by the runner's own functions, marked as a test, under a key of its own."""
    from watchdog.model import CheckState, Policy, ProbeResult
    from watchdog.page import History, enrich, fit
    from watchdog.probes.base import run_once
    from watchdog.reporting import mask_result
    from watchdog.state import trigger_of

    started = time.time()
    try:
        result = run_once(check.probe, check.timeout)
    except Exception as exc:  # a probe must never raise; if one does, that is the news
        result = ProbeResult(ok=False, summary=f"the probe raised {type(exc).__name__}: {exc}")
    if result is None:  # a passive check: nothing to judge without the runner's reports
        result = ProbeResult(ok=False, summary="passive check: no report judged (test page)")
    result = mask_result(result, secrets)
    note = "passing now; this is what its page looks like" if result.ok else "failing now"
    print(f"{check.name}: {note}: {logs.mask(result.summary, secrets)}")
    shown = replace(result, severity=None) if result.ok else result
    history = History()
    history.observe(check.name, result, started)
    event = trigger_of(Policy.of(check), shown)
    state = CheckState(failures=0 if result.ok else 1)
    (event,) = enrich([event], check, state, history,
                      {"test_page": "sent by pd-watchdog test-page, not by a failing check"})
    return fit(replace(event, incident_key=test_key(check.incident_key),
                       summary=TEST_MARK + event.summary))


def test_key(incident_key: str) -> str:
    """The check's key + "-test": it can never close or re-open the check's real incident."""
    key = f"{incident_key}-test"
    if len(key) <= MAX_KEY:
        return key
    return "pd-watchdog-test/" + hashlib.sha256(incident_key.encode()).hexdigest()


def _confirm(question: str) -> bool:
    sys.stdout.write(question)
    sys.stdout.flush()
    answer = sys.stdin.readline()
    if not sys.stdin.isatty():  # a terminal echoed the answer; a pipe did not
        sys.stdout.write(answer if answer.endswith("\n") else answer + "\n")
    return answer.strip().lower() in ("y", "yes")


def _send(alert: Alert, event: Event, statuses: list[int], say: Any, api: str) -> bool:
    """One attempt; prints PagerDuty's answer, or why it refused; True when accepted."""
    from pagerduty_api.exceptions import InvalidEventException, PagerDutyAPIServerException
    from watchdog.events_api import send_event

    before = len(statuses)
    try:
        answer = send_event(alert, event)
    except InvalidEventException as exc:
        where = _status(statuses, before, exc).rstrip(": ") or "before sending"
        say(f"{event.action}: refused ({where}): PagerDuty does not take this event")
        for error in exc.errors or [str(exc)]:
            say(f"  error: {error}")
        hint = key_hint(alert, exc, api)
        if hint:
            say(hint)
        return False
    except PagerDutyAPIServerException as exc:
        say(f"{event.action}: failed: {_status(statuses, before, exc)}{_failure(exc, api)}")
        return False
    status = statuses[-1] if len(statuses) > before else "?"
    key = answer.get("dedup_key") or answer.get("incident_key") or event.incident_key
    say(f"{event.action}: PagerDuty answered HTTP {status}: {answer.get('status', '')}, "
        f"{answer.get('message', '')} (key {key})")
    return True


def _status(statuses: list[int], before: int, exc: PagerDutyAPIServerException) -> str:
    code = statuses[-1] if len(statuses) > before else exc.status_code
    return f"HTTP {code}: " if code else ""


def _failure(exc: PagerDutyAPIServerException, api: str) -> str:
    if exc.status_code is None:
        return f"PagerDuty cannot be reached: {exc}"
    if exc.status_code == 429 or (api == "v1" and exc.status_code == 403):
        return f"throttled: PagerDuty takes about 120 events a minute per key; try later ({exc})"
    return str(exc)


def key_hint(alert: Alert, exc: InvalidEventException, api: str) -> str | None:
    """Which key is wrong, and how, from PagerDuty's errors and the key's shape."""
    said = " ".join(exc.errors).lower()
    if "key" not in said:
        return None
    shown = mask_key(alert.service_key)
    if api == "v2":
        return (f"routing key {shown} is not an Events API v2 integration key PagerDuty knows; "
                "if it is a Generic API (v1) service key, set pagerduty.api: v1 — else copy "
                "the Integration Key of the service's Events API v2 integration")
    return (f"service key {shown} is not a Generic API (v1) integration key PagerDuty knows; "
            "if it is an Events API v2 routing key, set pagerduty.api: v2 (the default)")


def _wait(seconds: float | None, say: Any) -> None:
    """Until the resolve is due: `seconds`, or Enter; Ctrl-C resolves at once."""
    try:
        if seconds is None:
            say("the test incident is open; press Enter to resolve it")
            sys.stdin.readline()
        elif seconds > 0:
            say(f"the test incident is open; resolving it in {format_duration(seconds)} "
                "(Ctrl-C: now)")
            threading.Event().wait(seconds)
    except KeyboardInterrupt:
        say("")


def _printer(secrets: frozenset[str]) -> Any:
    def say(line: str) -> None:
        print(logs.mask(line, secrets), flush=True)

    return say


def _fail(message: str, code: int = 1) -> int:
    print(f"pd-watchdog test-page: {message}", file=sys.stderr)
    return code
