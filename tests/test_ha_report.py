"""How `pd-watchdog status` words a group (watchdog/leadership/report.py)."""

from __future__ import annotations

from watchdog.leadership.report import group_info, group_lines, leader_record

NOW = 1_800_000_000.0


def test_no_group_no_lines():
    assert group_info(None, None) is None
    assert group_info(None, {"pid": 1, "running": True}) is None  # a lone runner's report
    assert group_lines(None, NOW) == []


def test_the_leader_asked():
    meta = leader_record("web-1:881", "shop", NOW - 65)
    live = {"pid": 881, "group": "shop", "member": "web-1:881", "phase": "leading",
            "phase_since": NOW - 65, "leader": "web-1:881"}
    info = group_info(meta, live)
    assert info["leader"] == "web-1:881" and info["member"]["phase"] == "leading"
    first, second, blank = group_lines(info, NOW)
    assert first.startswith("group shop: led by web-1:881 since ") and first.endswith("(1m5s)")
    assert second == "this member (web-1:881, pid 881): leading" and blank == ""


def test_a_waiting_member_names_the_live_holder_over_the_last_record():
    meta = leader_record("web-1:881", "shop", NOW - 600)
    live = {"pid": 42, "group": "shop", "member": "web-2:42", "phase": "waiting",
            "leader": "web-3:7"}
    lines = group_lines(group_info(meta, live), NOW)
    assert lines[0].startswith("group shop: led by web-3:7")
    assert lines[1] == "this member (web-2:42, pid 42): waiting for the lock (held by web-3:7)"


def test_a_member_cut_off_says_why_and_one_not_running_says_so():
    live = {"pid": 42, "group": "shop", "member": "web-2:42", "phase": "connecting",
            "phase_reason": "cannot reach PostgreSQL (refused); retrying in 0.4s"}
    lines = group_lines(group_info(None, live), NOW)
    assert lines[0] == "group shop: led by nobody"
    assert lines[1].endswith("not leading: cannot reach PostgreSQL (refused); retrying in 0.4s")
    assert group_lines(group_info("not json", None), NOW) == []
    meta = leader_record("web-1:881", "shop", NOW)
    assert group_lines(group_info(meta, None), NOW)[1] == "this member: not running"
