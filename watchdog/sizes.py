"""Sizes as people write them in YAML ("512MiB", "1GiB", "100kB", 4096) -> int bytes, and
back for summaries. Beside durations.py, for the same reason: probes and the config read
and write sizes the same way, in one place."""

from __future__ import annotations

import re
from typing import Any

_UNITS = {"": 1, "b": 1, "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4,
          "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?|\.\d+)\s*([A-Za-z]*)\s*")
SIZE_PATTERN = r"^\s*(\d+(\.\d+)?|\.\d+)\s*([bB]|[kKmMgGtT][iI]?[bB])?\s*$"
_HINT = "write e.g. 512MiB, 1GiB, 100kB or a number of bytes"


def parse_size(value: Any) -> int:
    """Bytes from `512MiB`, `1GiB`, `1.5GB`, `100kB`, `4096` or an int: KiB/MiB/GiB/TiB
    are powers of 1024, kB/MB/GB/TB powers of 1000 (as `df -h` and `df -H` tell them
    apart); ValueError saying how to write one."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"must be a size, not {type(value).__name__} — {_HINT}")
    if isinstance(value, str):
        match = _SIZE.fullmatch(value)
        unit = _UNITS.get(match.group(2).lower()) if match else None
        if match is None or unit is None:
            raise ValueError(f"not a size: {value!r} — {_HINT}")
        number = float(match.group(1)) * unit
    else:
        number = float(value)
    if not 0 <= number < 2**63:
        raise ValueError(f"must be from 0 to 8 EiB, got {value!r} — {_HINT}")
    return int(number)


def format_size(size: float) -> str:
    """"512 B", "1.5 KiB", "45.2 MiB", "1.0 GiB": a size in a summary, 1024-based."""
    if size < 1024:
        return f"{size:.0f} B"
    for unit in ("KiB", "MiB", "GiB"):
        size /= 1024
        if size < 1024:
            return f"{size:.1f} {unit}"
    return f"{size / 1024:.1f} TiB"
