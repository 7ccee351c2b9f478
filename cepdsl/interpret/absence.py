"""Absence rules (LANGUAGE.md §5.5).

Per group, a row at time t sets the deadline t + D; the deadline fires when no
later row of the group has ts in (t, t + D]. A row exactly D later keeps the
group alive. In replay a deadline fires only if it is ≤ the largest event time
seen on the stream (before `where`): the watermark never passes it otherwise.
"""

from __future__ import annotations

from cepdsl.interpret.rows import SEQ, TIME, Match, Row, partition
from cepdsl.plan import RulePlan


def absence_matches(rule: RulePlan, rows: list[Row], max_ts: int | None) -> list[Match]:
    spec = rule.absent
    assert spec is not None
    if max_ts is None:
        return []
    d = spec.duration_us
    out: list[Match] = []
    for key, group_rows in partition(rows, rule.group_keys).items():
        fired: set[int] = set()
        # Walk newest first so that, of several rows at the same time, the last in
        # input order is the one reported (one match per group and deadline).
        next_later: int | None = None  # time of the nearest row strictly later than the current one
        for i in range(len(group_rows) - 1, -1, -1):
            row = group_rows[i]
            t = row[TIME]
            if i + 1 < len(group_rows) and group_rows[i + 1][TIME] > t:
                next_later = group_rows[i + 1][TIME]
            deadline = t + d
            silent = next_later is None or next_later > deadline
            if silent and deadline <= max_ts and deadline not in fired:
                fired.add(deadline)
                record = {k: row[k] for k in rule.group_keys}
                record.update(ts=deadline, last_seen=t)
                out.append(Match((deadline, row[SEQ]), key, record))
    return out
