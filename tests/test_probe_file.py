"""File probe on real files: existence and absence, age (os.utime), size, owner, mode,
content (bounded), permission errors, and the config's messages with file:line."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from procs import ROUTING_KEY, pdw
from watchdog.config import ConfigError, load
from watchdog.probes import file
from watchdog.probes.base import OptionError, run_once

pytestmark = pytest.mark.timeout(30)
NOBODY = 65534


def probe(tmp_path: Path, **spec) -> file.FileProbe:
    return file.parse({"file": spec}, str(tmp_path))


def run(tmp_path: Path, **spec):
    return run_once(probe(tmp_path, **spec), 5)


def test_a_file_that_is_there_passes_and_says_its_size_and_age(tmp_path):
    (tmp_path / "backup.tar").write_bytes(b"x" * 2048)
    result = run(tmp_path, path="backup.tar")
    assert result.ok and result.severity is None
    assert result.summary.startswith(f"{tmp_path}/backup.tar: 2.0 KiB, modified ")
    assert result.details["size_bytes"] == 2048 and result.details["exists"] is True
    assert result.details["type"] == "file" and result.details["uid"] == os.getuid()


def test_a_missing_file_fails_and_exists_false_checks_absence(tmp_path):
    missing = run(tmp_path, path="gone.lock")
    assert not missing.ok and missing.summary == f"file not found: {tmp_path}/gone.lock"
    assert missing.details == {"path": f"{tmp_path}/gone.lock", "exists": False}
    absent = run(tmp_path, path="gone.lock", exists=False)
    assert absent.ok and absent.summary == f"{tmp_path}/gone.lock is absent"
    (tmp_path / "gone.lock").write_text("")
    present = run(tmp_path, path="gone.lock", exists=False)
    assert not present.ok and present.summary == f"{tmp_path}/gone.lock exists (expected absent)"
    under_a_file = run(tmp_path, path="gone.lock/inside")
    assert not under_a_file.ok and under_a_file.summary.startswith("file not found: ")


def test_max_age_reads_the_mtime(tmp_path):
    dump = tmp_path / "db.dump"
    dump.write_text("dump")
    old = time.time() - 27 * 3600
    os.utime(dump, (old, old))
    stale = run(tmp_path, path="db.dump", max_age="26h")
    assert not stale.ok and stale.summary == f"{dump} is 1d3h old (max 1d2h)"
    assert 27 * 3600 <= stale.details["age_seconds"] < 27 * 3600 + 60
    fresh = time.time() - 25 * 3600
    os.utime(dump, (fresh, fresh))
    assert run(tmp_path, path="db.dump", max_age="26h").ok


@pytest.mark.parametrize(("size", "bounds", "said"), [
    (10, {"min_size": "1KiB"}, "is 10 B (min 1.0 KiB)"),
    (3 * 1024 * 1024, {"max_size": "2MiB"}, "is 3.0 MiB (max 2.0 MiB)"),
    (1500, {"min_size": "1kB", "max_size": 1500}, None),
    (0, {"min_size": 1}, "is 0 B (min 1 B)"),
])
def test_min_and_max_size(tmp_path, size, bounds, said):
    (tmp_path / "f").write_bytes(b"\0" * size)
    result = run(tmp_path, path="f", **bounds)
    assert result.ok is (said is None), result
    if said:
        assert result.summary == f"{tmp_path}/f {said}"


def test_mode_is_exact_and_owner_is_a_name_or_uid(tmp_path):
    target = tmp_path / "secret.conf"
    target.write_text("k=v")
    target.chmod(0o640)
    assert run(tmp_path, path="secret.conf", mode="0640").ok
    assert run(tmp_path, path="secret.conf", mode="640").ok
    loose = run(tmp_path, path="secret.conf", mode="0600")
    assert loose.summary == f"{target} has mode 0640 (expected 0600)"
    assert loose.details["mode"] == "0640"
    me = file._facts(target.stat())["owner"]
    assert run(tmp_path, path="secret.conf", owner=me).ok
    assert run(tmp_path, path="secret.conf", owner=os.getuid()).ok
    assert run(tmp_path, path="secret.conf", owner=str(os.getuid())).ok
    other = run(tmp_path, path="secret.conf", owner="nobody")
    assert not other.ok
    assert other.summary == f"{target} is owned by {me} (uid {os.getuid()}), expected nobody"
    assert not run(tmp_path, path="secret.conf", owner=NOBODY).ok


def test_contains_a_string_or_a_regex_in_the_first_mebibyte(tmp_path):
    status = tmp_path / "status"
    status.write_text("last run: OK\nerrors: 0\n")
    assert run(tmp_path, path="status", contains="errors: 0").ok
    assert run(tmp_path, path="status", contains={"regex": r"^errors: 0$"}).ok is False
    assert run(tmp_path, path="status", contains={"regex": r"(?m)^errors: 0$"}).ok
    missed = run(tmp_path, path="status", contains="FAILED")
    assert missed.summary == f"{status} does not contain 'FAILED'"
    no_match = run(tmp_path, path="status", contains={"regex": "^ERR"})
    assert no_match.summary == f"{status} does not match /^ERR/"
    big = tmp_path / "big.log"
    big.write_bytes(b"a" * file.CONTENT_CAP + b"NEEDLE")
    cut = run(tmp_path, path="big.log", contains="NEEDLE")
    assert cut.summary == f"{big} does not contain 'NEEDLE' in the first 1 MiB"
    assert cut.details["content_truncated"] is True
    folder = run(tmp_path, path=".", contains="x")
    assert folder.summary == f"{tmp_path} is a folder: contains needs a file"


def _as_nobody(check: file.FileProbe) -> tuple[bool, str, str | None]:
    """Run the probe as an unprivileged user: root reads everything, so a forked child
    gives up root for good first (the test process keeps it)."""
    if os.getuid() != 0:
        result = run_once(check, 5)
        return result.ok, result.summary, result.severity
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            result = run_once(check, 5)
            os.write(write, json.dumps([result.ok, result.summary, result.severity]).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        said = pipe.read()
    os.waitpid(pid, 0)
    return tuple(json.loads(said))


def test_permission_errors_are_results_not_crashes(tmp_path):
    shared = Path(tempfile.mkdtemp(prefix="pdw-file-"))
    try:
        shared.chmod(0o755)
        secret = shared / "secret"
        secret.write_text("token")
        secret.chmod(0o600 if os.getuid() == 0 else 0o000)
        hidden = shared / "locked"
        hidden.mkdir()
        (hidden / "inside").write_text("x")
        hidden.chmod(0o700 if os.getuid() == 0 else 0o000)
        ok, summary, severity = _as_nobody(file.FileProbe(str(secret), contains=file.TextMatch(
            text="token")))
        assert (ok, severity) == (False, "error")
        assert summary == f"permission denied: cannot read {secret} (the runner's user may not)"
        ok, summary, severity = _as_nobody(file.FileProbe(str(hidden / "inside")))
        assert (ok, severity) == (False, "error")
        assert summary.startswith(f"permission denied: cannot stat {hidden}/inside")
    finally:
        hidden.chmod(0o700)
        shutil.rmtree(shared)


# --------------------------------------------------------------------- the config


def test_option_errors_are_all_said_at_once():
    with pytest.raises(OptionError) as info:
        file.parse({"file": {"path": "x", "max_age": "1x", "min_size": "10GB",
                             "max_size": "1MiB", "contains": {"regex": "("}, "mode": 0o640,
                             "owner": -1}}, "/")
    said = dict(info.value.problems)
    assert said["file.min_size"] == "is larger than max_size"
    assert said["file.max_age"].startswith("not a duration: '1x'")
    assert said["file.contains"].startswith("regex: invalid regular expression: ")
    assert said["file.mode"].startswith("must be octal permission bits in quotes")
    assert said["file.owner"] == "a uid must be 0 or more"
    with pytest.raises(OptionError) as info:
        file.parse({"file": {"path": "x", "exists": False, "max_age": "1h",
                             "min_size": "lots", "contains": {"rgx": "a"}}}, "/")
    assert dict(info.value.problems) == {
        "file.max_age": "has no effect with exists: false; remove one of them",
        "file.min_size": "not a size: 'lots' — write e.g. 512MiB, 1GiB, 100kB or a number of "
                         "bytes",
        "file.contains": "must be a string (found as is) or {regex: '...'}",
    }
    with pytest.raises(OptionError) as info:
        file.parse({"file": {"exists": True}}, "/")
    assert info.value.problems == [("file.path", "required: the path of the file to check")]


CONFIG = f"""\
pagerduty: {{routing_key: {ROUTING_KEY}}}
checks:
  - name: backup-age
    file: {{path: backup.tar, max_age: 26h, min_size: 1KiB}}
  - name: no-lock
    file: {{path: job.lock, exists: false}}
  - name: bad
    file:
      path: backup.tar
      mode: 0640
"""


def test_validate_names_file_and_line_and_check_shows_each_result(tmp_path):
    main = tmp_path / "watchdog.yaml"
    main.write_text(CONFIG)
    (tmp_path / "backup.tar").write_bytes(b"b" * 4096)
    with pytest.raises(ConfigError) as info:
        load(str(main), environ={})
    assert info.value.errors == [
        f"{main}:10: checks[2].file.mode: must be octal permission bits in quotes, such as "
        "'0640' (unquoted, YAML reads 0640 as a number)"]
    refused = pdw("validate", str(main))
    assert refused.returncode != 0 and f"{main}:10: checks[2].file.mode" in refused.stderr
    main.write_text(CONFIG.replace("0640", "'0640'"))
    (tmp_path / "backup.tar").chmod(0o640)
    ran = pdw("check", str(main))
    assert "Traceback" not in ran.stderr, ran.stderr
    rows = {line.split()[0]: line for line in ran.stdout.splitlines() if line.strip()}
    assert "OK" in rows["backup-age"] and f"{tmp_path}/backup.tar: 4.0 KiB, modified " \
        in rows["backup-age"]
    assert f"{tmp_path}/job.lock is absent" in rows["no-lock"]
    (tmp_path / "job.lock").write_text("")
    ran = pdw("check", str(main), "no-lock")
    assert ran.returncode == 1 and f"{tmp_path}/job.lock exists (expected absent)" in ran.stdout


def test_sizes_are_read_in_one_place():
    from watchdog.sizes import format_size, parse_size

    assert parse_size("512MiB") == 512 * 1024**2 and parse_size("1GiB") == 1024**3
    assert parse_size("1.5GB") == 1_500_000_000 and parse_size(" 100 kB ") == 100_000
    assert parse_size(4096) == parse_size("4096") == parse_size("4096B") == 4096
    for bad in ("1k", "MiB", "-1", True, None, -5):
        with pytest.raises(ValueError):
            parse_size(bad)
    assert [format_size(n) for n in (0, 1023, 1536, 45 * 1024**2, 2 * 1024**4)] == [
        "0 B", "1023 B", "1.5 KiB", "45.0 MiB", "2.0 TiB"]
