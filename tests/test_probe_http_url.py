"""The http probe's URL split: the fast path for plain URLs (request._PLAIN_URL) and
urlsplit agree on every URL, the Target or the error alike. Pure: no network."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchdog.probes.http import request
from watchdog.probes.http.request import _Target

# the characters that decide which path a URL takes, and what each path does with it
_TRICKY = "aZ09.-_~!$&'()*+,;=:@%/?#[] \t\r\nÄé\u3000"
_HOSTS = st.sampled_from(["example.com", "EXAMPLE.com", "127.0.0.1", "a..b", "-x", "h.",
                          "1.2.3", "x" * 64 + ".com", "[::1]", "ex_ample", "bücher.de", ""])
_PORTS = st.sampled_from(["", ":", ":0", ":80", ":443", ":0080", ":8443", ":65535", ":65536",
                          ":99999", ":1:2", ":x"])


def _outcome(split, url: str):
    try:
        target = split(url)
    except ValueError as exc:
        return "error", str(exc)
    return tuple(getattr(target, name) for name in _Target.__slots__)


def _same_both_ways(url: str) -> None:
    assert _outcome(_Target.from_url, url) == _outcome(_Target.from_split, url), url


@settings(max_examples=1500, deadline=None)
@given(scheme=st.sampled_from(["http://", "https://", "HTTP://", "ftp://", "http:/", ""]),
       host=_HOSTS, port=_PORTS, rest=st.text(_TRICKY, max_size=24))
def test_the_fast_path_and_urlsplit_agree(scheme, host, port, rest):
    _same_both_ways(f"{scheme}{host}{port}{rest}")
    _same_both_ways(f"{scheme}{host}{port}/{rest}")


@settings(max_examples=1500, deadline=None)
@given(scheme=st.sampled_from(["http://", "https://"]), host=_HOSTS, port=_PORTS,
       path=st.text("aZ09.-_~!$&'()*+,;=:@%/", max_size=20),
       query=st.none() | st.text("aZ09.-_~!$&'()*+,;=:@%/?", max_size=12))
def test_they_agree_where_the_fast_path_applies(scheme, host, port, path, query):
    """URLs made of what the fast path takes: most of these go through it."""
    url = f"{scheme}{host}{port}/{path}" + ("" if query is None else f"?{query}")
    _same_both_ways(url)


@settings(max_examples=500, deadline=None)
@given(st.text(_TRICKY, max_size=40))
def test_they_agree_on_any_text(text):
    _same_both_ways(text)
    _same_both_ways("http://" + text)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:9/ab/0/4/0", "https://Example.COM/health?full=1&x=%20y",
    "http://h:0080/", "http://h/p?", "https://h:443/a/b:c@d", "http://h.:9/x?y?z",
])
def test_plain_urls_take_the_fast_path(url, monkeypatch):
    expected = _outcome(_Target.from_split, url)
    monkeypatch.setattr(request, "urlsplit", None)  # the fast path must not need it
    assert _outcome(_Target.from_url, url) == expected


@pytest.mark.parametrize("url, says", [
    ("http://h:65536/", "is not a valid URL (Port out of range 0-65535)"),
    ("http://u:p@h/", "credentials in the URL are not supported; use headers.Authorization"),
    ("http://a..b/", "has an invalid host name: a..b"),
    ("ftp://h/", "must start with http:// or https://"),
])
def test_what_the_fast_path_refuses_is_said_as_before(url, says):
    assert _outcome(_Target.from_url, url) == ("error", says)
