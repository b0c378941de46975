"""The one interface every probe kind implements.

A probe kind is a module with:
  KEYS:  frozenset of the check-level YAML keys it owns (the first-listed is its name),
  parse(options: dict, base_dir: str) -> Probe
      options holds only those keys, as the YAML wrote them (after ${VAR} expansion);
      base_dir is the folder of the file that defines the check (relative paths resolve
      against it); raise OptionError on bad input.
The returned object's run(timeout) returns a ProbeResult and never raises.
"""

from __future__ import annotations


class OptionError(ValueError):
    """Bad probe options. `problems` is a list of (key path under the check, message)."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{path}: {message}" for path, message in problems))
