"""Schedule rules (LANGUAGE.md §5.3): aggregates over `[T − D, T)` at each cron tick T.

Cron strings are 5-field, evaluated in UTC by croniter (day-of-month and
day-of-week combine with OR when both are restricted, as in Vixie cron).
In replay the ticks are those strictly later than the first event time seen on
the stream and no later than the largest one (both before `where`).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

from croniter import croniter

from cepdsl.interpret.rows import TIME, Match, Row, group_order, partition
from cepdsl.interpret.windows import judge_window
from cepdsl.plan import RulePlan

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_US = timedelta(microseconds=1)


def _to_datetime(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _to_us(dt: datetime) -> int:
    return (dt - _EPOCH) // _US


def cron_ticks(cron: str, after_us: int, until_us: int) -> Iterator[int]:
    """Tick times T (int µs) with after_us < T ≤ until_us, in order."""
    it = croniter(cron, _to_datetime(after_us))  # get_next is strictly later than the start
    while True:
        t = _to_us(it.get_next(datetime))
        if t > until_us:
            return
        yield t


def schedule_matches(rule: RulePlan, rows: list[Row], first_ts: int | None, max_ts: int | None) -> list[Match]:
    spec = rule.schedule
    assert spec is not None
    if first_ts is None or max_ts is None:
        return []  # no event ever seen: no tick is later than the first one
    times = [r[TIME] for r in rows]
    out: list[Match] = []
    for tick in cron_ticks(spec.cron, first_ts, max_ts):
        start = tick - spec.over_us
        members = rows[bisect.bisect_left(times, start) : bisect.bisect_left(times, tick)]
        if rule.group_keys:
            groups = partition(members, rule.group_keys)  # only groups with rows are evaluated
        else:
            groups = {(): members}  # without group by, an empty tick is still evaluated
        for key, group_rows in groups.items():
            fields = {k: group_rows[0][k] for k in rule.group_keys}
            record = judge_window(rule, fields, start, tick, group_rows, tick)
            if record is not None:
                out.append(Match((tick, start, group_order(key), 0), key, record))
    return out
