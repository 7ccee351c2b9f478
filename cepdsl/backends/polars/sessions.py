"""Session windows (§5.2): per group, events G or more apart start a new session;
a session is `[first, last + G)` and is emitted once the watermark reaches its end.

Open sessions are kept as partials (`aggregates`), one row each.  A batch turns its
rows into one-row partials, and sessions are re-formed over (open sessions + new
rows) sorted by start: an interval joins the session before it when it starts less
than G after the latest end seen so far in its group.  This also merges two open
sessions that an accepted out-of-order row bridges.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from cepdsl.backends.polars import aggregates as agg
from cepdsl.backends.polars.window_records import END, START, window_records
from cepdsl.executor import TIME, Executor, Progress, frame_from_state, frame_state
from cepdsl.plan import RulePlan

FIRST, LAST, SID = "__first", "__last", "__sid"


class SessionExecutor(Executor):
    def __init__(self, rule: RulePlan) -> None:
        super().__init__(rule)
        assert rule.window is not None and rule.window.gap_us is not None
        self.gap = rule.window.gap_us
        self.keys = list(rule.group_keys)
        needs = agg.needs_of(rule.aggregates)
        self._row = [pl.col(TIME).alias(FIRST), pl.col(TIME).alias(LAST), *agg.row_partials(needs)]
        self._merge = [pl.col(FIRST).min(), pl.col(LAST).max(), *agg.merge_exprs(needs)]
        self._final = agg.final_exprs(rule.aggregates)
        self.sessions: pl.DataFrame | None = None  # open sessions: keys, FIRST, LAST, partials
        self.emitted_us: int | None = None

    def process(self, rows: pl.DataFrame, progress: Progress) -> pl.DataFrame:
        if rows.height:
            fresh = rows.select([*self.keys, *self._row])
            parts = fresh if self.sessions is None else pl.concat([self.sessions, fresh], how="vertical_relaxed")
            self.sessions = self._sessionize(parts)
        return self._emit(progress.watermark_us)

    def _sessionize(self, parts: pl.DataFrame) -> pl.DataFrame:
        parts = parts.sort([*self.keys, FIRST], nulls_last=True)
        reach = pl.col(LAST).cum_max().shift(1)
        if self.keys:
            reach = reach.over(self.keys)
        starts = reach.is_null() | (pl.col(FIRST) - reach >= self.gap)
        return (
            parts.with_columns(starts.cum_sum().alias(SID))
            .group_by(SID, maintain_order=True)
            .agg([*(pl.col(k).first() for k in self.keys), *self._merge])
            .drop(SID)
        )

    def advance(self, progress: Progress) -> pl.DataFrame:
        return self._emit(progress.watermark_us)

    def finish(self, progress: Progress) -> pl.DataFrame:
        if self.sessions is None or self.sessions.height == 0:
            return self.rule.empty_output()
        return self._emit(max(progress.watermark_us, int(self.sessions[LAST].max()) + self.gap))  # type: ignore[arg-type]

    def late_mask(self, ts_us: np.ndarray, released_us: int) -> np.ndarray:
        # A row is late when even a session of its own would already have been
        # emitted.  (A row that would have extended an emitted session opens a new one.)
        if self.emitted_us is None:
            return np.zeros(len(ts_us), dtype=bool)
        return ts_us + self.gap <= self.emitted_us

    def _emit(self, watermark: int) -> pl.DataFrame:
        if self.emitted_us is None or watermark > self.emitted_us:
            self.emitted_us = watermark
        s = self.sessions
        if s is None or s.height == 0:
            return self.rule.empty_output()
        closed = pl.col(LAST) + self.gap <= watermark
        done = s.filter(closed)
        if done.height == 0:
            return self.rule.empty_output()
        self.sessions = s.filter(~closed)
        out = done.select([*self.keys, pl.col(FIRST).alias(START), (pl.col(LAST) + self.gap).alias(END), *self._final])
        return window_records(self.rule, out)

    def state(self) -> Any:
        return {"sessions": frame_state(self.sessions), "emitted_us": self.emitted_us}

    def load_state(self, state: Any) -> None:
        self.sessions = frame_from_state(state["sessions"])
        self.emitted_us = state["emitted_us"]
