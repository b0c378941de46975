"""A size field (`max_rss: 512MiB`): bytes, written with a unit or as a number."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema

from watchdog import sizes
from watchdog.config.fields import DEF_ABOUT, DEF_NAME, DOC_TYPE, ENV_REF, problem


def _size(value: Any) -> int:
    try:
        return sizes.parse_size(value)
    except ValueError as exc:
        raise problem(str(exc)) from None


Size = Annotated[
    int, BeforeValidator(_size),
    WithJsonSchema({
        "anyOf": [{"type": "integer", "minimum": 0},
                  {"type": "string", "pattern": sizes.SIZE_PATTERN}, ENV_REF],
        DOC_TYPE: "size", DEF_NAME: "Size",
        DEF_ABOUT: "a size such as 512MiB, 1GiB, 100kB or a number of bytes "
                   "(KiB, MiB, GiB, TiB: 1024-based; kB, MB, GB, TB: 1000-based)",
    }),
]
"""Bytes, written 512MiB, 1GiB, 100kB or as a number of bytes."""
