"""Silences (§9.4), record by record: the reference the vectorized `cepdsl.silences` is
tested against.  Periods are found with croniter directly: the last tick at or before
the match's `ts`, and the match is inside when `ts < tick + D`."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cepdsl.interpret.values import eval_expr, is_true
from cepdsl.plan import RulePlan, SilencePlan

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def _last_tick_us(cron: str, ts_us: int) -> int:
    from croniter import croniter

    at = _EPOCH + dt.timedelta(microseconds=ts_us + 1)  # get_prev is strictly before: ts itself counts
    t = croniter(cron, at).get_prev(dt.datetime)
    d = t - _EPOCH
    return (d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds


def in_period(s: SilencePlan, ts_us: int | None) -> bool:
    if ts_us is None:
        return False
    if s.cron is None:
        return (s.start_us or 0) <= ts_us < (s.until_us or 0)
    return ts_us < _last_tick_us(s.cron, ts_us) + (s.duration_us or 0)


def silence_of(rule: RulePlan, record: dict[str, Any], silences: list[SilencePlan]) -> str | None:
    """The name of the first silence (by name) that applies to this record, or None."""
    types = {f.name: f.type for f in rule.output}
    row = {**record, "rule": rule.id, "severity": rule.severity}
    for s in sorted(silences, key=lambda x: x.name):
        view = {}
        for name in s.fields:
            # A field this rule's records lack, or hold with another type, is null (§9.4).
            view[name] = row.get(name) if name in types and _same_type(s, name, types[name]) else None
        if s.match is not None and not is_true(eval_expr(s.match, view)):
            continue
        if in_period(s, record.get("ts")):
            return s.name
    return None


def _same_type(s: SilencePlan, name: str, t: Any) -> bool:
    from cepdsl.plan import TField

    def find(e: Any) -> Any:
        if isinstance(e, TField) and e.name == name:
            return e.type
        import dataclasses

        if dataclasses.is_dataclass(e):
            for f in dataclasses.fields(e):
                v = getattr(e, f.name)
                for x in v if isinstance(v, tuple) else (v,):
                    if dataclasses.is_dataclass(x):
                        found = find(x)
                        if found is not None:
                            return found
        return None

    return find(s.match) == t
