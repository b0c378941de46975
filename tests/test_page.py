"""watchdog/page.py and the placeholders: what a trigger's custom_details carry, the
History that feeds them, old outbox rows, and (property tests) that placeholder filling
is exact and that any details fit PagerDuty's limits without raising."""

from __future__ import annotations

import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pagerduty_api import Alert
from pagerduty_api._event import MAX_BODY_BYTES
from pagerduty_api._transport import encode_json
from watchdog.config.page import PLACEHOLDERS, escape, fill, template_problem
from watchdog.events_api import send_event
from watchdog.model import RESOLVE, TRIGGER, Check, CheckState, Event, Page, ProbeResult
from watchdog.page import CUT_MARK, History, custom_details, enrich, fit, fit_details, iso_utc

KEY = "0123456789abcdef0123456789abcdef"
VALUES = {"name": "we{b}", "source": "h}{ost", "host": "box", "incident_key": "k/{name}"}
T0 = 1_764_633_600.0  # 2025-12-02T00:00:00Z


class _Nothing:
    def run(self, timeout: float) -> ProbeResult:
        return ProbeResult(ok=True, summary="fine")


def check(**page) -> Check:
    return Check(name="web", kind="http", probe=_Nothing(), interval=30.0, fail_after=3,
                 incident_key="pd-watchdog/box/web", source="box.example.com",
                 origin="checks/web.yaml:4", page=Page(**page))


def trigger(details=None, summary="web: connection refused") -> Event:
    return Event(TRIGGER, "pd-watchdog/box/web", "web", summary, "critical",
                 "box.example.com", details or {})


# ------------------------------------------------------------------ custom_details


def test_a_trigger_carries_failing_since_origin_interval_and_the_last_results():
    history = History()
    history.observe("web", ProbeResult(ok=True, summary="200 OK"), T0)
    for n in range(1, 7):
        history.observe("web", ProbeResult(ok=False, summary=f"refused {n}"), T0 + 30 * n)
    (event,) = enrich([trigger({"status": 503, "interval": "mine"})],
                      check(component="nginx", group="web", event_class="http",
                            links=({"href": "https://wiki/web", "text": "Runbook"},)),
                      CheckState(failures=6, triggered=True), history)
    assert event.details == {
        "status": 503,
        "interval": "mine",  # a key the probe or the config set is never overwritten
        "failing_since": "2025-12-02T00:00:30Z",
        "failing_results": 6,
        "origin": "checks/web.yaml:4",
        "fail_after": 3,
        "recent_results": [
            {"at": iso_utc(T0 + 30 * n), "ok": False, "summary": f"refused {n}"}
            for n in (6, 5, 4, 3, 2)
        ],
    }
    assert (event.component, event.group, event.event_class) == ("nginx", "web", "http")
    assert list(event.links) == [{"href": "https://wiki/web", "text": "Runbook"}]


def test_extra_sections_are_added_and_a_resolve_is_left_as_it_was():
    history = History()
    resolve = Event(RESOLVE, "k", "web", "web: recovered: ok", "critical", "box", {"a": 1})
    events = enrich([trigger(), resolve], check(component="nginx"), CheckState(failures=3),
                    history, {"diagnosis": {"output": "nginx: worker died"}})
    assert events[0].details["diagnosis"] == {"output": "nginx: worker died"}
    assert "failing_since" not in events[0].details  # nothing known: said by omission
    assert events[1] is resolve


def test_history_forgets_a_run_of_failures_at_a_pass_and_is_seeded_after_a_restart():
    history = History()
    history.observe("web", ProbeResult(ok=False, summary="x" * 500), T0)
    history.observe("web", ProbeResult(ok=False, summary="y"), T0 + 1)
    assert history.failing_since("web") == T0
    assert len(history.recent("web")[1]["summary"]) == 200  # each summary bounded
    history.observe("web", ProbeResult(ok=True, summary="ok"), T0 + 2)
    assert history.failing_since("web") is None
    history.forget("web")
    assert history.recent("web") == []
    history.seed("web", {"ok": False, "summary": "refused"}, T0 + 9, T0)
    assert history.failing_since("web") == T0
    assert history.recent("web") == [{"at": iso_utc(T0 + 9), "ok": False, "summary": "refused"}]


def test_custom_details_for_a_check_with_no_history():
    details = custom_details({}, check(), CheckState(), History())
    assert details == {"failing_results": 0, "origin": "checks/web.yaml:4", "interval": "30s",
                       "fail_after": 3, "recent_results": []}


# ------------------------------------------------------------------ outbox rows


def test_old_outbox_rows_still_read_and_new_fields_are_left_out_when_empty():
    old_row = {"action": "trigger", "incident_key": "k", "check": "web", "summary": "s",
               "severity": "critical", "source": "box", "details": {"a": 1}}
    event = Event.from_dict(old_row)
    assert event.to_dict() == old_row
    full = Event(**old_row, component="c", links=[{"href": "https://x"}])
    assert full.to_dict() == {**old_row, "component": "c", "links": [{"href": "https://x"}]}
    assert Event.from_dict(full.to_dict()) == full


# ------------------------------------------------------------------ limits


def _sent_body(event: Event, api: str = "v2") -> dict:
    """The body the real client would post for `event` (its request() captured)."""
    alert = Alert(KEY, api=api, url="http://127.0.0.1:9")
    bodies: list[dict] = []
    alert.request = lambda method, path, body: bodies.append(body) or {}
    send_event(alert, event)
    return bodies[0]


def test_the_largest_details_are_cut_first_and_marked():
    details = {"output": "o" * 700_000, "exit_code": 2, "perfdata": "used=99%"}
    event = fit(trigger(details, summary="s" * 5000))
    assert len(event.summary) == 1024 and event.summary.endswith("… [truncated]")
    assert event.details["exit_code"] == 2 and event.details["perfdata"] == "used=99%"
    assert event.details["output"].startswith("ooo")
    assert event.details["output"].endswith("of 700000 characters]")
    assert event.details[CUT_MARK].startswith("output (details were ")
    body = _sent_body(event)
    assert len(encode_json(body)) <= MAX_BODY_BYTES
    assert body["payload"]["custom_details"]["exit_code"] == 2  # not the client's wholesale trim


def test_a_small_event_is_returned_as_it_is():
    event = trigger({"a": 1})
    assert fit(event) is event
    assert fit_details(event.details, 10_000) is event.details


def test_too_many_links_and_images_give_way_to_the_details():
    link = {"href": "https://x/" + "l" * 2000, "text": "t" * 1000}
    event = fit(Event(TRIGGER, "k", "c", "s", "critical", "h", {"a": "b" * 1000},
                      links=[link] * 200, images=[{"src": "https://i/" + "i" * 2000}] * 200))
    assert event.images == () and 0 < len(event.links) < 200
    assert event.details == {"a": "b" * 1000}
    assert len(encode_json(_sent_body(event))) <= MAX_BODY_BYTES


_pieces = st.text(min_size=1, max_size=6)
_big_text = st.builds(lambda piece, times: piece * times, _pieces, st.integers(0, 60_000))
_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), _big_text)
_value = st.recursive(
    _leaf, lambda inner: st.lists(inner, max_size=6) | st.dictionaries(
        st.text(max_size=8), inner, max_size=6), max_leaves=12)
_details = st.dictionaries(st.text(max_size=12), _value, max_size=8)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(details=_details, summary=st.text(min_size=1, max_size=3000),
       api=st.sampled_from(["v1", "v2"]))
def test_any_details_fit_pagerduty_without_raising(details, summary, api):
    event = fit(trigger(details, summary=summary if summary.strip() else "x"))
    body = _sent_body(event, api)
    assert len(encode_json(body)) <= MAX_BODY_BYTES
    sent = body["payload"]["custom_details"] if api == "v2" else body.get("details", {})
    assert "original_size_bytes" not in sent or "original_size_bytes" in details
    text = body["payload"]["summary"] if api == "v2" else body["description"]
    assert len(text) <= 1024


# ------------------------------------------------------------------ placeholders


@given(st.text())
def test_an_escaped_text_fills_to_itself(text):
    assert template_problem(escape(text)) is None
    assert fill(escape(text), VALUES) == text


_part = st.one_of(st.text(max_size=8).map(lambda s: ("text", s)),
                  st.sampled_from(PLACEHOLDERS).map(lambda name: ("name", name)))


@given(st.lists(_part, max_size=10))
def test_placeholders_are_replaced_and_their_values_never_read_as_templates(parts):
    template = "".join(escape(v) if kind == "text" else "{" + v + "}" for kind, v in parts)
    expected = "".join(v if kind == "text" else VALUES[v] for kind, v in parts)
    assert template_problem(template) is None
    assert fill(template, VALUES) == expected


@given(st.text(alphabet=string.printable + "{}{}{}é", max_size=40))
def test_any_text_is_either_a_template_or_a_clear_problem(text):
    problem = template_problem(text)
    if problem is None:
        fill(text, VALUES)  # a template validate let through always fills
    else:
        assert "{" in problem and ("placeholder" in problem or "brace" in problem
                                   or "format" in problem)


def test_an_unknown_placeholder_says_which_are_known():
    assert template_problem("{nmae}") == (
        "unknown placeholder {nmae} — did you mean {name}? known: {name}, {source}, {host}, "
        "{incident_key} ({{ for a literal brace)")
    assert template_problem("{x.y}").startswith("unknown placeholder {x.y} — known:")
