"""Drive a Numba-backend executor the way the engine does: replay order, `where`
applied, rows released batch by batch with a watermark, then `finish`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import polars as pl

from cepdsl.backends import executor_for
from cepdsl.backends.polars import compile_predicate
from cepdsl.executor import SEQ, TIME, Executor, Progress
from cepdsl.frontend import compile_source
from cepdsl.plan import Program, RulePlan

T0 = datetime(2024, 1, 1)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def us(seconds: float) -> int:
    return int(round((at(seconds) - datetime(1970, 1, 1)).total_seconds() * 1_000_000))


def released(rule: RulePlan, frame: pl.DataFrame) -> pl.DataFrame:
    """Declared fields + SEQ + TIME in replay order (before `where`)."""
    time_field = rule.stream.time_field
    assert time_field is not None
    out = frame.select([f.name for f in rule.stream.fields]).with_columns(
        pl.col(time_field).dt.epoch("us").alias(TIME), pl.int_range(pl.len(), dtype=pl.Int64).alias(SEQ)
    )
    return out.filter(pl.col(TIME).is_not_null()).sort([TIME, SEQ], maintain_order=True)


def run_batches(
    rule: RulePlan,
    frame: pl.DataFrame,
    cuts: Sequence[int] = (),
    snapshot_at: int | None = None,
    executor: Executor | None = None,
) -> pl.DataFrame:
    """Matches of `rule` when the rows arrive in batches split before the positions in
    `cuts`, released like the engine does (rows with TIME ≤ watermark = max seen −
    lateness, `where` applied, `advance` when nothing is released; at the end every
    row, then `finish`).  With `snapshot_at`, the executor is snapshotted and restored
    into a fresh one after that many batches."""
    rows = released(rule, frame)
    lateness = rule.stream.lateness_us
    ex = executor or executor_for(rule)
    bounds = [0, *sorted(set(c for c in cuts if 0 < c < rows.height)), rows.height]
    outs: list[pl.DataFrame] = []
    max_ts: int | None = None
    held = rows.clear()

    def feed(batch: pl.DataFrame, progress: Progress) -> None:
        if rule.where is not None:
            batch = batch.filter(compile_predicate(rule.where))
        outs.append(ex.process(batch, progress) if batch.height else ex.advance(progress))

    for b, (lo, hi) in enumerate(zip(bounds, bounds[1:], strict=False)):
        batch = rows.slice(lo, hi - lo)
        if batch.height:
            m = int(batch.get_column(TIME).max())  # type: ignore[arg-type]
            max_ts = m if max_ts is None else max(max_ts, m)
        held = pl.concat([held, batch])
        if max_ts is None:
            continue
        wm = max_ts - lateness
        due = held.get_column(TIME) <= wm
        feed(held.filter(due), Progress(watermark_us=wm, first_ts_us=None, max_ts_us=max_ts))
        held = held.filter(~due)
        if snapshot_at is not None and b + 1 == snapshot_at:
            fresh = executor_for(rule)
            fresh.restore(ex.snapshot())
            ex = fresh
    end = Progress(watermark_us=max_ts if max_ts is not None else -(2**62), first_ts_us=None, max_ts_us=max_ts)
    if held.height:
        feed(held, end)
    outs.append(ex.finish(end))
    return pl.concat(outs, how="vertical")


def rule_of(source: str, rule_id: str | None = None) -> tuple[Program, RulePlan]:
    program = compile_source(source)
    rule = program.rules[0] if rule_id is None else program.rule(rule_id)
    return program, rule
