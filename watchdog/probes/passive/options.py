"""The `passive:` check key, validated once into a PassiveProbe."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from watchdog.config.fields import Duration, Says, Section
from watchdog.probes.base import validate
from watchdog.probes.passive.judge import Expect
from watchdog.probes.passive.probe import PassiveProbe

NAME = "passive"


class Expectation(Section):
    """When reports must arrive (`pd-watchdog ping`, `wrap`, the push endpoint). The
    check's interval is how often it is judged: a few minutes is plenty."""

    expect_every: Annotated[Duration, Says(
        "must be a duration such as 24h or 15m",
        missing="required: how often a success must arrive, e.g. expect_every: 24h",
        at_parent=True)] = Field(
        description="a success must arrive this often (24h for a nightly job)")
    grace: Annotated[Duration, Says(
        "must be a duration such as 1h or 5m",
        missing="required: how late a success may be before the check fails, e.g. grace: 1h",
        at_parent=True)] = Field(
        description="how late a success may be before the check fails")
    max_runtime: Duration | None = Field(
        None, description="a run reported started (wrap, ping --start) must finish within "
        "this long, else the check fails")


class Options(Section):
    """A passive check: fails when no success is reported within expect_every + grace, when
    a failure is reported, or when a started run does not finish within max_runtime."""

    passive: Annotated[Expectation, Says(
        "must be a mapping such as {{expect_every: 24h, grace: 1h}}")] = Field(
        description="when reports must arrive")


KEYS = frozenset(Options.model_fields)


def build(options: Options, base_dir: str) -> PassiveProbe:
    """The probe, from validated options (base_dir: unused, passive checks read no file)."""
    spec = options.passive
    return PassiveProbe(Expect(spec.expect_every, spec.grace, spec.max_runtime))


def parse(options: dict[str, Any], base_dir: str) -> PassiveProbe:
    """Validate the check's `passive:` mapping and build the probe; OptionError lists every
    problem."""
    return build(validate(Options, options, base_dir), base_dir)
