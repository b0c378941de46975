"""A member's phases as the outside sees them (watchdog/leadership/member.py): the log,
/healthz, STATUS= and WATCHDOG=1, status; signals in every phase. Real processes, a real
PostgreSQL where one is needed (or a closed port where none must answer)."""

from __future__ import annotations

import os
import signal
import socket

import pytest
from test_service import NotifySocket

from fakepd import FakePagerDuty
from hapair import Member, Pair, config_text
from procs import Target, wait_for

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def web():
    target = Target()
    yield target
    target.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def with_notify(member: Member, notify: NotifySocket) -> None:
    member.proc.env.update(NOTIFY_SOCKET=notify.path, WATCHDOG_USEC="300000")


def test_a_member_that_cannot_reach_postgresql_says_so_and_stops_at_once(tmp_path, web):
    dsn = f"postgresql://watchdog@127.0.0.1:{closed_port()}/nowhere"
    notify = NotifySocket(tmp_path / "notify.sock")
    member = Member(tmp_path, "m", config_text({"web": web.url}), dsn, "http://127.0.0.1:9")
    try:
        with_notify(member, notify)
        member.start()
        member.proc.wait_log("cannot reach PostgreSQL")
        code, body = member.get("/healthz")
        assert code == 503 and body.startswith("not leading group pair: cannot reach PostgreSQL")
        wait_for(lambda: "READY=1" in notify.lines(), what="READY=1 (a member runs)")
        wait_for(lambda: any(line.startswith("STATUS=not leading group pair: cannot reach")
                             for line in notify.lines()), what="STATUS= saying why")
        wait_for(lambda: notify.count("WATCHDOG=1") >= 3, what="WATCHDOG=1 while connecting")
        member.proc.wait_log("retrying in 0.8s")  # backing off, not hammering the server
        assert web.hits == 0  # nobody leads: nothing is probed
        member.proc.signal(signal.SIGTERM)
        assert member.proc.wait(timeout=10) == 0
        assert "STOPPING=1" in notify.lines()
        assert "Traceback" not in member.proc.log()
    finally:
        member.close()
        notify.close()


def test_status_lines_say_which_group_this_member_leads_or_waits_for(tmp_path, web, pg_dsn):
    with FakePagerDuty() as pd:
        pair = Pair(tmp_path, config_text({"web": web.url}), pg_dsn, (pd.url, pd.url))
        sockets = [NotifySocket(tmp_path / f"{m.name}.sock") for m in pair.members]
        try:
            for member, sock in zip(pair.members, sockets, strict=True):
                with_notify(member, sock)
            pair.a.start()
            pair.a.proc.wait_started()
            pair.b.start()
            pair.b.proc.wait_log("waiting for the lock of group pair held by")
            a, b = sockets
            wait_for(lambda: any(line.startswith("STATUS=leading group pair since ")
                                 and "1 check" in line for line in a.lines()),
                     what="the leader's STATUS=")
            wait_for(lambda: any(line.startswith("STATUS=waiting for the lock of group pair "
                                                 "held by ") for line in b.lines()),
                     what="the waiting member's STATUS=")
            pings = b.count("WATCHDOG=1")
            wait_for(lambda: b.count("WATCHDOG=1") >= pings + 2, what="pings while waiting")
            pair.b.proc.signal(signal.SIGHUP)  # a reload while waiting: read, for later
            pair.b.proc.wait_log("they run when this member leads")
            pair.a.proxy.cut()
            wait_for(lambda: any(line.startswith("STATUS=fenced, not leading group pair: ")
                                 for line in a.lines()), what="the fenced leader's STATUS=")
            assert "STOPPING=1" not in a.lines()  # a fenced term is not a stop of the service
            wait_for(lambda: pair.b.leading(), 30, what="b to take over")
            pair.a.proxy.restore()
            pair.a.proc.wait_log("waiting for the lock of group pair held by")
            os.kill(pair.b.proc.proc.pid, signal.SIGKILL)
            wait_for(lambda: pair.a.terms() == 2, 30, what="a to lead again")
        finally:
            pair.close()
            for sock in sockets:
                sock.close()
