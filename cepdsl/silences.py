"""Silences (LANGUAGE.md §9.4) over a rule's match records, vectorized.

A match is silenced by a silence whose `match` is true on its record and whose period
is active at the match's `ts` (event time, half-open: `[tick, tick + D)` for each
cron tick, `[from, until)`); its `silenced` column gets the silence's name, the first
by name when several apply.  Silenced matches stay in the output; they are counted
and never notified.

Cost: `rule` and `severity` are constant over one rule's records, so a silence whose
`match` has a conjunct on them alone that is not true for the rule is dropped for
that rule once (`applicable`); the others are evaluated as Polars expressions, the
cron period by a `searchsorted` of the records' `ts` in the silence's ticks.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from cepdsl.plan import RulePlan, SilencePlan, TBinary, TExpr, TField, TLit
from cepdsl.types import Type, polars_dtype

SILENCED = "silenced"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def _conjuncts(e: TExpr) -> list[TExpr]:
    if isinstance(e, TBinary) and e.op == "and":
        return _conjuncts(e.left) + _conjuncts(e.right)
    return [e]


def _fields(e: Any) -> set[str]:
    if isinstance(e, TField):
        return {e.name}
    out: set[str] = set()
    if dataclasses.is_dataclass(e):
        for f in dataclasses.fields(e):
            v = getattr(e, f.name)
            for x in v if isinstance(v, tuple) else (v,):
                if dataclasses.is_dataclass(x):
                    out |= _fields(x)
    return out


def applicable(rule: RulePlan, silences: Sequence[SilencePlan]) -> list[SilencePlan]:
    """The silences that may apply to `rule`'s records, in name order: a conjunct that
    reads only `rule`/`severity` and is not true for this rule rules the silence out."""
    from cepdsl.interpret.values import eval_expr, is_true

    consts = {"rule": rule.id, "severity": rule.severity}
    out = []
    for s in sorted(silences, key=lambda x: x.name):
        if s.match is not None and any(
            _fields(c) <= {"rule", "severity"} and not is_true(eval_expr(c, consts)) for c in _conjuncts(s.match)
        ):
            continue
        out.append(s)
    return out


def _bound(e: TExpr, schema: dict[str, pl.DataType]) -> TExpr:
    """`e` with fields this record does not have (or has with another type) as null (§9.4)."""
    if isinstance(e, TField):
        dtype = schema.get(e.name)
        if dtype is None or dtype != polars_dtype(e.type):
            return TLit(e.type, None)
        return e
    if dataclasses.is_dataclass(e):
        changes = {}
        for f in dataclasses.fields(e):
            v = getattr(e, f.name)
            if isinstance(v, tuple) and v and all(dataclasses.is_dataclass(x) for x in v):
                changes[f.name] = tuple(_bound(x, schema) for x in v)
            elif dataclasses.is_dataclass(v) and not isinstance(v, Type):
                changes[f.name] = _bound(v, schema)
        return dataclasses.replace(e, **changes) if changes else e
    return e


def to_us(t: dt.datetime) -> int:
    d = t - _EPOCH
    return (d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds


@functools.lru_cache(maxsize=4096)
def cron_ticks(cron: str, lo_us: int, hi_us: int) -> np.ndarray:
    """Every tick of `cron` (UTC) in [lo_us, hi_us], as int64 µs."""
    from croniter import croniter

    start = _EPOCH + dt.timedelta(microseconds=lo_us - 1)
    it = croniter(cron, start)
    out = []
    while True:
        t = to_us(it.get_next(dt.datetime))
        if t > hi_us:
            break
        out.append(t)
    return np.asarray(out, dtype=np.int64)


def active(s: SilencePlan, ts_us: np.ndarray) -> np.ndarray:
    """Per timestamp (int64 µs), whether `s`'s period holds it (half-open)."""
    if s.cron is None:
        return (ts_us >= (s.start_us or 0)) & (ts_us < (s.until_us or 0))
    if not len(ts_us):
        return np.zeros(0, dtype=bool)
    d = s.duration_us or 0
    # Ticks in hour-aligned spans, so consecutive batches share the cached ones.
    hour = 3_600_000_000
    lo = (int(ts_us.min()) - d) // hour * hour
    hi = (int(ts_us.max()) // hour + 1) * hour
    ticks = cron_ticks(s.cron, lo, hi)
    if not len(ticks):
        return np.zeros(len(ts_us), dtype=bool)
    i = np.searchsorted(ticks, ts_us, side="right") - 1  # the last tick ≤ ts
    ok = i >= 0
    last = ticks[np.clip(i, 0, None)]
    return ok & (ts_us < last + d)


def apply_silences(frame: pl.DataFrame, silences: Sequence[SilencePlan]) -> tuple[pl.DataFrame, int]:
    """`frame` (one rule's records) with `silenced` set; and how many were silenced.
    `silences`: those that may apply (see `applicable`), in name order."""
    from cepdsl.backends.polars.expressions import compile_expr

    n = frame.height
    if not silences or n == 0:
        if SILENCED not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias(SILENCED))
        return frame, 0
    schema = dict(frame.schema)
    ts = frame["ts"].dt.epoch("us").fill_null(np.iinfo(np.int64).min).to_numpy()
    names = np.full(n, None, dtype=object)
    free = np.ones(n, dtype=bool)
    for s in silences:
        if s.match is not None:
            hit = frame.select(compile_expr(_bound(s.match, schema)).fill_null(False).alias("m")).to_series()
            if hit.len() == 1 and n != 1:
                hit = pl.repeat(hit[0], n, eager=True)
            mask = hit.to_numpy() & free
        else:
            mask = free.copy()
        if not mask.any():
            continue
        idx = np.flatnonzero(mask)
        on = active(s, ts[idx])
        idx = idx[on]
        names[idx] = s.name
        free[idx] = False
    count = int((~free).sum())
    column = pl.Series(SILENCED, names.tolist(), dtype=pl.String)
    return frame.with_columns(column), count
