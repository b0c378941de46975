"""The `pd-watchdog` command as an operator types it: exit codes, messages, no tracebacks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from procs import Target, pdw

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def target():
    made = Target()
    yield made
    made.close()


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_version_and_help_on_every_command():
    from watchdog import __version__

    assert pdw("--version").stdout.strip() == f"pd-watchdog {__version__}"
    for command in ("run", "validate", "check", "status"):
        helped = pdw(command, "--help")
        assert helped.returncode == 0 and "CONFIG" in helped.stdout
        assert pdw(command, "--version").stdout.strip() == f"pd-watchdog {__version__}"
    bare = pdw()
    assert bare.returncode == 2 and "COMMAND" in bare.stderr


def test_validate_counts_checks_and_files():
    result = pdw("validate", "watchdog.example.yaml", env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("OK, 1 check in 2 files")
    assert "dry-run" in result.stderr


def test_validate_leaves_at_once_with_its_output_and_exit_code_whole(tmp_path):
    """validate ends the process without the interpreter's teardown (cli._leave): what it
    printed, to files or pipes, stdout and stderr, must all arrive, with the exit code."""
    import subprocess
    import sys

    from procs import ROOT

    good = write(tmp_path / "good.yaml", "checks:\n" + "".join(
        f"  - {{name: c{i}, command: 'true', timeout: 40s}}\n" for i in range(300)))
    bad = write(tmp_path / "bad.yaml", "checks:\n  - {name: a, command: 'true', intervl: 1m}\n")
    cases = ((good, 0, "OK, 300 checks in 1 file", "timeout is not shorter than interval"),
             (bad, 1, "", "unknown key 'intervl'"))
    for config, code, said, warned in cases:
        with open(tmp_path / "out", "w") as out, open(tmp_path / "err", "w") as err:
            done = subprocess.run([sys.executable, "-m", "watchdog", "validate", str(config)],
                                  cwd=ROOT, stdout=out, stderr=err, timeout=60)
        assert done.returncode == code
        assert said in (tmp_path / "out").read_text()
        assert warned in (tmp_path / "err").read_text()
        piped = pdw("validate", str(config))
        assert piped.returncode == code and said in piped.stdout and warned in piped.stderr


def test_validate_reports_every_error_with_file_line_and_key_path(tmp_path):
    (tmp_path / "checks").mkdir()
    write(
        tmp_path / "checks" / "web.yaml",
        (
            "checks:\n"
            "  - name: a\n    http: {url: 'http://127.0.0.1/'}\n"
            "  - name: b\n    http:\n      url: http://127.0.0.1/\n      expect_status: 999\n"
        ),
    )
    config = write(
        tmp_path / "watchdog.yaml",
        (
            "include: [checks/*.yaml]\n"
            "checks:\n  - name: c\n    command: 'true'\n    intervl: 5s\n"
            "  - name: d\n    command: ${NOPE_NOT_SET}\n"
        ),
    )
    result = pdw("validate", str(config), cwd=tmp_path)
    assert result.returncode == 1
    errors = result.stderr
    assert "checks/web.yaml:7: checks[1].http.expect_status:" in errors
    assert "watchdog.yaml:5: checks[0].intervl: unknown" in errors
    assert "did you mean 'interval'" in errors
    assert "watchdog.yaml:7:" in errors and "NOPE_NOT_SET" in errors
    assert "Traceback" not in errors


def test_run_with_a_broken_config_exits_1_without_starting(tmp_path):
    config = write(tmp_path / "w.yaml", "checks: [{name: x}]\n")
    result = pdw("run", str(config), cwd=tmp_path)
    assert result.returncode == 1
    assert "w.yaml:1: checks[0]" in result.stderr and "nothing was started" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / ".pd-watchdog").exists()


def test_missing_config_file_is_a_clear_error(tmp_path):
    for command in ("validate", "run", "check", "status"):
        result = pdw(command, str(tmp_path / "nope.yaml"), cwd=tmp_path)
        assert result.returncode == 1, command
        assert "nope.yaml" in result.stderr and "Traceback" not in result.stderr


def test_check_prints_a_table_and_fails_when_a_probe_fails(tmp_path, target):
    config = write(
        tmp_path / "w.yaml",
        (
            "state_dir: ./state\n"
            f"checks:\n  - name: web\n    http: {{url: '{target.url}'}}\n"
            "  - name: plugin\n"
            "    command: sh -c 'echo \"DISK WARNING - 85% | used=85%;80;90\"; exit 1'\n"
        ),
    )
    result = pdw("check", str(config), cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["CHECK", "RESULT", "LATENCY", "SUMMARY"]
    assert lines[1].split()[:2] == ["web", "OK"]
    assert lines[2].split()[:2] == ["plugin", "WARNING"] and "DISK WARNING - 85%" in lines[2]
    assert lines[-1] == "1 passed, 1 failed"
    only = pdw("check", str(config), "web", cwd=tmp_path)
    assert only.returncode == 0 and "plugin" not in only.stdout
    unknown = pdw("check", str(config), "nope", cwd=tmp_path)
    assert unknown.returncode == 2 and "no such check: nope" in unknown.stderr
    assert not (tmp_path / "state").exists()  # check sends nothing and stores nothing


def test_status_before_any_run_and_on_a_corrupt_state_file(tmp_path):
    config = write(
        tmp_path / "w.yaml", "state_dir: ./state\nchecks: [{name: x, command: 'true'}]\n"
    )
    before = pdw("status", str(config), cwd=tmp_path)
    assert before.returncode == 1 and "Traceback" not in before.stderr
    assert "state" in before.stderr
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "state.db").write_bytes(b"this is not a database" * 100)
    for command in ("status", "run"):
        result = pdw(command, str(config), cwd=tmp_path)
        assert result.returncode == 1, command
        assert "state.db" in result.stderr and "Traceback" not in result.stderr
        assert "mv " in result.stderr  # says what to do
    assert (tmp_path / "state" / "state.db").read_bytes().startswith(b"this is not")


def test_status_after_the_runner_stopped(tmp_path, target):
    from procs import Watchdog

    config = write(
        tmp_path / "w.yaml",
        (
            "state_dir: ./state\ndefaults: {interval: 100ms}\n"
            f"checks:\n  - name: web\n    http: {{url: '{target.url}'}}\n"
        ),
    )
    with Watchdog(config) as proc:
        proc.wait_log("started:")
        from procs import wait_for

        wait_for(lambda: target.hits >= 2, what="a probe or two")
        assert proc.stop() == 0
    result = pdw("status", str(config), "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["checks"][0]["state"] == "ok" and data["checks"][0]["last_result"]["ok"]
    assert data["outbox"]["pending"] == 0


def test_run_raises_the_open_files_soft_limit_for_many_concurrent_probes():
    import resource

    from watchdog import cli as cli_module

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = min(256, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))
        cli_module._raise_open_files_limit()
        raised, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        expected = cli_module.OPEN_FILES_WANTED
        if hard != resource.RLIM_INFINITY:
            expected = min(hard, expected)
        assert raised == expected
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_low_open_files_limit_for_the_http_checks_is_warned_about():
    from watchdog import cli as cli_module

    assert cli_module._open_files_warning(65536, 5000, "5000 HTTP checks") is None
    warning = cli_module._open_files_warning(1024, 5000, "5000 HTTP checks")
    assert warning is not None and "LimitNOFILE=" in warning and "5000 HTTP checks" in warning


def test_counts_are_singular_for_one(tmp_path):
    config = write(tmp_path / "w.yaml", "checks:\n  - name: a\n    command: 'true'\n")
    assert pdw("validate", str(config)).stdout.strip().endswith("OK, 1 check in 1 file")
    broken = write(tmp_path / "b.yaml", "checks:\n  - name: a\n    command: 'true'\n    x: 1\n")
    assert "b.yaml: 1 error; nothing was started" in pdw("validate", str(broken)).stderr


def test_check_names_the_nagios_state_of_each_plugin(tmp_path):
    checks = "".join(
        f"  - name: exit{code}\n    command: \"echo said {code}; exit {code}\"\n    shell: true\n"
        for code in (0, 1, 2, 3)
    )
    config = write(tmp_path / "w.yaml", "checks:\n" + checks)
    done = pdw("check", str(config))
    assert done.returncode == 1
    rows = {line.split()[0]: line.split()[1] for line in done.stdout.splitlines()[1:5]}
    assert rows == {"exit0": "OK", "exit1": "WARNING", "exit2": "CRITICAL", "exit3": "UNKNOWN"}
