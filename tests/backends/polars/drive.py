"""Helpers to drive one executor directly, the way the engine does (rows after `where`,
sorted by (TIME, SEQ), watermark = max time seen − lateness)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from functools import partial

import polars as pl

from cepdsl import backends
from cepdsl.backends.polars import compile_predicate
from cepdsl.executor import SEQ, TIME, Executor, Progress
from cepdsl.frontend import compile_source
from cepdsl.plan import RulePlan

#: The Polars executors alone, whatever `cepdsl.backends.EXECUTORS` prefers for a rule.
executor_for = partial(backends.executor_for, backend="polars")

EPOCH = dt.datetime(1970, 1, 1)
S = 1_000_000
M = 60 * S


def rule_of(text: str, rule_id: str | None = None) -> RulePlan:
    program = compile_source(text)
    return program.rules[0] if rule_id is None else program.rule(rule_id)


def at(us: int) -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=us)


def frame(rule: RulePlan, rows: Sequence[dict[str, object]]) -> pl.DataFrame:
    """Stream rows (with `ts` as int µs) → a released frame with SEQ and TIME."""
    schema = rule.stream.schema
    data = {name: [r.get(name) for r in rows] for name in schema}
    tf = rule.stream.time_field or "ts"
    data[tf] = [at(int(r[tf])) if r.get(tf) is not None else None for r in rows]  # type: ignore[arg-type]
    df = pl.DataFrame(data, schema=schema)
    df = df.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias(SEQ), pl.col(tf).dt.epoch("us").alias(TIME))
    return df


def where(rule: RulePlan, df: pl.DataFrame) -> pl.DataFrame:
    return df if rule.where is None else df.filter(compile_predicate(rule.where))


def run_batches(
    rule: RulePlan,
    df: pl.DataFrame,
    cuts: Sequence[int] = (),
    lateness_us: int = 0,
    executor: Executor | None = None,
    snapshot_at: int | None = None,
) -> pl.DataFrame:
    """Feed `df` (sorted) split at `cuts`, advancing the watermark after every batch,
    then finish.  With `snapshot_at`, the executor is snapshotted after that batch and a
    fresh one restored from the bytes carries on."""
    ex = executor or executor_for(rule)
    first = int(df[TIME].min()) if df.height else None  # type: ignore[arg-type]
    bounds = [0, *cuts, df.height]
    outs: list[pl.DataFrame] = []
    max_t: int | None = None
    for i in range(len(bounds) - 1):
        part = df.slice(bounds[i], bounds[i + 1] - bounds[i])
        if part.height:
            m = int(part[TIME].max())  # type: ignore[arg-type]
            max_t = m if max_t is None else max(max_t, m)
        wm = (max_t - lateness_us) if max_t is not None else -(2**62)
        progress = Progress(wm, first, max_t)
        rows = where(rule, part)
        outs.append(ex.process(rows, progress) if rows.height else ex.advance(progress))
        if snapshot_at is not None and i == snapshot_at:
            payload = ex.snapshot()
            ex = executor_for(rule)
            ex.restore(payload)
    wm = (max_t - lateness_us) if max_t is not None else -(2**62)
    outs.append(ex.finish(Progress(wm, first, max_t)))
    out = pl.concat([o for o in outs if o.height]) if any(o.height for o in outs) else rule.empty_output()
    return out.sort("ts", maintain_order=True)
