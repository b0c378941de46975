"""The page keys (component, group, class, links, images, runbook): validate's errors at
file:line, placeholders, how `defaults` and a check merge, and what they leave alone
(fingerprints, incident keys); the default source (the FQDN, bounded, never a query here)."""

from __future__ import annotations

import socket
import textwrap
import threading

import pytest

from watchdog.config import ConfigError, load
from watchdog.config.page import host_fqdn
from watchdog.model import Page


@pytest.fixture
def cfg(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("socket.gethostname", lambda: "box")

    def write(text: str) -> str:
        path = tmp_path / "w.yaml"
        path.write_text(textwrap.dedent(text))
        path.chmod(0o600)
        return "w.yaml"

    return write


def errors_of(path: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(path, environ={})
    return info.value.errors


def test_page_keys_fill_placeholders_and_runbook_comes_first(cfg):
    config = load(cfg("""
        pagerduty: {source: web-01.example.com}
        checks:
          - name: nginx
            command: "true"
            component: "{name}"
            group: "web on {host}"
            class: http
            runbook: "https://wiki.example.com/runbooks/{name}"
            links:
              - {href: "https://grafana.example.com/d/1?var-host={source}", text: Dashboard}
              - {href: "https://x.example.com/{incident_key}"}
            images:
              - {src: "https://grafana.example.com/render/{name}.png", alt: "{{literal}}"}
    """), environ={})
    (check,) = config.checks
    assert check.page == Page(
        component="nginx", group="web on box", event_class="http",
        links=({"href": "https://wiki.example.com/runbooks/nginx", "text": "Runbook"},
               {"href": "https://grafana.example.com/d/1?var-host=web-01.example.com",
                "text": "Dashboard"},
               {"href": "https://x.example.com/pd-watchdog/web-01.example.com/nginx"}),
        images=({"src": "https://grafana.example.com/render/nginx.png", "alt": "{literal}"},),
    )


def test_defaults_and_the_check_merge_key_by_key_lists_replaced(cfg):
    config = load(cfg("""
        pagerduty: {source: s}
        defaults:
          group: web
          component: default-component
          runbook: "https://wiki/{name}"
          links: [{href: "https://default/link"}]
          images: [{src: "https://default/img.png"}]
        checks:
          - name: own
            command: "true"
            component: mine
            links: [{href: "https://own/link", text: Own}]
          - name: cleared
            command: "true"
            links: []
            images: []
          - name: inherits
            command: "true"
    """), environ={})
    own, cleared, inherits = config.checks
    assert (own.page.component, own.page.group) == ("mine", "web")
    assert own.page.links == ({"href": "https://wiki/own", "text": "Runbook"},
                              {"href": "https://own/link", "text": "Own"})
    assert own.page.images == ({"src": "https://default/img.png"},)
    assert cleared.page.links == ({"href": "https://wiki/cleared", "text": "Runbook"},)
    assert cleared.page.images == ()
    assert inherits.page.links == ({"href": "https://wiki/inherits", "text": "Runbook"},
                                   {"href": "https://default/link"})


def test_unknown_placeholders_and_bad_values_are_errors_at_their_line(cfg):
    assert errors_of(cfg("""
        defaults:
          runbook: "https://wiki/{nmae}"
        checks:
          - name: a
            command: "true"
            component: "{oops"
            links:
              - {href: "https://x/{name}", text: "for {sorce}"}
              - {text: no href}
            images:
              - {src: "http://not-https/graph.png"}
            class: "{name!r}"
    """)) == [
        "w.yaml:3: defaults.runbook: unknown placeholder {nmae} — did you mean {name}? known: "
        "{name}, {source}, {host}, {incident_key} ({{ for a literal brace)",
        "w.yaml:7: checks[0].component: a lone { or } — write {{ or }} for a literal brace "
        "(placeholders: {name}, {source}, {host}, {incident_key})",
        "w.yaml:9: checks[0].links[0].text: unknown placeholder {sorce} — did you mean "
        "{source}? known: {name}, {source}, {host}, {incident_key} ({{ for a literal brace)",
        "w.yaml:10: checks[0].links[1]: href is required",
        "w.yaml:12: checks[0].images[0].src: must be an https:// URL (PagerDuty shows images "
        "served over HTTPS only), not 'http://not-https/graph.png'",
        "w.yaml:13: checks[0].class: {name} takes no format or conversion — write just {name} "
        "(known: {name}, {source}, {host}, {incident_key})",
    ]


def test_page_keys_are_no_part_of_the_fingerprint(cfg):
    base = "pagerduty: {source: s}\nchecks:\n  - name: a\n    command: 'true'\n"
    before = load(cfg(base), environ={}).checks[0]
    after = load(cfg(base + "    component: c\n    runbook: https://wiki/a\n"),
                 environ={}).checks[0]
    assert after.page.component == "c"
    assert after.fingerprint == before.fingerprint  # a new link restarts no counts


def test_the_fqdn_is_the_default_source_but_not_part_of_default_incident_keys(cfg, monkeypatch):
    host_fqdn.cache_clear()
    asked = []

    def resolver(host, *args, **kwargs):
        asked.append((host, kwargs.get("flags")))
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "box.example.com", ("127.0.0.1", 0))]

    monkeypatch.setattr("socket.getaddrinfo", resolver)
    config = load(cfg("checks:\n  - name: a\n    command: 'true'\n"), environ={})
    assert config.pagerduty.source == "box.example.com"
    (check,) = config.checks
    assert check.source == "box.example.com"
    assert check.incident_key == "pd-watchdog/box/a"  # as before: no incident is re-keyed
    assert asked == [("box", socket.AI_CANONNAME)]
    load("w.yaml", environ={})
    assert len(asked) == 1  # looked up once per process, not at every reload
    host_fqdn.cache_clear()


def test_the_fqdn_falls_back_to_the_hostname(monkeypatch):
    host_fqdn.cache_clear()
    answers = {"lo": "localhost.localdomain", "bad": OSError("no such name")}

    def resolver(host, *args, **kwargs):
        answer = answers[host]
        if isinstance(answer, Exception):
            raise answer
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, answer, ("127.0.0.1", 0))]

    monkeypatch.setattr("socket.getaddrinfo", resolver)
    assert host_fqdn("lo") == "lo"
    assert host_fqdn("bad") == "bad"
    host_fqdn.cache_clear()


def test_a_slow_lookup_is_cut_off_at_its_timeout(monkeypatch):
    host_fqdn.cache_clear()
    release = threading.Event()

    def hanging(host, *args, **kwargs):
        release.wait(5)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "late.example.com", ("127.0.0.1", 0))]

    monkeypatch.setattr("socket.getaddrinfo", hanging)
    try:
        assert host_fqdn("slow", timeout=0.05) == "slow"
    finally:
        release.set()
        host_fqdn.cache_clear()


def test_the_suite_guard_refuses_the_lookup_and_the_hostname_is_used(cfg):
    """In-process tests never query a resolver: the loopback guard refuses the name first."""
    host_fqdn.cache_clear()
    config = load(cfg("checks:\n  - name: a\n    command: 'true'\n"), environ={})
    assert config.pagerduty.source == "box"
    host_fqdn.cache_clear()
