"""Schedule rules (§5.3): at each cron tick T (UTC, 5-field cron) strictly after the
first event time seen on the stream, aggregates over rows with ts in `[T − D, T)`.

A tick fires when the watermark reaches T; at the end of replay input only ticks
T ≤ the largest event time seen on the stream fire.  Without `group by` a tick
with no rows is still evaluated (`count()` 0, `count(f)`/`distinct` 0 as in SQL,
other aggregates null); with `group by` only groups with rows are.

The rule keeps the rows some unfired tick still needs (ts ≥ next tick − D): cron
ticks are irregular, so there is no pane size to pre-aggregate on.  Due ticks are
evaluated together: each row is spread over the due ticks whose window holds it,
then one group_by (tick, keys).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import polars as pl
from croniter import croniter

from cepdsl.backends.polars import aggregates as agg
from cepdsl.backends.polars.window_records import END, START, window_records
from cepdsl.executor import TIME, Executor, Progress, frame_from_state, frame_state
from cepdsl.plan import RulePlan

TICK = "__tick"
_UTC = dt.UTC


def next_tick_after(cron: str, after_us: int) -> int:
    """The first cron tick strictly after `after_us` (µs since the epoch, UTC)."""
    start = dt.datetime(1970, 1, 1, tzinfo=_UTC) + dt.timedelta(microseconds=after_us)
    t = int(round(croniter(cron, start).get_next(float))) * 1_000_000
    while t <= after_us:  # cron has minute resolution; guard sub-second starts anyway
        t = int(round(croniter(cron, dt.datetime(1970, 1, 1, tzinfo=_UTC) + dt.timedelta(microseconds=t)).get_next(float))) * 1_000_000
    return t


def ticks_until(cron: str, first: int, limit_us: int) -> tuple[list[int], int]:
    """Ticks from `first` (itself a tick) up to `limit_us` inclusive, and the tick after them."""
    out: list[int] = []
    if first > limit_us:
        return out, first
    it = croniter(cron, dt.datetime(1970, 1, 1, tzinfo=_UTC) + dt.timedelta(microseconds=first))
    t = first
    while t <= limit_us:
        out.append(t)
        t = int(round(it.get_next(float))) * 1_000_000
    return out, t


class ScheduleExecutor(Executor):
    def __init__(self, rule: RulePlan) -> None:
        super().__init__(rule)
        assert rule.schedule is not None
        self.cron = rule.schedule.cron
        self.over = rule.schedule.over_us
        self.keys = list(rule.group_keys)
        fields = sorted({a.field for a in rule.aggregates if a.field is not None} - set(self.keys))
        self._columns = [*self.keys, *fields, TIME]
        self._raw = agg.raw_exprs(rule.aggregates)
        self.rows: pl.DataFrame | None = None  # rows an unfired tick may still need
        self.next_tick: int | None = None

    def _start(self, progress: Progress, rows: pl.DataFrame | None) -> None:
        if self.next_tick is not None:
            return
        first = progress.first_ts_us
        if first is None and rows is not None and rows.height:
            first = int(rows[TIME].min())  # type: ignore[arg-type]
        if first is not None:
            self.next_tick = next_tick_after(self.cron, first)

    def process(self, rows: pl.DataFrame, progress: Progress) -> pl.DataFrame:
        self._start(progress, rows)
        if rows.height:
            fresh = rows.select(self._columns)
            self.rows = fresh if self.rows is None else pl.concat([self.rows, fresh], how="vertical_relaxed")
        return self._fire(progress.watermark_us)

    def advance(self, progress: Progress) -> pl.DataFrame:
        self._start(progress, None)
        return self._fire(progress.watermark_us)

    def finish(self, progress: Progress) -> pl.DataFrame:
        self._start(progress, None)
        if progress.max_ts_us is None:
            return self.rule.empty_output()
        return self._fire(progress.max_ts_us)

    def late_mask(self, ts_us: np.ndarray, released_us: int) -> np.ndarray:
        # Late when every tick whose window holds the row has fired.
        if self.next_tick is None:
            return np.zeros(len(ts_us), dtype=bool)
        return ts_us + self.over < self.next_tick

    def _fire(self, limit_us: int) -> pl.DataFrame:
        if self.next_tick is None:
            return self.rule.empty_output()
        ticks, self.next_tick = ticks_until(self.cron, self.next_tick, limit_us)
        if not ticks:
            return self.rule.empty_output()
        out = self._evaluate(np.asarray(ticks, dtype=np.int64))
        if self.rows is not None:
            self.rows = self.rows.filter(pl.col(TIME) + self.over >= self.next_tick)
        return window_records(self.rule, out)

    def _evaluate(self, ticks: np.ndarray) -> pl.DataFrame:
        rows = self.rows if self.rows is not None else pl.DataFrame(schema={c: pl.Int64 for c in [TIME]})
        t = rows[TIME].to_numpy() if rows.height else np.zeros(0, dtype=np.int64)
        # tick i holds a row at t iff ticks[i] − D ≤ t < ticks[i], i.e. t < T ≤ t + D
        lo = np.searchsorted(ticks, t, side="right")
        hi = np.searchsorted(ticks, t + self.over, side="right")
        spread = (
            (
                rows.lazy()
                .with_columns(pl.int_ranges(pl.Series(lo, dtype=pl.Int64), pl.Series(hi, dtype=pl.Int64)).alias(TICK))
                .explode(TICK)
                .drop_nulls(TICK)
            )
            if rows.height
            else None
        )
        tick_s = pl.Series(TICK, ticks)
        if spread is not None and rows.height:
            grouped = spread.group_by([TICK, *self.keys]).agg(self._raw).collect()
            grouped = grouped.with_columns(pl.col(TICK).map_batches(lambda s: pl.Series(ticks[s.to_numpy()]), return_dtype=pl.Int64))
        else:
            grouped = None
        if not self.keys:
            # Every tick is evaluated, with or without rows.
            all_ticks = pl.DataFrame({TICK: tick_s})
            if grouped is not None and grouped.height:
                grouped = all_ticks.join(grouped, on=TICK, how="left")
            else:
                grouped = all_ticks.with_columns(pl.lit(None).alias(a.name) for a in self.rule.aggregates)
            zero = [a.name for a in self.rule.aggregates if a.func in ("count", "distinct")]
            grouped = grouped.with_columns(pl.col(c).fill_null(0) for c in zero)
        if grouped is None or grouped.height == 0:
            return pl.DataFrame()
        return grouped.with_columns((pl.col(TICK) - self.over).alias(START), pl.col(TICK).alias(END)).drop(TICK)

    def state(self) -> Any:
        return {"rows": frame_state(self.rows), "next_tick": self.next_tick}

    def load_state(self, state: Any) -> None:
        self.rows = frame_from_state(state["rows"])
        self.next_tick = state["next_tick"]
