"""`window last N events` (§5.2): per group, after each row, the aggregates over the
most recent min(N, seen) rows including it; `ts` = `window_end` = that row's time,
`window_start` = the time of the oldest of those rows.

Matches are due at once (no watermark), and the order of rows matters, so the
default `late_mask` (refuse rows older than what was released) stays.  Between
batches a group remembers its last N − 1 rows: each batch prepends them and runs a
Polars `rolling` over the per-group row number, which handles every aggregate
(strings included) in one vectorised pass.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from cepdsl.backends.polars import aggregates as agg
from cepdsl.backends.polars.window_records import END, START, window_records
from cepdsl.executor import SEQ, TIME, Executor, Progress, frame_from_state, frame_state
from cepdsl.plan import RulePlan

IDX, NEW = "__i", "__new"


class CountWindowExecutor(Executor):
    def __init__(self, rule: RulePlan) -> None:
        super().__init__(rule)
        assert rule.window is not None and rule.window.count is not None
        self.n = int(rule.window.count)
        if self.n < 1:
            raise ValueError(f"rule {rule.id}: last N events needs N ≥ 1")
        self.keys = list(rule.group_keys)
        fields = sorted({a.field for a in rule.aggregates if a.field is not None} - set(self.keys))
        self._columns = [*self.keys, *fields, TIME, SEQ]
        self._aggs = [
            pl.col(TIME).first().alias(START),
            pl.col(TIME).last().alias(END),
            pl.col(SEQ).last(),
            pl.col(NEW).last(),
            *agg.raw_exprs(rule.aggregates, from_scratch=True),
        ]
        self.tail: pl.DataFrame | None = None  # per group, its last N − 1 rows

    def process(self, rows: pl.DataFrame, progress: Progress) -> pl.DataFrame:
        if rows.height == 0:
            return self.rule.empty_output()
        fresh = rows.select(self._columns).with_columns(pl.lit(True).alias(NEW))
        frame = fresh if self.tail is None else pl.concat([self.tail, fresh], how="vertical_relaxed")
        idx = pl.int_range(pl.len(), dtype=pl.Int64)
        frame = frame.with_columns((idx.over(self.keys) if self.keys else idx).alias(IDX))
        rolled = frame.rolling(index_column=IDX, period=f"{self.n}i", group_by=self.keys or None).agg(self._aggs).filter(pl.col(NEW))
        if self.n > 1:
            tail = frame.drop(IDX).with_columns(pl.lit(False).alias(NEW))
            self.tail = tail.group_by(self.keys, maintain_order=True).tail(self.n - 1) if self.keys else tail.tail(self.n - 1)
        # In the order of the rows that close the windows (docs/semantics.md): matches are
        # due at once, so a later push can only add after this one's.
        return window_records(self.rule, rolled.drop(IDX, NEW), order=[END, SEQ])

    def state(self) -> Any:
        return {"tail": frame_state(self.tail)}

    def load_state(self, state: Any) -> None:
        self.tail = frame_from_state(state["tail"])
