"""DNS probe against a real DNS server on loopback (tests/dnsserver.py: dnslib, UDP and TCP):
records of every type, rcodes, truncation to TCP, and servers that hang, drip, flood,
send garbage or are not there."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from dnsserver import DnsServer, closed_port

from procs import pdw
from watchdog import aio
from watchdog.probes import dns
from watchdog.probes.base import OptionError, run_once
from watchdog.probes.dns import records

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(scope="module")
def server():
    made = DnsServer()
    yield made
    made.close()


@pytest.fixture(params=["uvloop", "asyncio"])
def loop(request, monkeypatch):
    monkeypatch.setenv("PD_WATCHDOG_EVENT_LOOP", request.param)
    if request.param == "uvloop" and aio.loop_name() != "uvloop":
        pytest.skip("uvloop is not installed")
    return request.param


def ask(server: DnsServer | None, name: str, kind: str = "A", timeout: float = 2, **options):
    spec = {"name": name, "type": kind, **options}
    if server is not None:
        spec["server"] = server.address
    return run_once(dns.parse({"dns": spec}, "."), timeout)


# --- answers ---------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "kind", "expect", "shown"), [
    ("a.test", "A", ["192.0.2.2", "192.0.2.1"], ["192.0.2.1", "192.0.2.2"]),
    ("v6.test", "AAAA", ["2001:0db8:0::1"], ["2001:db8::1"]),
    ("mx.test", "mx", ["10 Mail.TEST", "20 backup.test."], ["10 mail.test.", "20 backup.test."]),
    ("txt.test", "TXT", ["v=spf1 -all"], ["v=spf1 -all"]),
    ("_sip._udp.test", "SRV", ["10 5 5060 sip.test"], ["10 5 5060 sip.test."]),
    ("alias.test", "CNAME", ["a.test"], ["a.test."]),
    ("ns.test", "NS", ["ns1.test."], ["ns1.test."]),
    ("soa.test", "SOA", ["ns1.test hostmaster.test 2024010101 3600 600 86400 300"],
     ["ns1.test. hostmaster.test. 2024010101 3600 600 86400 300"]),
    ("192.0.2.1", "PTR", ["host.test"], ["host.test."]),
])
def test_each_type_is_asked_and_compared_in_its_normal_form(server, loop, name, kind, expect,
                                                             shown):
    result = ask(server, name, kind, expect=expect)
    assert result.ok, result.summary
    assert result.summary.startswith("NOERROR in ") and result.summary.endswith(
        ": " + ", ".join(shown))
    details = result.details
    assert details["answers"] == shown and details["answer_count"] == len(shown)
    assert (details["rcode"], details["protocol"], details["truncated"]) == (
        "NOERROR", "udp", False)
    assert details["server"] == server.address and details["query_time_ms"] >= 0


def test_a_ptr_name_given_as_an_address_asks_for_its_reverse_name(server):
    result = ask(server, "192.0.2.1", "PTR")
    assert result.details["name"] == "1.2.0.192.in-addr.arpa."
    assert records.query_name("2001:db8::1", "PTR").to_text().endswith(".ip6.arpa.")


def test_a_cname_chain_counts_only_records_of_the_asked_type(server):
    result = ask(server, "alias.test", "A", expect=["192.0.2.1", "192.0.2.2"])
    assert result.ok and result.details["answers"] == ["192.0.2.1", "192.0.2.2"]


def test_expect_is_the_exact_set_of_answers(server):
    missing = ask(server, "a.test", expect=["192.0.2.1"])
    assert not missing.ok
    assert missing.summary == "answers 192.0.2.1, 192.0.2.2 (expected 192.0.2.1)"
    wrong = ask(server, "mx.test", "MX", expect=["10 mail.test", "30 backup.test"])
    assert not wrong.ok and "expected 10 mail.test, 30 backup.test" in wrong.summary
    txt = ask(server, "txt.test", "TXT", expect=["v=spf1 ~all"])
    assert not txt.ok and txt.summary == "answers v=spf1 -all (expected v=spf1 ~all)"


def test_expect_regex_must_match_every_answer(server):
    assert ask(server, "a.test", expect={"regex": r"^192\.0\.2\.[12]$"}).ok
    result = ask(server, "a.test", expect={"regex": r"\.1$"})
    assert not result.ok and result.summary == "answer '192.0.2.2' does not match /\\.1$/"


# --- rcodes and empty answers ------------------------------------------------------------


@pytest.mark.parametrize("rcode", ["NXDOMAIN", "SERVFAIL", "REFUSED"])
def test_an_unexpected_rcode_fails_and_an_expected_one_passes(server, rcode):
    name = f"{rcode.lower()}.test"
    result = ask(server, name)
    assert not result.ok
    assert result.summary == f"rcode {rcode} (expected NOERROR) from {server.address}"
    assert result.details["rcode"] == rcode
    expected = ask(server, name, rcode=rcode.lower())  # min_answers is 0 then
    assert expected.ok and expected.summary.startswith(f"{rcode} in ")
    either = ask(server, name, rcode=["NOERROR", rcode])
    assert either.ok


def test_noerror_without_records_fails_unless_min_answers_is_0(server):
    result = ask(server, "nodata.test")
    assert not result.ok
    assert result.summary == (f"no A record for nodata.test. (min_answers 1), NOERROR from "
                              f"{server.address}")
    assert ask(server, "nodata.test", min_answers=0).summary.endswith(", no records")
    assert not ask(server, "a.test", min_answers=3).ok


# --- transport ---------------------------------------------------------------------------


def test_a_truncated_udp_answer_is_asked_again_over_tcp(server, loop):
    server.queries.clear()
    result = ask(server, "big.test")
    assert result.ok, result.summary
    assert server.queries == [("big.test.", "udp"), ("big.test.", "tcp")]
    assert result.details["protocol"] == "tcp" and result.details["truncated"] is True
    assert result.details["answer_count"] == 40 and len(result.details["answers"]) == 20
    assert "over TCP (UDP answer truncated)" in result.summary
    assert result.summary.endswith("198.51.100.2 (+37 more)")


def test_protocol_udp_keeps_the_truncated_answer_and_tcp_asks_over_tcp_only(server):
    server.queries.clear()
    result = ask(server, "big.test", protocol="udp")
    assert server.queries == [("big.test.", "udp")]
    assert not result.ok and "the UDP answer was truncated" in result.summary
    assert result.details["truncated"] is True
    server.queries.clear()
    assert ask(server, "a.test", protocol="TCP").ok
    assert server.queries == [("a.test.", "tcp")]


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
def test_a_server_that_never_answers_fails_at_the_deadline(server, loop, protocol):
    start = time.monotonic()
    result = ask(server, "hang.test", timeout=0.5, protocol=protocol)
    assert time.monotonic() - start < 2
    assert result.summary == f"no answer from {server.address} ({protocol}) within 0.5s"


def test_a_drip_cannot_stretch_the_deadline_and_a_flood_is_cut(server, loop):
    start = time.monotonic()
    drip = ask(server, "drip.test", timeout=0.6, protocol="tcp")
    assert time.monotonic() - start < 2
    assert drip.summary == f"no answer from {server.address} (tcp) within 0.6s"
    flood = ask(server, "flood.test", protocol="tcp")  # the message, then 1 MiB of junk
    assert flood.ok and flood.details["answers"] == ["192.0.2.9"]


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
def test_nothing_listening_is_a_refused_connection(loop, protocol):
    where = f"127.0.0.1:{closed_port()}"
    result = run_once(dns.parse({"dns": {"name": "a.test", "type": "A", "server": where,
                                         "protocol": protocol}}, "."), 2)
    assert result.summary == f"connection refused ({where})"


def test_garbage_is_a_bad_answer(server):
    result = ask(server, "garbage.test")
    assert result.summary.startswith(f"bad DNS answer from {server.address}: ShortHeader")


def test_many_queries_run_at_once_on_one_loop(server):
    probe = dns.parse({"dns": {"name": "a.test", "type": "A", "server": server.address}}, ".")

    async def many():
        return await asyncio.gather(*(probe.run(5) for _ in range(200)))

    results = aio.run(many())
    assert all(result.ok for result in results), {r.summary for r in results}


# --- the host's resolver -----------------------------------------------------------------


def resolv_conf(tmp_path: Path, monkeypatch, text: str) -> None:
    path = tmp_path / "resolv.conf"
    path.write_text(text)
    monkeypatch.setattr(records, "RESOLV_CONF", str(path))


def test_without_server_the_first_nameserver_of_resolv_conf_is_asked(server, tmp_path,
                                                                     monkeypatch):
    resolv_conf(tmp_path, monkeypatch,
                "# generated\nsearch test\nnameserver 127.0.0.1\nnameserver 192.0.2.53\n")
    monkeypatch.setattr(records, "DEFAULT_PORT", server.port)
    server.queries.clear()
    result = ask(None, "a.test")
    assert result.ok and result.details["server"] == server.address
    assert server.queries == [("a.test.", "udp")]


def test_a_test_cannot_reach_a_real_resolver(tmp_path, monkeypatch, loop):
    """The loopback guard holds for UDP too: a resolv.conf naming a real server is stopped."""
    resolv_conf(tmp_path, monkeypatch, "nameserver 192.0.2.53\n")
    for protocol in ("udp", "tcp"):
        result = ask(None, "example.com", protocol=protocol)
        assert not result.ok and "loopback only" in result.summary, result.summary


def test_a_resolv_conf_without_a_nameserver_says_so(tmp_path, monkeypatch):
    resolv_conf(tmp_path, monkeypatch, "search example.com\n")
    result = ask(None, "a.test")
    assert result.summary == (f"no nameserver in {records.RESOLV_CONF} "
                              "(set dns.server to the server to ask)")
    monkeypatch.setattr(records, "RESOLV_CONF", str(tmp_path / "missing"))
    assert not ask(None, "a.test").ok


# --- options -----------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "parsed"), [
    ("127.0.0.53", ("127.0.0.53", 53)), ("127.0.0.1:5353", ("127.0.0.1", 5353)),
    ("[::1]:5353", ("::1", 5353)), ("[::1]", ("::1", 53)), ("::1", ("::1", 53)),
    ("ns1.example.com:53", ("ns1.example.com", 53)),
])
def test_server_forms(text, parsed):
    assert records.parse_server(text) == parsed
    assert records.show_server(parsed) in (text, f"{text}:53", f"[{text}]:53")


def test_bad_options_are_all_reported_with_their_paths():
    with pytest.raises(OptionError) as caught:
        dns.parse({"dns": {"name": "a..b", "type": "ANY", "server": "[::1",
                           "protocol": "quic", "rcode": "OK", "min_answers": -1}}, ".")
    paths = {path for path, _ in caught.value.problems}
    assert paths == {"dns.name", "dns.type", "dns.server", "dns.protocol", "dns.rcode",
                     "dns.min_answers"}
    with pytest.raises(OptionError) as caught:
        dns.parse({"dns": {"name": "192.0.2.1", "type": "A",
                           "expect": ["192.0.2.1", "mail.test"]}}, ".")
    assert caught.value.problems == [
        ("dns.name", "an IP address is a name only for type PTR (its reverse name)"),
        ("dns.expect[1]", "is not an A record (such as 192.0.2.1): Text input is malformed."),
    ]
    for bad in ({"server": "127.0.0.1:0"}, {"server": "bad host"}, {"expect": []},
                {"expect": {"regex": "("}}, {"expect": "192.0.2.1"}):
        with pytest.raises(OptionError):
            dns.parse({"dns": {"name": "a.test", "type": "A", **bad}}, ".")


def test_validate_and_check_on_the_command_line(server, tmp_path):
    """The real CLI: `check` shows the answer in one readable row, `validate` says where."""
    config = tmp_path / "watchdog.yaml"
    config.write_text(
        "pagerduty: {routing_key: 0123456789abcdef0123456789abcdef}\n"
        "checks:\n"
        f"  - name: dns-a\n    dns: {{name: a.test, type: A, server: '{server.address}'}}\n"
        f"  - name: dns-mx\n    dns: {{name: nxdomain.test, type: MX, server: "
        f"'{server.address}'}}\n")
    ran = pdw("check", str(config))
    assert ran.returncode == 1 and "Traceback" not in ran.stderr, ran
    rows = {line.split()[0]: line for line in ran.stdout.splitlines()[1:] if line.strip()}
    assert "NOERROR in " in rows["dns-a"] and rows["dns-a"].endswith(": 192.0.2.1, 192.0.2.2")
    assert rows["dns-mx"].endswith(f"rcode NXDOMAIN (expected NOERROR) from {server.address}")
    config.write_text(config.read_text().replace("type: MX", "type: MXX"))
    checked = pdw("validate", str(config))
    assert checked.returncode == 1
    assert f"{config}:6" in checked.stderr and "dns.type: must be one of A, AAAA" in \
        checked.stderr, checked.stderr


def test_a_config_without_dns_checks_does_not_import_dnspython(tmp_path):
    """dnspython costs ~90 ms to import: validate and start-up pay it only with a dns check."""
    import subprocess
    import sys

    config = tmp_path / "w.yaml"
    config.write_text("checks:\n  - {name: a, command: 'true'}\n")
    code = ("import sys; from watchdog.config import load; load(sys.argv[1], environ={}); "
            "print(sorted(m for m in sys.modules if m == 'dns' or m.startswith('dns.')))")
    done = subprocess.run([sys.executable, "-c", code, str(config)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
