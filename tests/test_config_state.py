"""`state:` (issue 16): SQLite unless a postgresql:// URL is given; the password never shown."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from procs import pdw
from watchdog.config import ConfigError, load
from watchdog.config import statecfg as statecfg_module
from watchdog.config.reload import Change
from watchdog.dsn import Dsn, redact

CHECK = "checks:\n  - name: a\n    command: 'true'\n"
URL = "postgresql://wd:hunter22secret@db.example.net:5433/watchdog?sslmode=require"


SOURCE = "pagerduty: {source: pair}\n"  # a group keys its incidents by one name


def write(tmp_path: Path, text: str, name: str = "watchdog.yaml", source: str = SOURCE) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text) + source + CHECK)
    path.chmod(0o600)
    return str(path)


def errors(path: str, environ: dict | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(path, environ=environ or {}, need_key=False)
    folder = str(Path(path).parent) + "/"
    return [line.replace(folder, "") for line in info.value.errors]


def test_without_state_the_store_is_sqlite_as_before(tmp_path: Path) -> None:
    config = load(write(tmp_path, ""), environ={}, need_key=False)
    assert config.settings.state is None


def test_a_postgresql_url_with_the_defaults(tmp_path: Path) -> None:
    config = load(write(tmp_path, f"state: {{postgresql: '{URL}'}}\n"), environ={},
                  need_key=False)
    state = config.settings.state
    assert state.postgresql == Dsn(URL)
    assert state.postgresql.text == URL
    assert (state.lock, state.failover_after) == ("pd-watchdog", 10.0)


def test_lock_and_failover_after(tmp_path: Path) -> None:
    config = load(write(tmp_path, f"""\
        state:
          postgresql: {URL}
          lock: edge-pair
          failover_after: 30s
        """), environ={}, need_key=False)
    assert (config.settings.state.lock, config.settings.state.failover_after) == \
        ("edge-pair", 30.0)


def test_bad_values_are_errors_at_their_line_and_hide_the_password(tmp_path: Path) -> None:
    found = errors(write(tmp_path, """\
        state:
          postgresql: mysql://wd:hunter22secret@db/wd
          lock: ""
          failover_after: 2s
        """))
    assert found == [
        "watchdog.yaml:2: state.postgresql: must be a postgresql:// URL, not "
        "'mysql://wd:***@db/wd' — e.g. postgresql://watchdog@db.example.net/watchdog",
        "watchdog.yaml:3: state.lock: must be a non-empty name of at most 200 characters "
        "without control characters",
        "watchdog.yaml:4: state.failover_after: must be at least 3s, got '2s' — use 3s or more",
    ]


def test_the_url_from_the_environment_or_unset_for_sqlite(tmp_path: Path) -> None:
    path = write(tmp_path, "state:\n  postgresql: ${PG_DSN:-}\n")
    assert load(path, environ={"PG_DSN": URL}, need_key=False).settings.state.postgresql \
        == Dsn(URL)
    assert load(path, environ={}, need_key=False).settings.state is None


def test_the_url_from_a_file_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "pg.url").write_text(URL + "\n")
    config = load(write(tmp_path, "state:\n  postgresql_file: pg.url\n"), environ={},
                  need_key=False)
    assert config.settings.state.postgresql == Dsn(URL)
    assert "hunter22secret" in config.secrets


def test_a_missing_url_file_and_both_keys_are_errors(tmp_path: Path) -> None:
    assert errors(write(tmp_path, "state:\n  postgresql_file: nowhere.url\n")) == [
        "watchdog.yaml:2: state.postgresql_file: cannot read nowhere.url: No such file or "
        "directory — check the path (relative to this file) and that the runner may read it"]
    assert errors(write(tmp_path, f"state:\n  postgresql: {URL}\n  postgresql_file: x\n")) \
        == ["watchdog.yaml:3: state.postgresql_file: both postgresql and postgresql_file "
            "are set — keep only one"]


def test_the_password_is_a_secret_and_never_printed(tmp_path: Path) -> None:
    path = write(tmp_path, f"state:\n  postgresql: {URL}\n")
    config = load(path, environ={}, need_key=False)
    assert "hunter22secret" in config.secrets
    shown = f"{config.settings.state} {config.settings.state.postgresql}"
    assert "hunter22secret" not in shown
    assert "postgresql://wd:***@db.example.net:5433/watchdog" in shown
    assert "hunter22secret" not in Change(("state", "postgresql"), None, Dsn(URL)).show(
        Dsn(URL))
    for command in ("validate", "check"):
        done = pdw(command, path)
        assert "hunter22secret" not in done.stdout + done.stderr, command


def test_a_password_option_is_hidden_too() -> None:
    assert redact("postgresql://h/db?password=s3cret&sslmode=require") == \
        "postgresql://h/db?password=***&sslmode=require"
    assert redact("postgresql://u:p%40ss@h1:5432,h2:5432/db") == \
        "postgresql://u:***@h1:5432,h2:5432/db"


def test_without_the_driver_it_says_what_to_install(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(statecfg_module.importlib.util, "find_spec",
                        lambda name: None if name == "psycopg" else object())
    assert errors(write(tmp_path, f"state:\n  postgresql: {URL}\n")) == [
        "watchdog.yaml:2: state.postgresql: the PostgreSQL state needs the psycopg driver, "
        "which is not installed — pip install 'pd-watchdog[postgresql]'"]


def test_a_group_without_an_explicit_source_is_refused(tmp_path: Path) -> None:
    # Each host's default incident keys carry its hostname: a takeover would page again.
    assert errors(write(tmp_path, f"state:\n  postgresql: {URL}\n", source="")) == [
        "watchdog.yaml:2: state.postgresql: a group's members must key incidents alike: set "
        "pagerduty.source to one name on every member (e.g. source: web-pair) — by default "
        "each host keys its incidents by its own hostname, and a takeover would page again"]
    # SQLite (an empty URL) needs no source.
    config = load(write(tmp_path, "state:\n  postgresql: ${PG_DSN:-}\n", source=""),
                  environ={}, need_key=False)
    assert config.settings.state is None
