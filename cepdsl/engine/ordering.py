"""Per-stream ordering: arrival numbers, event time, the watermark and the
reorder buffer.

Rows are released to the rules in (TIME, SEQ) order once the watermark reaches
them.  The watermark is the largest event time seen minus the stream's lateness
(streaming), or whatever the driver says (replay, where the driver knows from
Parquet statistics how far the input is complete), and it never goes back.
A row that arrives behind the watermark cannot be put back in order: the
session offers it to each rule's `late_mask` instead (see `session.py`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from cepdsl.executor import SEQ, TIME, Progress
from cepdsl.plan import StreamPlan

#: The watermark before any event: far in the past, yet safe to subtract durations from.
NO_WATERMARK = -(2**62)


@dataclass
class StreamState:
    plan: StreamPlan
    #: replay: the driver moves the watermark (`advance`); rows alone never do.
    external_watermark: bool = False
    next_seq: int = 0
    first_ts: int | None = None  # time of the first row released (before `where`)
    max_ts: int | None = None
    watermark: int = NO_WATERMARK
    #: largest TIME released to the rules so far (what `late_mask` is told)
    released_us: int = NO_WATERMARK
    #: rows seen but not yet released, sorted by (TIME, SEQ)
    buffer: pl.DataFrame | None = None
    #: whether released rows carry SEQ: only executors that break ties by it need it
    #: (filter rules do not); without it the buffer is kept in (TIME, arrival) order by
    #: stable sorts, which is the same order.
    need_seq: bool = True

    @property
    def lateness(self) -> int:
        return 0 if self.external_watermark else self.plan.lateness_us

    @property
    def has_time(self) -> bool:
        return self.plan.time_field is not None

    def progress(self) -> Progress:
        return Progress(self.watermark, self.first_ts, self.max_ts)

    # -- rows in -------------------------------------------------------------------
    def number(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Add TIME (int64 µs; null for a stream without time) and, when needed, SEQ
        (arrival index).  TIME is the time field's physical int64 (engine timestamps are
        µs), so it costs no pass over the data."""
        n = frame.height
        cols = []
        if self.has_time:
            cols.append(pl.col(self.plan.time_field).dt.epoch("us").alias(TIME))
        else:
            cols.append(pl.lit(None, pl.Int64).alias(TIME))
        if self.need_seq:
            cols.append(pl.int_range(self.next_seq, self.next_seq + n, dtype=pl.Int64).alias(SEQ))
        self.next_seq += n
        return frame.with_columns(cols)

    def observe(self, times: pl.Series) -> TimeScan | None:
        """Note the event times of arrived rows (before `where`, no nulls); moves the
        watermark.  Returns what one scan learnt about them (None for no rows)."""
        if times.len() == 0:
            return None
        scan = TimeScan.of(times)
        self.max_ts = scan.hi if self.max_ts is None else max(self.max_ts, scan.hi)
        if not self.external_watermark:
            self.watermark = max(self.watermark, self.max_ts - self.lateness)
        return scan

    def hold(self, rows: pl.DataFrame, scan: TimeScan | None = None) -> None:
        """Append arrived rows to the buffer.  With `scan` (rows without nulls in TIME) the
        buffer's sortedness is known without a pass: an in-order batch after a sorted
        buffer whose last time is ≤ the batch's first keeps it sorted."""
        if rows.height == 0:
            return
        buf = self.buffer
        if buf is None or buf.height == 0:
            if scan is not None and scan.sorted:
                rows = _flag_sorted(rows)
            self.buffer = rows
            return
        stays_sorted = (
            scan is not None and scan.sorted and self.has_time and buf[TIME].flags["SORTED_ASC"] and buf[TIME][-1] <= scan.lo
        )
        buf = pl.concat([buf, rows], how="vertical")
        self.buffer = _flag_sorted(buf) if stays_sorted else buf

    def release(self, upto: int | None = None) -> pl.DataFrame | None:
        """Rows with TIME ≤ `upto` (default: the watermark), in (TIME, SEQ) order."""
        buf = self.buffer
        if buf is None or buf.height == 0:
            return None
        if not self.has_time:
            self.buffer = None
            return buf
        limit = self.watermark if upto is None else upto
        t = buf[TIME]
        if not t.is_sorted():
            # Stable: without SEQ, ties keep buffer order, which is arrival order (the
            # buffer is a sorted prefix followed by rows in arrival order).
            buf = buf.sort([TIME, SEQ]) if SEQ in buf.columns else buf.sort(TIME, maintain_order=True)
            t = buf[TIME]
        if t[-1] <= limit:
            out, self.buffer = buf, None
        else:
            # Sorted: the released rows are a prefix.
            cut = int(np.searchsorted(t.to_numpy(), limit, side="right"))
            if cut == 0:
                self.buffer = buf
                return None
            out, self.buffer = buf.slice(0, cut), buf.slice(cut)
        out_t = out[TIME]
        self.released_us = max(self.released_us, int(out_t[-1]))
        # "The first event time seen on the stream" (§5.3) is the first one *released*:
        # release follows event time, so in replay it is the stream's earliest event even
        # when history arrives unsorted; an earlier-arrived but later row must not start
        # the schedule's ticks before the rows that precede it.
        lo = int(out_t[0])
        self.first_ts = lo if self.first_ts is None else min(self.first_ts, lo)
        return out

    # -- state ---------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        buf = None
        if self.buffer is not None and self.buffer.height:
            sink = io.BytesIO()
            self.buffer.write_ipc(sink)
            buf = sink.getvalue()
        return {
            "next_seq": self.next_seq,
            "first_ts": self.first_ts,
            "max_ts": self.max_ts,
            "watermark": self.watermark,
            "released_us": self.released_us,
            "buffer": buf,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.next_seq = state["next_seq"]
        self.first_ts = state["first_ts"]
        self.max_ts = state["max_ts"]
        self.watermark = state["watermark"]
        self.released_us = state["released_us"]
        buf = state["buffer"]
        self.buffer = None if buf is None else self.fit_seq(pl.read_ipc(io.BytesIO(buf)))

    def fit_seq(self, buf: pl.DataFrame) -> pl.DataFrame:
        """Held rows with SEQ exactly when this state needs it (a snapshot or an older
        declaration may differ).  Rows held without SEQ are in (TIME, arrival) order once
        sorted, so numbering them in that order, below `next_seq`, keeps every tie's order."""
        if self.need_seq and SEQ not in buf.columns:
            if self.has_time:
                buf = buf.sort(TIME, maintain_order=True)
            start = self.next_seq - buf.height
            return buf.with_columns(pl.int_range(start, self.next_seq, dtype=pl.Int64).alias(SEQ))
        if not self.need_seq and SEQ in buf.columns:
            if self.has_time:
                buf = buf.sort([TIME, SEQ])
            return buf.drop(SEQ)
        return buf

    def adopt(self, old: StreamState) -> None:
        """Take over an older declaration's progress and buffered rows (hot reload):
        buffered rows are re-shaped to this declaration (new fields null, dropped fields gone)."""
        self.next_seq, self.first_ts, self.max_ts = old.next_seq, old.first_ts, old.max_ts
        self.watermark, self.released_us = old.watermark, old.released_us
        if old.buffer is None or old.buffer.height == 0:
            return
        buf = old.buffer
        cols = []
        for name, dtype in self.plan.schema.items():
            if name in buf.columns:
                cols.append(pl.col(name).cast(dtype, strict=False))
            else:
                cols.append(pl.lit(None, dtype).alias(name))
        keep = [pl.col(TIME)] + ([pl.col(SEQ)] if SEQ in buf.columns else [])
        self.buffer = self.fit_seq(buf.select(*cols, *keep))


def _flag_sorted(frame: pl.DataFrame) -> pl.DataFrame:
    """Record that TIME is ascending (metadata only), so later `is_sorted` checks are free."""
    return frame.with_columns(pl.col(TIME).set_sorted())


@dataclass(frozen=True)
class TimeScan:
    """Smallest and largest time of a batch and whether it is ascending, from one pass."""

    lo: int
    hi: int
    sorted: bool

    @staticmethod
    def of(times: pl.Series) -> TimeScan:
        if times.flags["SORTED_ASC"]:
            return TimeScan(int(times[0]), int(times[-1]), True)
        t = times.to_numpy()  # int64 without nulls: a zero-copy view
        if t.size == 1 or bool((t[1:] >= t[:-1]).all()):
            return TimeScan(int(t[0]), int(t[-1]), True)
        return TimeScan(int(t.min()), int(t.max()), False)
