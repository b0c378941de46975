"""What ships: watchdog.example.yaml, checks/, the unit and the docs, as a newcomer meets them.

A fresh install per docs/service.md on a host running none of the example services must
start quiet, every shipped check must fail when it cannot tell, the documented commands must
work as written (full plugin paths), a forgotten routing key must show wherever systemd users
look, and the unit's capability option must do what its comments say.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
import pytest
from dnsserver import DnsServer
from test_service import NotifySocket

from fakepd import FakePagerDuty
from procs import ROOT, ROUTING_KEY, Target, Watchdog, pdw, wait_for
from watchdog.cli import SERVICE_WITHOUT_KEY
from watchdog.config import load
from watchdog.probes.base import run_once
from watchdog.status import collect

pytestmark = pytest.mark.timeout(120)

NTP_PLUGIN = ROOT / "checks" / "plugins" / "check_ntp_sync.sh"
EXAMPLES = sorted(path.name for path in (ROOT / "checks").glob("*.yaml.example"))
FAST = "200ms"  # the e2e tests' interval for every check: same counts, seconds not minutes
SYSTEMD_VARS = ("NOTIFY_SOCKET", "INVOCATION_ID", "WATCHDOG_USEC", "STATE_DIRECTORY")


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without a routing key or systemd's variables, plus extra."""
    env = {k: v for k, v in os.environ.items()
           if k not in SYSTEMD_VARS and k != "PAGERDUTY_ROUTING_KEY"}
    env.pop("JOURNAL_STREAM", None)
    return {**env, **extra}


def fake_timedatectl(tmp_path: Path, script: str | None) -> str:
    """A PATH holding only a timedatectl stand-in (none at all when script is None)."""
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    if script is not None:
        tool = folder / "timedatectl"
        tool.write_text("#!/bin/sh\n" + script)
        tool.chmod(0o755)
    return str(folder)


def ntp(tmp_path: Path, script: str | None) -> subprocess.CompletedProcess:
    env = {"PATH": fake_timedatectl(tmp_path, script), "LANG": "C.UTF-8"}
    return subprocess.run([str(NTP_PLUGIN)], env=env, capture_output=True, text=True,
                          timeout=10, check=False)


# --------------------------------------------------------------------- the NTP plugin


def test_ntp_plugin_is_unknown_without_timedatectl(tmp_path):
    result = ntp(tmp_path, None)
    assert result.returncode == 3, result
    assert result.stdout.startswith("NTP UNKNOWN - timedatectl not found")


@pytest.mark.parametrize("script, said", [
    # What a container without systemd answers (seen on this project's CI host):
    ("echo 'System has not been booted with systemd as init system (PID 1).' >&2; exit 1\n",
     "timedatectl failed (exit 1): System has not been booted with systemd"),
    ("echo 'Failed to connect to bus: No such file or directory' >&2; exit 1\n",
     "Failed to connect to bus"),
    # The old check's blind spot: an empty answer passed `!= no`.
    ("exit 0\n", "gave no NTPSynchronized=yes|no: empty output"),
    ("echo NTPSynchronized=maybe\n", "gave no NTPSynchronized=yes|no"),
])
def test_ntp_plugin_is_unknown_when_timedatectl_cannot_tell(tmp_path, script, said):
    result = ntp(tmp_path, script)
    assert result.returncode == 3, result
    assert result.stdout.startswith("NTP UNKNOWN - ") and said in result.stdout


def test_ntp_plugin_is_ok_when_synchronized_and_critical_when_not(tmp_path):
    synced = ntp(tmp_path, "printf 'NTP=yes\\nNTPSynchronized=yes\\n'\n")
    assert (synced.returncode, synced.stdout.strip()) == (0, "NTP OK - system clock synchronized")
    waiting = ntp(tmp_path, "printf 'NTP=yes\\nNTPSynchronized=no\\n'\n")
    assert waiting.returncode == 2 and waiting.stdout.startswith("NTP CRITICAL - ")
    off = ntp(tmp_path, "printf 'NTP=no\\nNTPSynchronized=no\\n'\n")
    assert off.returncode == 2 and "network time sync is off" in off.stdout


# ------------------------------------------------------------ what ships, and what is on


def test_only_checks_true_on_any_host_ship_active():
    result = pdw("validate", "watchdog.example.yaml", env=clean_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "watchdog.example.yaml: OK, 1 check in 2 files"
    config = load(str(ROOT / "watchdog.example.yaml"), environ=clean_env())
    assert [check.name for check in config.checks] == ["root-disk"]
    # Everything host-specific is there, off, and says how to turn it on.
    assert EXAMPLES == ["backup-age.yaml.example", "cron.yaml.example", "dns.yaml.example",
                        "http-health.yaml.example", "monitoring-plugins.yaml.example",
                        "ntp.yaml.example", "passive.yaml.example", "tcp-port.yaml.example",
                        "website.yaml.example"]
    for name in EXAMPLES:
        text = (ROOT / "checks" / name).read_text()
        assert "OFF as shipped" in text and f"mv checks/{name} checks/{name[:-8]}" in text


def ship_to(folder: Path) -> Path:
    """watchdog.example.yaml and checks/ copied as they ship; returns the main file."""
    shutil.copytree(ROOT / "checks", folder / "checks")
    shutil.copy(ROOT / "watchdog.example.yaml", folder / "watchdog.yaml")
    return folder / "watchdog.yaml"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def target():
    made = Target()
    yield made
    made.close()


def test_every_example_validates_once_enabled_and_check_shows_what_it_does(tmp_path, target):
    listening = socket.create_server(("127.0.0.1", 0))
    backup = tmp_path / "db.dump"
    backup.write_bytes(b"\0" * 1024 * 1024)
    me = psutil.Process()  # pytest itself stands in for the daemon (check leaves itself out)
    dns_server = DnsServer()
    env = clean_env(
        BACKUP_FILE=str(backup),
        CRON_PROCESS=me.name(),
        CRON_USER=me.username(),
        DNS_SERVER=dns_server.address,
        DNS_CHECK_NAME="a.test",
        APP_HEALTH_URL=target.url,
        POSTGRES_PORT=str(listening.getsockname()[1]),
        WEBSITE_URL=target.url,
        PING_HOST="127.0.0.1",
        PATH=fake_timedatectl(tmp_path, "printf 'NTP=yes\\nNTPSynchronized=yes\\n'\n")
        + ":" + os.environ.get("PATH", "/usr/bin:/bin"),
    )
    expected = {
        "backup-age.yaml.example": {"backup-age": f"{backup}: 1.0 MiB, modified "},
        "cron.yaml.example": {"cron": f"{me.name()}: "},
        "dns.yaml.example": {"dns-resolves": "NOERROR in "},
        "http-health.yaml.example": {"app-health": "OK  "},
        "tcp-port.yaml.example": {"postgres-port": "connected to 127.0.0.1:"},
        "ntp.yaml.example": {"ntp-synchronized": "NTP OK - system clock synchronized"},
        "website.yaml.example": {"public-website": "HTTP 200 in "},
        # The plugins may be absent ("command not found"); a row shows either way. (Not the
        # ping check: 5 real pings take 4 s.)
        "monitoring-plugins.yaml.example": {"load": ""},
        "passive.yaml.example": {"backup": "PENDING  -        nothing to judge yet"},
    }
    more = {"monitoring-plugins.yaml.example": 1}  # gateway-ping: validated only
    assert sorted(expected) == EXAMPLES
    try:
        for example, rows in expected.items():
            folder = tmp_path / example
            folder.mkdir()
            config = ship_to(folder)
            enabled = folder / "checks" / example[: -len(".example")]
            (folder / "checks" / example).rename(enabled)
            checked = pdw("validate", str(config), env=env)
            assert checked.returncode == 0, (example, checked.stderr)
            assert f"OK, {1 + len(rows) + more.get(example, 0)} checks in 3 files" \
                in checked.stdout
            ran = pdw("check", str(config), *rows, env=env)
            assert ran.returncode in (0, 1) and "Traceback" not in ran.stderr, ran
            table = ran.stdout.splitlines()
            for name, said in rows.items():
                [row] = [line for line in table if line.startswith(name + " ")]
                assert said in row, (example, row)
    finally:
        listening.close()
        dns_server.close()


def test_the_website_example_cannot_run_until_it_is_given_a_url(tmp_path):
    config = ship_to(tmp_path)
    (tmp_path / "checks" / "website.yaml.example").rename(tmp_path / "checks" / "website.yaml")
    result = pdw("validate", str(config), env=clean_env())
    assert result.returncode == 1 and "WEBSITE_URL" in result.stderr


# --------------------------------------------------------- the docs, as a newcomer reads them


def install_commands(etc: Path) -> str:
    """Step 3 of docs/service.md's install block, verbatim but for /etc/pd-watchdog."""
    text = (ROOT / "docs" / "service.md").read_text()
    section = text.split("## Install as a service", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    step = block.split("\n# 3.", 1)[1].split("\n# 4.", 1)[0]
    lines = [line for line in step.splitlines()[1:] if line and not line.startswith("#")]
    assert any("state_dir: /var/lib/pd-watchdog" in line for line in lines), lines
    return "\n".join(lines).replace("/etc/pd-watchdog", str(etc)) + "\n"


def install_per_docs(tmp_path: Path) -> Path:
    etc = tmp_path / "etc" / "pd-watchdog"
    etc.parent.mkdir()
    subprocess.run(["bash", "-euo", "pipefail", "-c", install_commands(etc)], cwd=ROOT,
                   env={**clean_env(), "EDITOR": "true"}, check=True, timeout=30)
    return etc


def test_docs_install_steps_set_state_dir_and_check_shows_each_active_check(tmp_path):
    etc = install_per_docs(tmp_path)
    config = load(str(etc / "watchdog.yaml"), environ=clean_env())
    assert config.state_dir == "/var/lib/pd-watchdog"
    assert sorted(p.name for p in (etc / "checks").iterdir()) == sorted(
        ["disk.yaml", "plugins", *EXAMPLES])
    assert (etc / "env").stat().st_mode & 0o777 == 0o600
    # Step 4: what each active check would do, sending nothing.
    result = pdw("check", str(etc / "watchdog.yaml"), env=clean_env())
    assert "Traceback" not in result.stderr, result.stderr
    rows = result.stdout.splitlines()
    assert rows[0].split() == ["CHECK", "RESULT", "LATENCY", "SUMMARY"]
    [disk] = [row for row in rows if row.startswith("root-disk ")]
    assert "DISK " in disk
    assert rows[-1] in ("1 passed, 0 failed", "0 passed, 1 failed")
    assert result.returncode == (0 if rows[-1].startswith("1 passed") else 1)


def edit(path: Path, pattern: str, replacement: str, count: int | None = None) -> int:
    """One operator edit; the pattern must match (count times, when given)."""
    text, made = re.subn(pattern, replacement, path.read_text(), flags=re.MULTILINE)
    assert made and (count is None or made == count), (path, pattern, made)
    path.write_text(text)
    return made


def speed_up(path: Path) -> None:
    edit(path, r"^(\s*)((?:retry_)?interval): \S+", rf"\1\2: {FAST}")


def env_file(path: Path) -> dict[str, str]:
    """KEY=value lines, as systemd's EnvironmentFile= reads the shipped env file."""
    pairs = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value
    return pairs


def test_a_newcomers_install_starts_quiet_and_pages_once_a_missing_service_is_enabled(tmp_path):
    """docs/service.md's steps on a host running none of the example services, a key set,
    started as systemd would: no trigger within 3 intervals of the shortest check. The only
    edits besides the documented ones: the PagerDuty URL (to the stand-in), state_dir (into
    tmp) and every interval (to 200ms, so 3 intervals take 0.6 s, not 15 minutes)."""
    etc = install_per_docs(tmp_path)
    main = etc / "watchdog.yaml"
    state = tmp_path / "var" / "lib" / "pd-watchdog"
    edit(etc / "env", r"^PAGERDUTY_ROUTING_KEY=$", f"PAGERDUTY_ROUTING_KEY={ROUTING_KEY}", 1)
    (etc / "env").write_text((etc / "env").read_text()
                             + f"APP_HEALTH_URL=http://127.0.0.1:{closed_port()}/healthz\n")
    edit(main, r"^state_dir: /var/lib/pd-watchdog$", f"state_dir: {state}", 1)
    with FakePagerDuty() as pd:
        edit(main, r"^(  url: )https://events\.pagerduty\.com\b", rf"\g<1>{pd.url}", 1)
        for path in (main, etc / "checks" / "disk.yaml"):
            speed_up(path)
        notify = NotifySocket(tmp_path / "notify.sock")
        env = {**clean_env(), **env_file(etc / "env"), "NOTIFY_SOCKET": notify.path,
               "INVOCATION_ID": "0" * 32, "STATE_DIRECTORY": str(state)}
        config = load(str(main), environ=env)
        assert not config.dry_run and config.heartbeat is None
        assert {check.interval for check in config.checks} == {0.2}
        [disk] = config.checks
        if not run_once(disk.probe, disk.timeout).ok:
            pytest.skip("this host's / is past the shipped root-disk thresholds, so that "
                        "check rightly pages; the quiet start cannot be shown here")
        try:
            with Watchdog(main, env=env) as proc:
                wait_for(lambda: "READY=1" in notify.lines(), what="READY=1")
                first = wait_for(lambda: last_run(main, env), what="a first root-disk result")
                wait_for(lambda: last_run(main, env) - first >= 3 * 0.2, timeout=20,
                         what="3 more intervals of root-disk")
                assert pd.requests == [], pd.describe()
                statuses = [line for line in notify.lines() if line.startswith("STATUS=")]
                assert statuses[-1] == "STATUS=1 check, 0 triggered, 0 events pending"
                # The control: enable an example for a service this host does not run.
                example = etc / "checks" / "http-health.yaml"
                (etc / "checks" / "http-health.yaml.example").rename(example)
                speed_up(example)
                proc.signal(signal.SIGHUP)
                proc.wait_log("reload: 2 checks from 3 files")
                app = f"pd-watchdog/{config.pagerduty.source}/app-health"
                pd.wait_for(lambda: pd.actions_for(app) == ["trigger"], timeout=15)
                assert proc.stop() == 0
        finally:
            notify.close()
        assert [event["body"]["dedup_key"] for event in pd.events] == [app]
    queued = [line for line in proc.log().splitlines() if ": queued " in line]
    assert queued and all("check app-health: queued trigger" in line for line in queued)


def last_run(main: Path, env: dict[str, str]) -> float:
    config = load(str(main), environ=env, need_key=False)
    rows = collect(config.state_dir, config.checks)["checks"]
    [row] = [row for row in rows if row["name"] == "root-disk"]
    return row["last_at"] or 0.0


BARE_PLUGIN = [
    # command: check_x ..., command: "check_x ...", command: [check_x, ...]
    re.compile(r"command:\s*\[?\s*[\"']?(check_\w+)"),
    # a shell line (or a `$ ` prompt) starting with check_x
    re.compile(r"^\s*(?:\$ )?(check_\w+)\s+-"),
    # `check_x -w ...` written inline in prose
    re.compile(r"`(check_\w+) -"),
]


def shipped_texts() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
            ROOT / "watchdog.example.yaml", *sorted((ROOT / "checks").glob("*.yaml*")),
            *sorted((ROOT / "deploy").iterdir())]


def test_docs_never_show_a_plugin_as_a_bare_command():
    found = []
    for path in shipped_texts():
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines, 1):
            following = lines[number] if number < len(lines) else ""
            listed = re.match(r"\s*#?\s*-\s*[\"']?(check_\w+)", following) \
                if re.search(r"command:\s*$", line) else None
            for match in [*(p.search(line) for p in BARE_PLUGIN), listed]:
                if match:
                    found.append(f"{path.relative_to(ROOT)}:{number}: {match.group(1)}")
    assert found == [], "plugins need their full path (/usr/lib/nagios/plugins/...):\n" + \
        "\n".join(found)
    probes = (ROOT / "docs" / "probes.md").read_text()
    assert "/usr/lib/nagios/plugins" in probes and "/usr/lib64/nagios/plugins" in probes


SAMPLE_MAIN = """\
# pd-watchdog configuration
pagerduty:
  routing_key: ${PAGERDUTY_ROUTING_KEY:-}
include:
  - checks/*.yaml
defaults:
  timout: 5s
"""
SAMPLE_WEB = """\
checks:
  - name: home
    http: {url: "https://www.example.com/"}
  - name: login
    http: {url: "https://www.example.com/login"}
  - name: search
    http: {url: "https://www.example.com/search"}
  - name: checkout
    http:
      url: https://www.example.com/checkout
      method: GET
      expect_status: 2000
"""


@pytest.mark.parametrize("doc", ["README.md", "docs/configuration.md"])
def test_the_sample_error_message_is_real_output(tmp_path, doc):
    text = (ROOT / doc).read_text()
    [block] = re.findall(r"```\n(\$ pd-watchdog validate watchdog\.yaml\n.*?)```", text, re.S)
    command, *shown = block.splitlines()
    (tmp_path / "checks").mkdir()
    (tmp_path / "watchdog.yaml").write_text(SAMPLE_MAIN)
    (tmp_path / "checks" / "web.yaml").write_text(SAMPLE_WEB)
    result = pdw(*command.split()[2:], cwd=tmp_path, env=clean_env())
    assert result.returncode == 1
    assert (result.stdout + result.stderr).splitlines() == shown


# ------------------------------------------------------------ a forgotten key, as a service


def no_key_config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "watchdog.yaml"
    path.write_text(
        "pagerduty: {routing_key: '${PAGERDUTY_ROUTING_KEY:-}'}\nstate_dir: ./state\n"
        "defaults: {interval: 100ms, timeout: 1s}\n"
        f"checks:\n  - name: web\n    http: {{url: '{url}'}}\n"
    )
    return path


@pytest.mark.parametrize("systemd, key, warned", [
    ({"INVOCATION_ID": "0" * 32}, "", True),      # systemd-run, or the unit itself
    ({"NOTIFY_SOCKET": "/run/systemd/notify"}, "", True),
    ({}, "", False),                              # a shell: the usual dry-run warning only
    ({"INVOCATION_ID": "0" * 32}, ROUTING_KEY, False),
])
def test_validate_under_systemd_warns_about_a_missing_key(tmp_path, systemd, key, warned):
    config = no_key_config(tmp_path, "http://127.0.0.1:9/")
    result = pdw("validate", str(config), env=clean_env(PAGERDUTY_ROUTING_KEY=key, **systemd))
    assert result.returncode == 0, result.stderr
    assert (f"warning: {SERVICE_WITHOUT_KEY}" in result.stderr.splitlines()) == warned
    assert ("dry-run" in result.stderr) == (key == "")


@pytest.mark.parametrize("args", [(), ("--dry-run",)])
def test_status_line_and_status_say_why_a_service_runs_dry(tmp_path, target, args):
    config = no_key_config(tmp_path, target.url)
    notify = NotifySocket(tmp_path / "notify.sock")
    env = clean_env(NOTIFY_SOCKET=notify.path, INVOCATION_ID="0" * 32)
    try:
        with Watchdog(config, *args, env=env) as proc:
            wait_for(lambda: "READY=1" in notify.lines(), what="READY=1")
            [status] = [line for line in notify.lines() if line.startswith("STATUS=")][:1]
            shown = wait_for(lambda: dry_run_lines(config, env), what="status to say dry-run")
            table = pdw("status", str(config), env=env)
            info = json.loads(pdw("status", "--json", str(config), env=env).stdout)
            assert proc.stop() == 0
    finally:
        notify.close()
    pid = proc.proc.pid
    if args:  # run dry on purpose: said, but quietly
        assert status == "STATUS=1 check (1 pending), 0 triggered, 0 events pending (dry-run)"
        assert shown == f"RUNNER IN DRY-RUN (pid {pid}, --dry-run): events are logged, " \
                        "not sent to PagerDuty"
        assert SERVICE_WITHOUT_KEY not in proc.log()
        assert info["runner"]["dry_run"] == "--dry-run"
    else:
        assert status == ("STATUS=NO ROUTING KEY: dry-run, nothing is sent to PagerDuty; "
                          "1 check (1 pending), 0 triggered, 0 events pending")
        assert shown == f"RUNNER IN DRY-RUN (pid {pid}): no routing key; events are logged, " \
                        "not sent to PagerDuty, so nothing pages"
        assert f"WARNING {SERVICE_WITHOUT_KEY}" in proc.log()
        assert info["runner"]["dry_run"] == "no routing key"
    assert table.stdout.startswith("RUNNER IN DRY-RUN"), table.stdout


def dry_run_lines(config: Path, env: dict[str, str]) -> str | None:
    first = pdw("status", str(config), env=env).stdout.splitlines()[:1]
    return first[0] if first and first[0].startswith("RUNNER IN DRY-RUN") else None


# ------------------------------------------------------------------ the unit's capabilities


UNIT = ROOT / "deploy" / "pd-watchdog.service"
CAP_LINES = ("#CapabilityBoundingSet=CAP_NET_RAW", "#AmbientCapabilities=CAP_NET_RAW")


def parsed_capabilities(tmp_path: Path, uncomment: bool) -> dict[str, str]:
    """The unit's capability sets as systemd parses them (systemd-analyze's debug dump)."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    text = UNIT.read_text().replace("/opt/pd-watchdog/bin/pd-watchdog", sys.executable)
    if uncomment:
        for line in CAP_LINES:
            assert text.count(f"\n{line}\n") == 1, f"the unit should offer {line!r}"
            text = text.replace(f"\n{line}\n", f"\n{line[1:]}\n")
    copy = tmp_path / ("enabled" if uncomment else "shipped") / "pd-watchdog.service"
    copy.parent.mkdir()
    copy.write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60,
        env={**clean_env(), "SYSTEMD_LOG_LEVEL": "debug", "SYSTEMD_LOG_TARGET": "console"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    dump = result.stdout + result.stderr
    if "-> Unit pd-watchdog.service:" not in dump:
        pytest.skip("this systemd-analyze does not print the parsed unit")
    sets = dict(re.findall(r"^\s+(CapabilityBoundingSet|AmbientCapabilities): ?(.*)$", dump,
                           re.M))
    return {name: sets.get(name, "").strip() for name in ("CapabilityBoundingSet",
                                                          "AmbientCapabilities")}


def test_the_unit_offers_cap_net_raw_as_a_commented_option(tmp_path):
    assert parsed_capabilities(tmp_path, uncomment=False) == {
        "CapabilityBoundingSet": "", "AmbientCapabilities": ""}
    assert parsed_capabilities(tmp_path, uncomment=True) == {
        "CapabilityBoundingSet": "cap_net_raw", "AmbientCapabilities": "cap_net_raw"}


def test_a_file_capability_binary_runs_only_with_the_option(tmp_path):
    """Debian's /bin/ping holds cap_net_raw=ep; a copy of cat given the same stands in for it,
    run as the service's process would run a plugin: non-root, no_new_privs, the unit's sets
    (as systemd parsed them), a shell in between as the runner is."""
    tools = [shutil.which(name) for name in ("setpriv", "setcap", "cat")]
    if os.geteuid() != 0 or None in tools:
        pytest.skip("needs root, setpriv and setcap (util-linux, libcap2-bin)")
    setpriv, setcap, cat = tools
    shipped = parsed_capabilities(tmp_path, uncomment=False)
    enabled = parsed_capabilities(tmp_path, uncomment=True)
    folder = Path(tempfile.mkdtemp(prefix="pdw-caps-", dir="/tmp"))  # nobody must reach it
    try:
        folder.chmod(0o755)
        plugin = folder / "cat-net-raw"
        shutil.copy(cat, plugin)
        plugin.chmod(0o755)
        if subprocess.run([setcap, "cap_net_raw=ep", str(plugin)], capture_output=True,
                          timeout=10).returncode:
            pytest.skip("cannot set file capabilities on /tmp here")

        def run_as_the_service(sets: dict[str, str]) -> subprocess.CompletedProcess:
            def setpriv_list(names: str) -> str:  # "cap_net_raw" -> ",+net_raw"
                return "".join(f",+{cap.removeprefix('cap_')}" for cap in names.split())

            caps = setpriv_list(sets["AmbientCapabilities"])
            bounding = setpriv_list(sets["CapabilityBoundingSet"])
            return subprocess.run(
                [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--no-new-privs",
                 f"--bounding-set=-all{bounding}", f"--inh-caps=-all{caps}",
                 f"--ambient-caps=-all{caps}", "/bin/sh", "-c", f"{plugin} /proc/self/status"],
                capture_output=True, text=True, timeout=10,
            )

        refused = run_as_the_service(shipped)
        assert refused.returncode != 0 and f"{plugin}: Operation not permitted" in refused.stderr
        allowed = run_as_the_service(enabled)
        assert allowed.returncode == 0, allowed.stderr
        effective = re.search(r"^CapEff:\s*([0-9a-f]+)$", allowed.stdout, re.M)
        assert effective and int(effective.group(1), 16) & (1 << 13)  # CAP_NET_RAW is 13
    finally:
        shutil.rmtree(folder)
