"""End to end: a pair of real `pd-watchdog run` members on a real PostgreSQL never pages twice.

Two members of one group (tests/hapair.py), the PagerDuty stand-in, loopback targets. The
leader is killed for real (SIGKILL) in each phase of an incident, cut off from the server
through its own proxy, or loses the server itself; every time exactly one member leads
afterwards and exactly one trigger and one resolve per incident reach the stand-in, in
order. Takeover is asserted with deadlines, not timings (bench/failover.py measures it).
"""

from __future__ import annotations

import json
import os
import signal

import pytest

from hapair import ENDED, GROUP, TOOK, Pair, config_text, key
from procs import pdw, wait_for

pytestmark = pytest.mark.timeout(120)

FAILOVER = 3.0  # the configs' failover_after (the least it may be)
INTERVAL = 0.1
TAKEOVER = FAILOVER + INTERVAL + 10.0  # + the new leader's start-up on a shared 2-core box


@pytest.fixture
def make_pair(tmp_path, pg_dsn):
    made: list[Pair] = []

    def make(targets: dict[str, str], pd_urls: tuple[str, str], **options) -> Pair:
        made.append(Pair(tmp_path, config_text(targets, **options), pg_dsn, pd_urls))
        return made[-1]

    yield make
    for pair in made:
        pair.close()


def started_pair(make_pair, web, pd, **options) -> Pair:
    pair = make_pair({"web": web.url}, (pd.url, pd.url), **options)
    pair.a.start()
    pair.a.proc.wait_started()
    pair.b.start()
    pair.b.proc.wait_log("waiting for the lock of group pair held by")
    return pair


def kill_leader(pair: Pair):
    """kill -9 the leader; the other takes over (returned) within TAKEOVER."""
    leader = pair.leader()
    os.kill(leader.proc.proc.pid, signal.SIGKILL)
    leader.proc.proc.wait(10)
    survivor = pair.other(leader)
    wait_for(lambda: survivor.leading() and "started:" in survivor.run_log(), TAKEOVER,
             what="the other member to take over")
    return survivor


def status(member) -> dict:
    done = pdw("status", str(member.config), "--json", env={**os.environ, **member.env})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def settled(member) -> None:
    """Wait until nothing is pending in the group's outbox: a kill now resends nothing."""
    wait_for(lambda: status(member)["outbox"]["pending"] == 0, what="an empty outbox")


def assert_no_traceback(pair: Pair) -> None:
    for member in pair.members:
        assert "Traceback" not in member.proc.log()


def test_one_member_leads_the_other_waits_and_says_who_leads(make_pair, web, pd):
    pair = started_pair(make_pair, web, pd)
    leader, waiter = pair.a, pair.b
    assert leader.leading() and not waiter.leading()
    group = status(leader)["group"]
    assert group["name"] == GROUP and group["member"]["phase"] == "leading"
    name = group["member"]["name"]
    assert group["leader"] == name
    code, body = waiter.get("/healthz")
    assert code == 503 and f"waiting for the lock of group pair held by {name}" in body
    assert leader.get("/healthz")[0] == 200
    assert 'pd_watchdog_leader{group="pair"} 1.0' in leader.get("/metrics")[1]
    metrics = waiter.get("/metrics")[1]
    assert 'pd_watchdog_leader{group="pair"} 0.0' in metrics
    assert "pd_watchdog_check_up{" not in metrics  # the waiting member probes nothing
    hits = web.hits
    wait_for(lambda: web.hits >= hits + 5, what="the leader's probes")
    assert "check web" not in waiter.run_log() and "started:" not in waiter.run_log()
    shown = pdw("status", str(waiter.config), env={**os.environ, **waiter.env}).stdout
    assert f"group {GROUP}: led by {name}" in shown
    assert "this member" in shown and "waiting for the lock" in shown
    assert_no_traceback(pair)


def test_kill9_while_failing_takes_over_and_pages_once(make_pair, web, pd):
    pair = started_pair(make_pair, web, pd, fail_after=12)
    web.up = False
    pair.a.proc.wait_log("failing 3/12")
    survivor = kill_leader(pair)
    pd.wait_for(lambda: pd.actions_for(key("web")) == ["trigger"], timeout=15)
    web.up = True
    pd.wait_for(lambda: pd.actions_for(key("web")) == ["trigger", "resolve"], timeout=15)
    assert "failing 1/12" not in survivor.run_log()  # it went on counting, not from scratch
    assert_no_traceback(pair)


def test_kill9_while_triggered_does_not_trigger_again(make_pair, web, pd):
    pair = started_pair(make_pair, web, pd)
    web.up = False
    pd.wait_for(lambda: pd.actions_for(key("web")) == ["trigger"], timeout=15)
    settled(pair.a)
    survivor = kill_leader(pair)
    survivor.proc.wait_log("1 triggered")
    web.up = True
    pd.wait_for(lambda: pd.actions_for(key("web")) == ["trigger", "resolve"], timeout=15)
    [incident] = pd.incidents
    assert incident["trigger_count"] == 1
    assert_no_traceback(pair)


def test_kill9_while_recovering_resolves_once(make_pair, web, pd):
    pair = started_pair(make_pair, web, pd, recover_after=12)
    web.up = False
    pd.wait_for(lambda: pd.actions_for(key("web")) == ["trigger"], timeout=15)
    settled(pair.a)
    web.up = True
    pair.a.proc.wait_log("recovering 3/12")
    kill_leader(pair)
    pd.wait_for(lambda: pd.actions_for(key("web")) == ["trigger", "resolve"], timeout=15)
    assert_no_traceback(pair)


def test_kill9_with_events_pending_the_new_leader_sends_them_once(make_pair, web, pd):
    pair = started_pair(make_pair, web, pd)
    pd.set_mode("500")
    web.up = False
    pair.a.proc.wait_log("retry trigger")  # queued, PagerDuty refusing: pending in the outbox
    web.up = True
    pair.a.proc.wait_log("queued resolve")
    kill_leader(pair)
    pd.set_mode("ok")
    pd.wait_for(lambda: pd.actions_for(key("web")) == ["trigger", "resolve"], timeout=20)
    assert_no_traceback(pair)


def test_sigterm_stops_a_waiting_member_at_once_and_the_leader_hands_over(make_pair, web, pd):
    pair = started_pair(make_pair, web, pd)
    pair.b.proc.signal(signal.SIGHUP)
    pair.b.proc.wait_log("reload: reading")
    pair.b.proc.signal(signal.SIGTERM)
    assert pair.b.proc.wait(timeout=10) == 0
    assert "stopped" in pair.b.run_log()
    pair.b.start()
    pair.b.proc.wait_log("waiting for the lock of group pair held by", count=2)
    pair.a.proc.signal(signal.SIGTERM)  # a leader's stop hands over: no failover_after wait
    assert pair.a.proc.wait(timeout=20) == 0
    wait_for(lambda: pair.b.leading() and "started:" in pair.b.run_log(), TAKEOVER,
             what="b to take over")
    assert_no_traceback(pair)


def test_a_leader_cut_off_from_postgresql_fences_itself(make_pair, web, pd):
    """Only the leader is partitioned (its own proxy is cut): it stops at once, sends
    nothing more, says so, and waits again once it can reach the server; the other member
    leads and sends what the first had pending, once."""
    pair = started_pair(make_pair, web, pd)
    pd.set_mode("500")  # a's trigger stays pending in the outbox, retried
    web.up = False
    pair.a.proc.wait_log("retry trigger")
    pair.a.proxy.cut()
    pair.a.proc.wait_log("fenced:")
    wait_for(lambda: pair.b.leading(), TAKEOVER, what="b to take over")
    pair.a.proc.wait_log(ENDED)
    code, body = pair.a.get("/healthz")
    assert code == 503 and "not leading group pair" in body
    assert 'pd_watchdog_leader{group="pair"} 0.0' in pair.a.get("/metrics")[1]
    pd.set_mode("ok")  # a could deliver now, if it still tried: it must not
    pd.wait_for(lambda: pd.actions_for(key("web")) == ["trigger"], timeout=15)
    web.up = True  # a split brain would resolve from a's memory too
    pd.wait_for(lambda: pd.actions_for(key("web")) == ["trigger", "resolve"], timeout=15)
    pair.a.proxy.restore()
    pair.a.proc.wait_log("waiting for the lock of group pair held by")
    after_cut = pair.a.run_log().partition("fenced:")[2]
    assert "sent trigger" not in after_cut and "sent resolve" not in after_cut
    assert "check web" not in after_cut.partition(ENDED)[2]  # no probe once the term ended
    assert pd.actions_for(key("web")) == ["trigger", "resolve"]
    assert_no_traceback(pair)


def test_the_server_restarted_one_member_leads_again(make_pair, web, pd, pg_server):
    pair = started_pair(make_pair, web, pd)
    web.up = False
    pd.wait_for(lambda: pd.actions_for(key("web")) == ["trigger"], timeout=15)
    settled(pair.a)
    pg_server.stop()
    pair.a.proc.wait_log("fenced:")
    for member in pair.members:
        member.proc.wait_log("cannot reach PostgreSQL")
        code, body = member.get("/healthz")
        assert code == 503 and "not leading" in body
    before = pair.a.terms() + pair.b.terms()
    logged = {member.name: len(member.run_log()) for member in pair.members}
    pg_server.start()
    wait_for(lambda: pair.a.terms() + pair.b.terms() == before + 1, TAKEOVER,
             what="one member to lead again")
    leader = pair.leader()
    waiter = pair.other(leader)
    wait_for(lambda: "waiting for the lock of group pair held by" in
             waiter.run_log()[logged[waiter.name]:], what="the other to wait again")
    web.up = True
    pd.wait_for(lambda: pd.actions_for(key("web")) == ["trigger", "resolve"], timeout=15)
    assert_no_traceback(pair)
    assert all(member.run_log().count(TOOK) <= 2 for member in pair.members)


def server_processes(pg_server) -> list[int]:
    """The postmaster and its children (backends, checkpointer, ...)."""
    with open(os.path.join(pg_server.data, "postmaster.pid")) as file:
        postmaster = int(file.readline())
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as file:
                    fields = file.read().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[1]) == postmaster:
                children.append(int(entry))
    return [postmaster, *children]


def test_a_server_that_stops_answering_fences_the_leader(make_pair, web, pd, pg_server):
    """The server's processes stopped (SIGSTOP): its kernel still acknowledges, so no TCP
    timeout fires and no statement timeout either; the leader's own deadline fences it."""
    pair = started_pair(make_pair, web, pd)
    stopped = server_processes(pg_server)
    for pid in stopped:
        os.kill(pid, signal.SIGSTOP)
    try:
        pair.a.proc.wait_log("fenced: PostgreSQL has not answered for 3s", timeout=15)
        code, body = pair.a.get("/healthz")
        assert code == 503 and "fenced" in body
        assert 'pd_watchdog_leader{group="pair"} 0.0' in pair.a.get("/metrics")[1]
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
    leader = pair.leader(timeout=TAKEOVER)
    wait_for(lambda: "started:" in leader.run_log().rpartition(TOOK)[2], TAKEOVER,
             what="the leader to start its term")
    web.up = False
    pd.wait_for(lambda: pd.actions_for(key("web")) == ["trigger"], timeout=15)
    web.up = True
    pd.wait_for(lambda: pd.actions_for(key("web")) == ["trigger", "resolve"], timeout=15)
    assert_no_traceback(pair)
