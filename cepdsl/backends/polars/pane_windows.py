"""Tumbling and sliding windows (§5.2) by pane pre-aggregation.

Time is cut into panes of P = gcd(D, S) µs aligned to the epoch; window
`[kS, kS + D)` is exactly the panes it covers.  Each batch is reduced to one
partial per (group, pane) (`aggregates.partial_exprs`), merged into the open
panes, and a window is emitted once the watermark reaches its end.  A pane is
dropped when the last window holding it has been emitted.  State is one Polars
frame of open panes: its size is groups × open panes, never rows (except for
`percentile`/`distinct`, whose partials keep values).

Tumbling is the case S = D (one pane per window).  When every aggregate is
numeric and decomposable, the Numba window kernels run the rule instead (the table
in `cepdsl.backends` picks; docs/windows.md says which runs when).  The pane
arithmetic both share is `cepdsl.kernels.panes`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from cepdsl.backends.polars import aggregates as agg
from cepdsl.backends.polars.window_records import END, START, window_records
from cepdsl.executor import TIME, Executor, Progress, frame_from_state, frame_state
from cepdsl.kernels.panes import PaneGrid, first_window, last_window
from cepdsl.plan import RulePlan

PANE = "__pane"
K = "__k"


class PaneWindowExecutor(Executor):
    """Windows `[kS, kS + D)` for every integer k, over panes of gcd(D, S)."""

    def __init__(self, rule: RulePlan, size_us: int | None = None, every_us: int | None = None) -> None:
        super().__init__(rule)
        self.grid = PaneGrid.of(rule, size_us, every_us)
        self.size, self.every, self.pane = self.grid.size, self.grid.every, self.grid.pane
        self.keys = list(rule.group_keys)
        self.needs = agg.needs_of(rule.aggregates)
        self._partials = agg.partial_exprs(self.needs)
        self._merge = agg.merge_exprs(self.needs)
        self._final = agg.final_exprs(rule.aggregates)
        self._columns = [*self.keys, *(n.field for n in self.needs if n.field not in self.keys), TIME]
        self.panes: pl.DataFrame | None = None  # open panes: keys, PANE, partials
        self.emitted_us: int | None = None  # windows ending at or before this were emitted

    # -- executor API ---------------------------------------------------------------
    def process(self, rows: pl.DataFrame, progress: Progress) -> pl.DataFrame:
        if rows.height:
            batch = (
                rows.lazy()
                .select(self._columns)
                .group_by([*self.keys, (pl.col(TIME) // self.pane).alias(PANE)])
                .agg(self._partials)
                .collect()
            )
            if self.panes is None or self.panes.height == 0:
                self.panes = batch
            else:
                self.panes = pl.concat([self.panes, batch], how="vertical_relaxed").group_by([*self.keys, PANE]).agg(self._merge)
        return self._emit(progress.watermark_us)

    def advance(self, progress: Progress) -> pl.DataFrame:
        return self._emit(progress.watermark_us)

    def finish(self, progress: Progress) -> pl.DataFrame:
        if self.panes is None or self.panes.height == 0:
            return self.rule.empty_output()
        return self._emit(self.grid.finish_at(progress.watermark_us, int(self.panes[PANE].max())))  # type: ignore[arg-type]

    def late_mask(self, ts_us: np.ndarray, released_us: int) -> np.ndarray:
        return self.grid.late_mask(ts_us, self.emitted_us)

    # -- emission -------------------------------------------------------------------
    def _emit(self, watermark: int) -> pl.DataFrame:
        if self.emitted_us is not None and watermark <= self.emitted_us:
            return self.rule.empty_output()
        panes = self.panes
        lo_k, hi_k = self.grid.due(self.emitted_us, watermark)
        self.emitted_us = watermark
        if panes is None or panes.height == 0:
            return self.rule.empty_output()
        start = pl.col(PANE) * self.pane
        k_from = first_window(start, self.size, self.every, self.pane)
        if lo_k is not None:
            k_from = pl.max_horizontal(k_from, pl.lit(lo_k))
        k_to = pl.min_horizontal(last_window(start, self.every), pl.lit(hi_k))
        due = panes.lazy().with_columns(k_from.alias("__kf"), k_to.alias("__kt")).filter(pl.col("__kf") <= pl.col("__kt"))
        if self.every == self.size:
            windows = due.with_columns(pl.col("__kf").alias(K)).select([*self.keys, K, *self._final])
        else:
            windows = (
                due.with_columns(pl.int_ranges(pl.col("__kf"), pl.col("__kt") + 1).alias(K))
                .explode(K)
                .group_by([*self.keys, K])
                .agg(self._merge)
                .select([*self.keys, K, *self._final])
            )
        out = windows.with_columns((pl.col(K) * self.every).alias(START), (pl.col(K) * self.every + self.size).alias(END)).collect()
        # Keep a pane while some window holding it is still to come.
        self.panes = panes.filter(self.grid.last_end(pl.col(PANE) * self.pane) > watermark)
        return window_records(self.rule, out.drop(K))

    # -- state ----------------------------------------------------------------------
    def state(self) -> Any:
        return {"panes": frame_state(self.panes), "emitted_us": self.emitted_us}

    def load_state(self, state: Any) -> None:
        self.panes = frame_from_state(state["panes"])
        self.emitted_us = state["emitted_us"]


class TumblingExecutor(PaneWindowExecutor):
    """`window tumbling D`: windows `[kD, (k+1)D)`."""


class SlidingExecutor(PaneWindowExecutor):
    """`window sliding D every S`: windows `[kS, kS + D)`, panes of gcd(D, S)."""
