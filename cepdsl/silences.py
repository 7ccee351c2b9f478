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

from cepdsl.plan import RulePlan, SilencePlan, TBinary, TExpr, TField, TLit, field_nodes, fields_read
from cepdsl.types import Type, polars_dtype

SILENCED = "silenced"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def _conjuncts(e: TExpr) -> list[TExpr]:
    if isinstance(e, TBinary) and e.op == "and":
        return _conjuncts(e.left) + _conjuncts(e.right)
    return [e]


def applicable(rule: RulePlan, silences: Sequence[SilencePlan]) -> list[SilencePlan]:
    """The silences that may apply to `rule`'s records, in name order: a conjunct that
    reads only `rule`/`severity` and is not true for this rule rules the silence out."""
    from cepdsl.interpret.values import eval_expr, is_true

    consts = {"rule": rule.id, "severity": rule.severity}
    out = []
    for s in sorted(silences, key=lambda x: x.name):
        if s.match is not None and any(
            fields_read(c) <= {"rule", "severity"} and not is_true(eval_expr(c, consts)) for c in _conjuncts(s.match)
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
    timed = ts_us != np.iinfo(np.int64).min  # null `ts` (a stream with no time field)
    if not timed.all():
        # A record with no time is in no period (as the fixed-period case above has it,
        # null being the smallest int64): only the timed ones are looked up.
        out = np.zeros(len(ts_us), dtype=bool)
        out[timed] = active(s, ts_us[timed])
        return out
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


def _equality(e: TExpr, rule: RulePlan) -> tuple[str, tuple[Any, ...]] | None:
    """`field == literal` / `field in [literals]` (after dropping conjuncts on `rule` and
    `severity`, true for this rule by `applicable`): (field, values), else None."""
    from cepdsl.plan import TIn

    rest = [c for c in _conjuncts(e) if not fields_read(c) <= {"rule", "severity"}]
    if len(rest) != 1:
        return None
    c = rest[0]
    if isinstance(c, TBinary) and c.op == "==":
        if isinstance(c.left, TField) and isinstance(c.right, TLit) and c.right.value is not None:
            return c.left.name, (c.right.value,)
        if isinstance(c.right, TField) and isinstance(c.left, TLit) and c.left.value is not None:
            return c.right.name, (c.left.value,)
    if isinstance(c, TIn) and not c.negated and isinstance(c.operand, TField):
        return c.operand.name, tuple(v for v in c.values if v is not None)
    return None


def apply_silences(frame: pl.DataFrame, silences: Sequence[SilencePlan], rule: RulePlan | None = None) -> tuple[pl.DataFrame, int]:
    """`frame` (one rule's records) with `silenced` set; and how many were silenced.
    `silences`: those that may apply (see `applicable`), in name order.

    Silences that test one field for equality (`host == "db-1"`, the usual matcher
    beside `rule`) are grouped by field and found with one join of the records on the
    values; the others are evaluated one by one."""
    from cepdsl.kernels.polars_expressions import compile_predicate

    n = frame.height
    if not silences or n == 0:
        if SILENCED not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias(SILENCED))
        return frame, 0
    schema = dict(frame.schema)
    ts = frame["ts"].dt.epoch("us").fill_null(np.iinfo(np.int64).min).to_numpy()
    none = len(silences)
    best = np.full(n, none, dtype=np.int64)  # per record, the order of the first silence holding it

    def hold(k: int, rows: np.ndarray) -> None:
        on = active(silences[k], ts[rows])
        rows = rows[on]
        best[rows] = np.minimum(best[rows], k)

    grouped: dict[str, list[tuple[Any, int]]] = {}
    for k, s in enumerate(silences):
        eq = _equality(s.match, rule) if s.match is not None and rule is not None else None
        if eq is not None:
            field, values = eq
            dtype = schema.get(field)
            if dtype is None or dtype != polars_dtype(next(f.type for f in [*field_nodes(s.match)] if f.name == field)):
                continue  # a field this rule lacks (or types otherwise) is null: never true
            grouped.setdefault(field, []).extend((v, k) for v in values)
            continue
        if s.match is not None:
            hit = frame.select(compile_predicate(_bound(s.match, schema)).alias("m")).to_series()
            mask = np.asarray(hit.to_numpy(), dtype=bool) if hit.len() == n else np.full(n, bool(hit[0]))
            rows = np.flatnonzero(mask)
        else:
            rows = np.arange(n)
        if len(rows):
            hold(k, rows)
    for field, pairs in grouped.items():
        lookup = pl.DataFrame(
            {"__v": [v for v, _ in pairs], "__k": [k for _, k in pairs]}, schema={"__v": schema[field], "__k": pl.Int64}
        )
        found = frame.select(pl.col(field).alias("__v")).with_row_index("__row").join(lookup, on="__v", how="inner")
        if not found.height:
            continue
        for (k,), part in found.group_by("__k"):
            hold(int(k), part["__row"].to_numpy().astype(np.int64))
    silenced = best < none
    count = int(silenced.sum())
    names = pl.Series(SILENCED, [s.name for s in silences] + [None], dtype=pl.String).gather(best)
    return frame.with_columns(names), count
