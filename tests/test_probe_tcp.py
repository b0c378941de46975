"""TCP probe against real loopback servers (IPv4 and ::1): open and refused ports, send and
expect, hung, dripping and flooding servers, TLS with trustme certificates, and STARTTLS
dialogues with small fake SMTP, IMAP, POP3, FTP and PostgreSQL servers."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import socket
import ssl
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trustme

from procs import pdw
from watchdog import aio
from watchdog.probes import tcp
from watchdog.probes.base import OptionError, run_once
from watchdog.probes.tcp.starttls import SSL_REQUEST

pytestmark = pytest.mark.timeout(30)

Handler = Callable[[socket.socket, "Server"], None]


# --- servers -------------------------------------------------------------------------


class Server:
    """A loopback listener answering each connection with `handler` on a thread of its own
    (TLS from the first byte when `tls` is set). close() stops and joins every thread."""

    def __init__(self, handler: Handler, host: str = "127.0.0.1",
                 tls: ssl.SSLContext | None = None) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.listener = socket.create_server((host, 0), family=family, backlog=64)
        self.listener.settimeout(0.05)
        self.host, self.port = host, self.listener.getsockname()[1]
        self.handler, self.tls = handler, tls
        self.stop = threading.Event()
        self.got: list[bytes] = []  # what the handlers read, for the tests to look at
        self.threads: list[threading.Thread] = []
        self.accepter = threading.Thread(target=self._accept)
        self.accepter.start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,))
            self.threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        with contextlib.suppress(OSError), conn:
            if self.tls is not None:
                with self.tls.wrap_socket(conn, server_side=True) as tls_conn:
                    self.handler(tls_conn, self)
            else:
                self.handler(conn, self)

    def spec(self, **more: object) -> dict:
        return {"host": self.host, "port": self.port, **more}

    def close(self) -> None:
        self.stop.set()
        self.accepter.join(5)
        self.listener.close()
        for thread in self.threads:
            thread.join(5)


@contextlib.contextmanager
def serving(handler: Handler, host: str = "127.0.0.1", **kwargs: object) -> Iterator[Server]:
    server = Server(handler, host, **kwargs)  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.close()


def read_line(conn: socket.socket) -> bytes:
    line = b""
    while not line.endswith(b"\n"):
        got = conn.recv(1)
        if not got:
            break
        line += got
    return line


def pong(conn: socket.socket, server: Server) -> None:
    """A banner, then +PONG to PING (and -ERR to anything else)."""
    conn.sendall(b"hello from the fake\r\n")
    line = read_line(conn)
    server.got.append(line)
    conn.sendall(b"+PONG\r\n" if line == b"PING\r\n" else b"-ERR unknown command\r\n")


def hang(conn: socket.socket, server: Server) -> None:
    """Accepts, never answers, holds the connection until the test ends."""
    server.stop.wait(20)


def drip(conn: socket.socket, server: Server) -> None:
    """One byte every 100 ms, never the one the probe expects."""
    while not server.stop.wait(0.1):
        conn.sendall(b"x")


def flood(conn: socket.socket, server: Server) -> None:
    """Megabytes, as fast as the probe reads them."""
    block = b"y" * 65536
    for _ in range(64):  # 4 MiB
        conn.sendall(block)


def quiet(conn: socket.socket, server: Server) -> None:
    """Reads until the probe closes (TLS servers: the handshake is what is tested)."""
    with contextlib.suppress(OSError):
        while conn.recv(4096):
            pass


@pytest.fixture(autouse=True)
def no_thread_left() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5

    def extra() -> set[threading.Thread]:
        now = set(threading.enumerate()) - before  # the resolver pool is process-wide
        return {t for t in now if not t.name.startswith("resolve_")}

    while (left := extra()) and time.monotonic() < deadline:
        next(iter(left)).join(0.05)
    assert not left, f"threads left behind: {left}"


def has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


HOSTS = ["127.0.0.1", pytest.param("::1", marks=pytest.mark.skipif(
    not has_ipv6(), reason="no IPv6 loopback here"))]


def probe(spec: dict, base_dir: str = "/") -> tcp.TcpProbe:
    return tcp.parse({"tcp": spec}, base_dir)


def timed_run(spec: dict, timeout: float, base_dir: str = "/"):
    p = probe(spec, base_dir)
    start = time.monotonic()
    result = run_once(p, timeout)
    return result, time.monotonic() - start


def closed_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


# --- plain TCP -----------------------------------------------------------------------


@pytest.mark.parametrize("host", HOSTS)
def test_open_port_passes_with_its_details(host: str) -> None:
    with serving(quiet, host) as server:
        result = run_once(probe(server.spec()), 5)
    where = f"[{host}]:{server.port}" if ":" in host else f"{host}:{server.port}"
    assert result.ok, result
    assert result.summary.startswith(f"connected to {where} in ")
    assert result.details["address"] == host
    assert result.details["connect_ms"] >= 0 and result.details["bytes_read"] == 0
    assert "tls_version" not in result.details


@pytest.mark.parametrize("host", HOSTS)
def test_refused_port_fails_in_words(host: str) -> None:
    port = closed_port(host)
    result = run_once(probe({"host": host, "port": port}), 5)
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    assert not result.ok
    assert result.summary == f"connection refused ({where})"
    assert result.details["connect_ms"] is None


def test_bracketed_ipv6_host_is_the_literal() -> None:
    assert probe({"host": "[::1]", "port": 5}).host == "::1"
    assert probe({"host": "::1", "port": 5}).literal


@pytest.mark.parametrize("host", HOSTS)
def test_send_and_expect_a_string(host: str) -> None:
    with serving(pong, host) as server:
        result = run_once(probe(server.spec(send="PING\r\n", expect="+PONG")), 5)
        assert result.ok, result
        assert result.summary.endswith(", got '+PONG'")
        assert server.got == [b"PING\r\n"]
        assert result.details["bytes_read"] == len(b"hello from the fake\r\n+PONG\r\n")


def test_send_and_expect_a_regex() -> None:
    with serving(pong) as server:
        passed = run_once(probe(server.spec(send="PING\r\n", expect={"regex": r"^\+PONG$"})), 5)
        assert passed.ok, passed
        assert passed.summary.endswith(r", matched /^\+PONG$/")
        failed = run_once(probe(server.spec(send="PONG\r\n", expect={"regex": r"^\+PONG"})), 5)
    assert not failed.ok
    n = len(b"hello from the fake\r\n-ERR unknown command\r\n")
    assert failed.summary == rf"connection closed after {n} bytes without /^\+PONG/"
    assert failed.details["read_excerpt"].endswith("-ERR unknown command\r\n")


def test_expect_not_matching_a_string() -> None:
    with serving(pong) as server:
        result = run_once(probe(server.spec(send="QUIT\r\n", expect="+PONG")), 5)
    assert not result.ok
    assert result.summary.startswith("connection closed after ") and "without '+PONG'" in \
        result.summary


def test_expect_a_banner_without_sending() -> None:
    with serving(pong) as server:
        assert run_once(probe(server.spec(expect="hello from")), 5).ok


@pytest.mark.parametrize("spec", [{}, {"expect": "+PONG"}, {"send": "PING\r\n",
                                                             "expect": "+PONG"}])
def test_a_hung_server_times_out_within_the_deadline(spec: dict) -> None:
    with serving(hang) as server:
        result, took = timed_run(server.spec(**spec), 0.3)
    if not spec:
        assert result.ok  # nothing asked of it: an open port is all
        return
    assert result.summary == "timed out after 0.3s waiting for '+PONG'"
    assert took < 1.5


def test_a_slow_drip_is_contained_by_the_deadline() -> None:
    with serving(drip) as server:
        result, took = timed_run(server.spec(expect="+PONG"), 0.55)
    assert not result.ok
    assert result.summary.startswith("timed out after 0.55s waiting for '+PONG' (")
    assert result.summary.endswith(" bytes read)")
    assert 1 <= result.details["bytes_read"] <= 6
    assert took < 1.5


def test_a_flood_is_contained_by_the_cap() -> None:
    with serving(flood) as server:
        result, took = timed_run(server.spec(expect="+PONG"), 5)
    assert not result.ok
    assert result.summary == "'+PONG' not in the first 64 KiB read"
    assert result.details["bytes_read"] == tcp.READ_CAP
    assert result.details["read_truncated"] is True
    assert took < 4  # the cap ended it, not the deadline


def test_the_cap_also_bounds_a_greeting_that_never_ends() -> None:
    with serving(flood) as server:
        result = run_once(probe(server.spec(starttls="smtp", verify=False)), 5)
    assert result.summary == "the SMTP greeting has no line end in the first 64 KiB read"
    assert result.details["bytes_read"] == tcp.READ_CAP


def test_a_listener_that_never_accepts_times_out() -> None:
    with socket.socket() as listener:  # the kernel completes the handshake; nobody reads
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        result, took = timed_run({"host": "127.0.0.1", "port": port, "expect": "x"}, 0.3)
        tls, _ = timed_run({"host": "127.0.0.1", "port": port, "tls": True}, 0.3)
    assert result.summary == "timed out after 0.3s waiting for 'x'"
    assert tls.summary == f"timed out after 0.3s in the TLS handshake with 127.0.0.1:{port}"
    assert took < 1.5


def test_a_cancelled_run_raises_and_leaves_no_socket() -> None:
    with serving(hang) as server:
        p = probe(server.spec(expect="never"))

        async def main() -> None:
            task = asyncio.ensure_future(p.run(30))
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always", ResourceWarning)
            aio.run(main())
            gc.collect()
    assert not [w for w in seen if issubclass(w.category, ResourceWarning)], seen


# --- TLS -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def server_context(ca: trustme.CA, *names: str, **cert_kwargs: object) -> ssl.SSLContext:
    cert = ca.issue_cert(*(names or ("localhost", "127.0.0.1", "::1")), **cert_kwargs)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    return context


@pytest.mark.parametrize("host", HOSTS)
def test_tls_verified_with_its_details(ca: trustme.CA, ca_file: str, host: str) -> None:
    with serving(pong, host, tls=server_context(ca)) as server:
        result = run_once(probe(server.spec(tls=True, ca_file=ca_file, cert_min_days=14,
                                            send="PING\r\n", expect="+PONG")), 5)
    assert result.ok, result
    details = result.details
    assert details["tls_version"].startswith("TLSv1.")
    assert details["tls_version"] in result.summary
    assert details["cert_days_left"] > 365
    assert "O=trustme" in details["cert_issuer"]
    assert dt.datetime.fromisoformat(details["cert_not_after"].replace("Z", "+00:00")).year > 2030
    assert details["tls_ms"] >= 0


def test_tls_wrong_name_fails_and_server_name_fixes_it(ca: trustme.CA, ca_file: str) -> None:
    with serving(quiet, tls=server_context(ca, "db.internal")) as server:
        wrong = run_once(probe(server.spec(tls=True, ca_file=ca_file)), 5)
        named = run_once(probe(server.spec(tls=True, ca_file=ca_file,
                                           server_name="db.internal")), 5)
    assert wrong.summary.startswith("TLS certificate verify failed: ")
    assert "mismatch" in wrong.summary
    assert named.ok, named


def test_tls_untrusted_ca_fails_unless_verify_is_off(ca: trustme.CA) -> None:
    with serving(quiet, tls=server_context(ca)) as server:
        verified = run_once(probe(server.spec(tls=True)), 5)
        unverified = run_once(probe(server.spec(tls=True, verify=False)), 5)
    assert verified.summary.startswith("TLS certificate verify failed: ")
    assert "issuer" in verified.summary
    assert unverified.ok, unverified
    assert unverified.details["cert_days_left"] > 365  # read with verification off too


@pytest.mark.parametrize("verify", [True, False])
def test_cert_min_days_fails_a_short_lived_certificate(ca: trustme.CA, ca_file: str,
                                                       verify: bool) -> None:
    soon = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=5, hours=1)
    trust = {"ca_file": ca_file} if verify else {"verify": False}
    with serving(quiet, tls=server_context(ca, not_after=soon)) as server:
        result = run_once(probe(server.spec(tls=True, cert_min_days=14, **trust)), 5)
        assert run_once(probe(server.spec(tls=True, cert_min_days=5, **trust)), 5).ok
    assert not result.ok
    assert result.summary == "certificate expires in 5 days (min 14)"  # http's very words
    assert result.details["cert_days_left"] == 5


def test_tls_to_a_plain_server_fails_the_handshake() -> None:
    with serving(pong) as server:
        result = run_once(probe(server.spec(tls=True, verify=False)), 5)
    assert result.summary.startswith("TLS handshake failed: "), result


def test_a_server_stuck_in_the_handshake_times_out() -> None:
    with serving(hang) as server:
        result, took = timed_run(server.spec(tls=True, verify=False), 0.3)
    assert result.summary == f"timed out after 0.3s in the TLS handshake with " \
        f"127.0.0.1:{server.port}"
    assert took < 1.5


# --- STARTTLS --------------------------------------------------------------------------


def upgrading(context: ssl.SSLContext, dialogue: Callable[[socket.socket], bool]) -> Handler:
    """A fake server: `dialogue` speaks the plain part; True means upgrade, then answer
    PING with +PONG inside TLS."""
    def handle(conn: socket.socket, server: Server) -> None:
        if not dialogue(conn):
            quiet(conn, server)
            return
        with context.wrap_socket(conn, server_side=True) as tls_conn:
            pong(tls_conn, server)
    return handle


def smtp(offer: bool = True, answer: bytes = b"220 2.0.0 Ready to start TLS\r\n"):
    def dialogue(conn: socket.socket) -> bool:
        conn.sendall(b"220-fake.test ESMTP\r\n220 still greeting\r\n")
        assert read_line(conn).startswith(b"EHLO ")
        conn.sendall(b"250-fake.test\r\n250-SIZE 1000\r\n" +
                     (b"250-STARTTLS\r\n" if offer else b"") + b"250 8BITMIME\r\n")
        if read_line(conn) != b"STARTTLS\r\n":
            return False
        conn.sendall(answer)
        return answer.startswith(b"220")
    return dialogue


def imap(answer: bytes = b"a1 OK Begin TLS negotiation now\r\n"):
    def dialogue(conn: socket.socket) -> bool:
        conn.sendall(b"* OK [CAPABILITY IMAP4rev1 STARTTLS] fake ready\r\n")
        if read_line(conn) != b"a1 STARTTLS\r\n":
            return False
        conn.sendall(b"* CAPABILITY IMAP4rev1 STARTTLS\r\n" + answer)
        return b" OK " in answer
    return dialogue


def pop3(answer: bytes = b"+OK begin TLS\r\n"):
    def dialogue(conn: socket.socket) -> bool:
        conn.sendall(b"+OK fake POP3 ready\r\n")
        if read_line(conn) != b"STLS\r\n":
            return False
        conn.sendall(answer)
        return answer.startswith(b"+OK")
    return dialogue


def ftp(answer: bytes = b"234 AUTH TLS OK.\r\n"):
    def dialogue(conn: socket.socket) -> bool:
        conn.sendall(b"220 fake FTP ready\r\n")
        if read_line(conn) != b"AUTH TLS\r\n":
            return False
        conn.sendall(answer)
        return answer.startswith(b"234")
    return dialogue


def postgres(answer: bytes = b"S"):
    def dialogue(conn: socket.socket) -> bool:
        got = b""
        while len(got) < 8:
            more = conn.recv(8 - len(got))
            if not more:
                return False
            got += more
        if got != SSL_REQUEST:
            return False
        conn.sendall(answer)
        return answer == b"S"
    return dialogue


@pytest.mark.parametrize("protocol, dialogue", [
    ("smtp", smtp()), ("imap", imap()), ("pop3", pop3()), ("ftp", ftp()),
    ("postgres", postgres()),
])
@pytest.mark.parametrize("host", HOSTS)
def test_starttls_upgrades_and_verifies(ca: trustme.CA, ca_file: str, protocol: str,
                                        dialogue, host: str) -> None:
    with serving(upgrading(server_context(ca), dialogue), host) as server:
        result = run_once(probe(server.spec(starttls=protocol, ca_file=ca_file, cert_min_days=14,
                                            send="PING\r\n", expect="+PONG")), 5)
        assert result.ok, result
        assert server.got == [b"PING\r\n"]  # sent inside TLS, after the upgrade
    assert f", STARTTLS {protocol} TLSv1." in result.summary
    assert result.details["cert_days_left"] > 365
    # what expect looked at is what came after the upgrade, not the greeting
    assert result.details["bytes_read"] > len(b"hello from the fake\r\n+PONG\r\n")


@pytest.mark.parametrize("protocol, dialogue, summary", [
    ("smtp", smtp(answer=b"454 4.7.0 TLS not available due to temporary reason\r\n"),
     "SMTP server refused STARTTLS: 454 4.7.0 TLS not available due to temporary reason"),
    ("smtp", smtp(offer=False),
     "SMTP server does not offer STARTTLS (not in its answer to EHLO)"),
    ("imap", imap(answer=b"a1 BAD STARTTLS not supported\r\n"),
     "IMAP server refused STARTTLS: a1 BAD STARTTLS not supported"),
    ("pop3", pop3(answer=b"-ERR command not recognized\r\n"),
     "POP3 server refused STLS: -ERR command not recognized"),
    ("ftp", ftp(answer=b"502 Command not implemented.\r\n"),
     "FTP server refused AUTH TLS: 502 Command not implemented."),
    ("postgres", postgres(answer=b"N"),
     "PostgreSQL server refused SSL (it answered N to SSLRequest: ssl = off in "
     "postgresql.conf?)"),
])
def test_a_server_refusing_starttls_is_a_clear_failure(ca: trustme.CA, protocol: str,
                                                       dialogue, summary: str) -> None:
    with serving(upgrading(server_context(ca), dialogue)) as server:
        result = run_once(probe(server.spec(starttls=protocol, verify=False)), 5)
    assert (result.ok, result.summary) == (False, summary)


@pytest.mark.parametrize("protocol, summary", [
    ("smtp", "not an SMTP server: it sent 'hello from the fake' as the SMTP greeting"),
    ("imap", "unexpected IMAP greeting: 'hello from the fake' (expected * OK)"),
    ("pop3", "unexpected POP3 greeting: 'hello from the fake' (expected +OK)"),
    ("ftp", "not an FTP server: it sent 'hello from the fake' as the FTP greeting"),
])
def test_starttls_to_another_protocol_names_what_came(protocol: str, summary: str) -> None:
    with serving(pong) as server:
        result = run_once(probe(server.spec(starttls=protocol, verify=False)), 5)
    assert result.summary == summary


def test_starttls_waiting_for_a_greeting_times_out_in_words() -> None:
    with serving(hang) as server:
        result, took = timed_run(server.spec(starttls="smtp", verify=False), 0.3)
    assert result.summary == "timed out after 0.3s waiting for the SMTP greeting"
    assert took < 1.5


def test_starttls_to_a_closing_server() -> None:
    with serving(lambda conn, server: None) as server:
        result = run_once(probe(server.spec(starttls="postgres", verify=False)), 5)
    assert result.summary == "server closed the connection before the answer to SSLRequest"


# --- options ---------------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "path", "words"), [
    ({}, "tcp.host", "required"),
    ({"host": "h"}, "tcp.port", "required"),
    ({"host": "h", "port": 0}, "tcp.port", "1 to 65535"),
    ({"host": "h", "port": "80"}, "tcp.port", "1 to 65535"),
    ({"host": "db:5432", "port": 5432}, "tcp.host", "without a port"),
    ({"host": "tcp://db", "port": 5432}, "tcp.host", "not a URL"),
    ({"host": "a b", "port": 1}, "tcp.host", "host name or IP address"),
    ({"host": "h", "port": 1, "send": ""}, "tcp.send", "non-empty"),
    ({"host": "h", "port": 1, "expect": ""}, "tcp.expect", "empty"),
    ({"host": "h", "port": 1, "expect": 5}, "tcp.expect", "{regex: PATTERN}"),
    ({"host": "h", "port": 1, "expect": {"regexp": "x"}}, "tcp.expect", "{regex: PATTERN}"),
    ({"host": "h", "port": 1, "expect": {"regex": "(unclosed"}}, "tcp.expect.regex",
     "invalid regular expression"),
    ({"host": "h", "port": 1, "tls": "yes"}, "tcp.tls", "true or false"),
    ({"host": "h", "port": 1, "starttls": "smtps"}, "tcp.starttls", "smtp, imap, pop3"),
    ({"host": "h", "port": 1, "tls": True, "starttls": "smtp"}, "tcp.starttls", "not both"),
    ({"host": "h", "port": 1, "cert_min_days": 14}, "tcp.cert_min_days", "needs tls"),
    ({"host": "h", "port": 1, "server_name": "x"}, "tcp.server_name", "needs tls"),
    ({"host": "h", "port": 1, "verify": False}, "tcp.verify", "needs tls"),
    ({"host": "h", "port": 1, "tls": True, "cert_min_days": -1}, "tcp.cert_min_days",
     "0 or more"),
    ({"host": "h", "port": 1, "tls": True, "ca_file": "missing.pem"}, "tcp.ca_file",
     "not found"),
    ({"host": "h", "port": 1, "tls": True, "ca_file": "x.pem", "verify": False},
     "tcp.ca_file", "no effect"),
    ({"host": "h", "port": 1, "exepct": "x"}, "tcp.exepct", "expect"),
])
def test_option_errors(spec: dict, path: str, words: str, tmp_path: Path) -> None:
    (tmp_path / "x.pem").write_text("not used")
    with pytest.raises(OptionError) as info:
        tcp.parse({"tcp": spec}, str(tmp_path))
    problems = dict(info.value.problems)
    assert path in problems, info.value.problems
    assert words in problems[path], problems[path]


def test_a_bad_ca_bundle_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "bad.pem").write_text("-----BEGIN CERTIFICATE-----\nnope\n")
    with pytest.raises(OptionError) as info:
        tcp.parse({"tcp": {"host": "h", "port": 1, "tls": True, "ca_file": "bad.pem"}},
                  str(tmp_path))
    assert info.value.problems[0][0] == "tcp.ca_file"
    assert "cannot load CA bundle" in info.value.problems[0][1]


def test_tls_contexts_are_shared_with_http(ca_file: str) -> None:
    from watchdog.probes import http

    a = probe({"host": "h", "port": 1, "tls": True, "ca_file": ca_file})
    b = http.parse({"http": {"url": "https://h/", "ca_file": ca_file}}, "/")
    assert a.context is b.first.context


# --- the real CLI ----------------------------------------------------------------------


def test_check_and_validate_show_tcp_checks_readably(tmp_path: Path) -> None:
    with serving(pong) as server:
        refused = closed_port()
        config = tmp_path / "watchdog.yaml"
        config.write_text(
            "state_dir: ./state\n"
            "checks:\n"
            f"  - name: redis\n    tcp: {{host: 127.0.0.1, port: {server.port}, "
            'send: "PING\\r\\n", expect: "+PONG"}\n    timeout: 2s\n'
            f"  - name: gone\n    tcp: {{host: 127.0.0.1, port: {refused}}}\n    timeout: 2s\n"
        )
        ran = pdw("check", str(config), cwd=tmp_path)
    assert ran.returncode == 1 and "Traceback" not in ran.stderr, ran
    rows = {line.split()[0]: line for line in ran.stdout.splitlines()[1:3]}
    assert f"connected to 127.0.0.1:{server.port} in " in rows["redis"]
    assert rows["redis"].endswith(", got '+PONG'")
    assert rows["gone"].endswith(f"connection refused (127.0.0.1:{refused})")
    assert "1 passed, 1 failed" in ran.stdout

    config.write_text("checks:\n  - name: bad\n    tcp:\n      host: h\n      port: 1\n"
                      "      expect: {regex: '(unclosed'}\n")
    checked = pdw("validate", str(config), cwd=tmp_path)
    assert checked.returncode != 0 and "Traceback" not in checked.stderr
    assert "watchdog.yaml:6: checks[0].tcp.expect.regex: invalid regular expression" \
        in checked.stderr, checked.stderr
