"""A redundant group of runners that never pages twice (issue 16; docs/ha.md).

Failover is a restart elsewhere. Every member of a group runs the same config with
`state: {postgresql: ..., lock: NAME}`; exactly one holds the group's advisory lock, taken on
the very connection its store writes through, and that one runs an ordinary Runner (a
*term*). The others connect and wait: they probe, record and send nothing. When the leader's
session ends (kill -9, a crash, a stop) the server drops its lock with it, and the first
member to take it starts a Runner that loads the state and the outbox exactly as a restart
does: open incidents stay open, pending events are sent, nothing twice.

A leader that loses its database is fenced (fence.py): from the first failed statement, a
lost connection, or a lock no longer held, its store refuses every call and its sender
sends nothing more (it cannot commit, so it must not page); its term ends and it goes back
to waiting. The modules, one way (this file imports none of them: `status` reads
report.py without loading the runner):
- group.py: the group's settings and its store (the PostgreSQL backend's calls);
- report.py: the group as `pd-watchdog status` shows it;
- fence.py: Fence, FencedStore, LeaseWatch;
- term.py: what a leading Runner borrows from its member (store, signals, sd_notify,
  metrics, runtime.json) and how they behave across terms;
- member.py: Member, the life cycle: connect, wait, lead, fenced, again.
"""
