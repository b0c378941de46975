"""run_contained(), the command probe's containment as a public function (issue 15 reuses it
for diagnose/remediate commands): real subprocesses, no probe or Nagios reading around it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from watchdog.probes.command import Outcome, run_contained
from watchdog.probes.command.contain import command_argv, minimal_env

pytestmark = pytest.mark.timeout(30)

SECRET = "s3cr3t-routing-key-0123456789abcd"  # 32 characters: masked to its last 4


def sh(script: str, tmp_path: Path, **kwargs) -> Outcome:
    kwargs.setdefault("timeout", 10)
    kwargs.setdefault("env", minimal_env())
    return run_contained(["/bin/sh", "-c", script], cwd=str(tmp_path), **kwargs)


def test_exit_status_and_both_streams(tmp_path: Path) -> None:
    outcome = sh("echo out; echo err >&2; exit 3", tmp_path)
    assert outcome == Outcome(3, b"out\n", b"err\n")


def test_killed_by_a_signal_is_a_negative_status(tmp_path: Path) -> None:
    assert sh("kill -9 $$", tmp_path).returncode == -9


def test_only_the_given_environment_and_folder(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PD_WATCHDOG_RUNNER_ONLY", "leak")
    (tmp_path / "sub").mkdir()
    outcome = run_contained(["/bin/sh", "-c", "pwd; env"], timeout=10, cwd=str(tmp_path / "sub"),
                            env=minimal_env({"EXTRA": "1"}))
    lines = outcome.stdout.decode().splitlines()
    assert lines[0] == str(tmp_path / "sub")
    names = {line.split("=", 1)[0] for line in lines[1:]} - {"PWD", "SHLVL", "_"}
    assert names == {"PATH", "LANG", "EXTRA"}


def test_timeout_kills_the_group_and_keeps_what_was_said(tmp_path: Path) -> None:
    start = time.monotonic()
    outcome = sh("echo started; sleep 30 & sleep 30", tmp_path, timeout=0.3)
    assert time.monotonic() - start < 2
    assert outcome.timed_out and outcome.returncode is None
    assert outcome.stdout == b"started\n"


def test_output_cut_to_the_capture_cap(tmp_path: Path) -> None:
    outcome = sh("head -c 100000 /dev/zero; head -c 50 /dev/zero >&2", tmp_path,
                 capture_cap=1000)
    assert (len(outcome.stdout), len(outcome.stderr)) == (1000, 50)
    assert outcome.returncode == 0


def test_a_program_that_cannot_start_says_why(tmp_path: Path) -> None:
    outcome = run_contained(["./nope"], timeout=5, env=minimal_env(), cwd=str(tmp_path))
    assert outcome.returncode is None and not outcome.timed_out
    assert outcome.spawn_error == f"command not found: ./nope (no such file in {tmp_path})"


def test_secrets_are_masked_in_both_streams(tmp_path: Path) -> None:
    outcome = sh('echo "key=$K"; echo "bad key $K" >&2', tmp_path, secrets=[SECRET],
                 env=minimal_env({"K": SECRET}))
    assert outcome.stdout == "key=…abcd\n".encode()
    assert outcome.stderr == "bad key …abcd\n".encode()


def test_a_secret_cut_by_the_cap_is_masked_by_its_start(tmp_path: Path) -> None:
    outcome = sh(f"printf 'abcdef{SECRET}'", tmp_path, secrets=[SECRET], capture_cap=16)
    assert outcome.stdout == "abcdef…".encode()


def test_a_secret_in_the_program_name_is_masked_in_the_spawn_error(tmp_path: Path) -> None:
    outcome = run_contained([f"/nonexistent/{SECRET}"], timeout=5, env=minimal_env(),
                            cwd=str(tmp_path), secrets=[SECRET])
    assert outcome.spawn_error == "command not found: /nonexistent/…abcd"


def test_no_secret_no_change(tmp_path: Path) -> None:
    assert sh("printf '\\377 raw'", tmp_path, secrets=[SECRET]).stdout == b"\xff raw"


def test_argv_and_environment_helpers(monkeypatch: pytest.MonkeyPatch) -> None:
    assert command_argv("check_x -w '1 2'") == ["check_x", "-w", "1 2"]
    assert command_argv("a | b", shell=True) == ["/bin/sh", "-c", "a | b"]
    assert command_argv(("a", "b c")) == ["a", "b c"]
    monkeypatch.delenv("PATH")
    assert minimal_env({"LANG": "C"}) == {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:"
                                          "/usr/bin:/sbin:/bin", "LANG": "C"}
