"""Passive probe: a cron job or another host reports, the check judges (healthchecks.io's
and Cronitor's model, Consul's TTL checks). The kind is a package of three modules:

  judge.py    the verdict, pure: (what it expects, the check's reports, now) -> a result
  probe.py    PassiveProbe: bound by the runner to the check's name and its inbox of reports
  options.py  the `passive:` mapping, validated once into a PassiveProbe

Reports arrive through the state store (`pd-watchdog ping`, `pd-watchdog wrap`, the push
endpoint: watchdog.push_cmd, watchdog.pushserve); the runner reads new ones every second
into the inbox (watchdog.passive_feed) and judges the checks they concern at once.
"""

from watchdog.probes.passive.judge import Expect, judge
from watchdog.probes.passive.options import KEYS, NAME, Options, build, parse
from watchdog.probes.passive.probe import Inbox, PassiveProbe

OPEN_SOCKETS = 0  # it probes nothing

__all__ = ["KEYS", "NAME", "OPEN_SOCKETS", "Expect", "Inbox", "Options", "PassiveProbe",
           "build", "judge", "parse"]
