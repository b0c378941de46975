"""The JSON Schema and the docs' settings tables: generated from the models, shipped
up to date, and true to what the loader accepts."""

from __future__ import annotations

import glob
import json
import os

import jsonschema
import pytest
import yaml

from procs import ROOT, pdw
from watchdog.config import schema

SCHEMA_PATH = ROOT / schema.SCHEMA_FILE
DOCS_PATH = ROOT / "docs" / "configuration.md"
SHIPPED = [str(ROOT / "watchdog.example.yaml"), *sorted(glob.glob(str(ROOT / "checks/*.yaml"))),
           *sorted(glob.glob(str(ROOT / "checks/*.yaml.example")))]  # enabled by renaming


class _Yaml(yaml.SafeLoader):
    """YAML as an editor's language server sees it: !secret is a string, dates are text."""


_Yaml.add_constructor("!secret", lambda loader, node: loader.construct_scalar(node))
_Yaml.add_constructor("tag:yaml.org,2002:timestamp",
                      lambda loader, node: loader.construct_scalar(node))


def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema.json_schema())


def _errors(document: object) -> list[str]:
    return [error.message for error in _validator().iter_errors(document)]


def test_the_shipped_schema_is_the_generated_one():
    assert SCHEMA_PATH.read_text() == schema.schema_text(), (
        "watchdog.schema.json is stale: run `pd-watchdog schema > watchdog.schema.json`")


def test_the_schema_is_draft_2020_12():
    generated = schema.json_schema()
    assert generated["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(generated)


@pytest.mark.parametrize("path", SHIPPED, ids=os.path.basename)
def test_the_example_and_every_shipped_check_file_validate(path):
    with open(path, encoding="utf-8") as fh:
        document = yaml.load(fh, Loader=_Yaml)  # noqa: S506 - a SafeLoader subclass
    assert _errors(document) == []


def test_the_example_names_the_schema_on_its_first_line():
    first = (ROOT / "watchdog.example.yaml").read_text().splitlines()[0]
    assert first == f"# yaml-language-server: $schema=./{schema.SCHEMA_FILE}"


@pytest.mark.parametrize(
    "document",
    [
        {"workers": 0},
        {"workers": "12"},
        {"pagerdutty": {}},
        {"pagerduty": {"api": "v3"}},
        {"metrics": {}},
        {"heartbeat": {"url": "hc-ping.com/x"}},
        {"defaults": {"interval": "5min"}},
        {"defaults": {"incident_key": "x"}},
        {"checks": [{"name": "a"}]},
        {"checks": [{"name": "a", "command": "true", "http": {"url": "http://h/"}}]},
        {"checks": [{"name": "a", "command": "true", "intervall": "1m"}]},
        {"checks": [{"name": "a", "http": {"url": "http://h/", "expect_stauts": 200}}]},
        {"checks": [{"name": "a", "http": {"url": "http://h/", "expect_status": 700}}]},
        {"checks": [{"name": "", "command": "true"}]},
    ],
)
def test_the_schema_refuses_what_the_loader_refuses(document):
    assert _errors(document)


def test_the_schema_takes_env_references_where_numbers_are_due():
    assert _errors({"workers": "${WORKERS}", "defaults": {"fail_after": "${FAILS:-3}"},
                    "metrics": {"listen": "${METRICS:-9108}"},
                    "checks": [{"name": "a", "command": "true", "timeout": "${T}"}]}) == []


def test_the_docs_tables_are_the_generated_ones():
    text = DOCS_PATH.read_text()
    start, end = text.find(schema.DOCS_BEGIN), text.find(schema.DOCS_END)
    assert 0 <= start < end, f"{DOCS_PATH.name} lost its generated-tables markers"
    shown = text[start:end + len(schema.DOCS_END)] + "\n"
    assert shown == schema.markdown(), (
        "docs/configuration.md's settings tables are stale: replace them (markers included) "
        "with the output of `pd-watchdog schema --markdown`")


def test_every_key_of_the_models_is_in_the_docs():
    tables = schema.markdown()
    for key in ("state_dir", "metrics.listen", "checks[].http.cert_min_days", "checks[].cwd",
                "defaults.retry_interval", "pagerduty.routing_key_file", "heartbeat.timeout"):
        assert f"| `{key}` |" in tables, key
    row = next(line for line in tables.splitlines() if line.startswith("| `metrics.listen` |"))
    assert "| restart |" in row
    row = next(line for line in tables.splitlines() if line.startswith("| `workers` |"))
    assert "| `64` | 1..1024 | restart |" in row


def test_the_command_prints_the_schema_and_the_tables():
    done = pdw("schema")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == schema.json_schema()
    done = pdw("schema", "--markdown")
    assert done.returncode == 0 and done.stdout == schema.markdown()
