"""Two real `pd-watchdog run` members of one group on a real PostgreSQL, for the HA tests
and bench/failover.py.

Both run the same config file, as a group's members do (the same path matters: a check's
fingerprint includes its file's folder), with `state_dir: ./state-${MEMBER}` and a log of
their own; each reaches the server through a TcpProxy of its own (tests/tcpproxy.py), so a
test can cut one member off. `${PGDSN}`, `${PD_URL}` and `${MEMBER}` (a or b: a target URL may
carry it, to tell whose probe arrived) come from each member's environment.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from pathlib import Path

from procs import ROUTING_KEY, Watchdog, wait_for
from tcpproxy import TcpProxy

GROUP = "pair"
SOURCE = "ha-pair"
TOOK = "took the lock of group"
ENDED = "no longer leading group"


def key(name: str) -> str:
    return f"pd-watchdog/{SOURCE}/{name}"


def config_text(targets: dict[str, str], *, fail_after: int = 2, recover_after: int = 2,
                interval: str = "100ms", failover_after: str = "3s") -> str:
    checks = "".join(
        f'  - name: {name}\n    http: {{url: "{url}"}}\n' for name, url in targets.items()
    )
    return (
        "pagerduty:\n"
        "  routing_key: ${TEST_ROUTING_KEY}\n"
        "  url: \"${PD_URL}\"\n"
        f"  source: {SOURCE}\n"
        "state_dir: ./state-${MEMBER}\n"
        "state:\n"
        "  postgresql: \"${PGDSN}\"\n"
        f"  lock: {GROUP}\n"
        f"  failover_after: {failover_after}\n"
        "metrics:\n"
        "  listen: 127.0.0.1:0\n"
        "defaults:\n"
        f"  interval: {interval}\n"
        "  timeout: 1s\n"
        f"  fail_after: {fail_after}\n"
        f"  recover_after: {recover_after}\n"
        "checks:\n" + checks
    )


def proxied(dsn: str, port: int) -> str:
    """The DSN with the server's port replaced by a proxy's."""
    return re.sub(r"@127\.0\.0\.1:\d+/", f"@127.0.0.1:{port}/", dsn)


def server_port(dsn: str) -> int:
    return int(re.search(r"@127\.0\.0\.1:(\d+)/", dsn).group(1))


class Member:
    """One member: its folder, its proxy to PostgreSQL, its process."""

    def __init__(self, folder: Path, name: str, text: str, dsn: str, pd_url: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.config = folder / "watchdog.yaml"
        if not self.config.exists():
            self.config.write_text(text)
        self.proxy = TcpProxy(server_port(dsn))
        self.name = name
        self.env = {"TEST_ROUTING_KEY": ROUTING_KEY, "PD_URL": pd_url,
                    "PGDSN": proxied(dsn, self.proxy.port), "MEMBER": self.name}
        self.proc = Watchdog(self.config, env=self.env)
        self.proc.log_path = folder / f"{name}.log"

    def start(self) -> Member:
        self.proc.start()
        return self

    def run_log(self) -> str:
        """The log of the current run only."""
        return self.proc.log().rpartition(f"=== start {self.proc.runs}\n")[2]

    @property
    def alive(self) -> bool:
        return self.proc.proc is not None and self.proc.proc.poll() is None

    def leading(self) -> bool:
        log = self.run_log()
        return self.alive and log.count(TOOK) > log.count(ENDED)

    def terms(self) -> int:
        return self.run_log().count(TOOK)

    def port(self) -> int:
        found = wait_for(lambda: re.search(r"serving http://127\.0\.0\.1:(\d+)/metrics",
                                           self.run_log()), what="the metrics listener")
        return int(found.group(1))

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port()}{path}",
                                        timeout=5) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def close(self) -> None:
        try:
            self.proc.__exit__(None, None, None)
        finally:
            self.proxy.close()


class Pair:
    """Members a and b of one group (start them yourself)."""

    def __init__(self, root: Path, text: str, dsn: str, pd_urls: tuple[str, str]) -> None:
        self.members = [Member(root, name, text, dsn, url)
                        for name, url in zip("ab", pd_urls, strict=True)]
        self.a, self.b = self.members

    def leader(self, timeout: float = 15.0) -> Member:
        """The one member leading (waits until exactly one does)."""
        def one():
            leading = [member for member in self.members if member.leading()]
            return leading[0] if len(leading) == 1 else None
        return wait_for(one, timeout, what="exactly one member to lead")

    def other(self, member: Member) -> Member:
        return self.b if member is self.a else self.a

    def close(self) -> None:
        for member in self.members:
            member.close()
