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

from cepdsl.backends.base import SEQ, TIME, Progress
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
        """Add SEQ (arrival index) and TIME (int64 µs; null for a stream without time)."""
        n = frame.height
        seq = pl.int_range(self.next_seq, self.next_seq + n, dtype=pl.Int64, eager=True)
        self.next_seq += n
        if self.has_time:
            t = pl.col(self.plan.time_field).dt.epoch("us")
        else:
            t = pl.lit(None, pl.Int64)
        return frame.with_columns(t.alias(TIME), seq.alias(SEQ))

    def observe(self, times: pl.Series) -> None:
        """Note the event times of arrived rows (before `where`); moves the watermark."""
        if times.len() == 0:
            return
        hi = times.max()
        self.max_ts = hi if self.max_ts is None else max(self.max_ts, hi)
        if not self.external_watermark:
            self.watermark = max(self.watermark, self.max_ts - self.lateness)

    def hold(self, rows: pl.DataFrame) -> None:
        if rows.height == 0:
            return
        if self.buffer is None or self.buffer.height == 0:
            self.buffer = rows
        else:
            self.buffer = pl.concat([self.buffer, rows], how="vertical")

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
            buf = buf.sort([TIME, SEQ])
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
        self.released_us = max(self.released_us, int(out[TIME][-1]))
        # "The first event time seen on the stream" (§5.3) is the first one *released*:
        # release follows event time, so in replay it is the stream's earliest event even
        # when history arrives unsorted; an earlier-arrived but later row must not start
        # the schedule's ticks before the rows that precede it.
        lo = int(out[TIME][0])
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
        self.buffer = None if buf is None else pl.read_ipc(io.BytesIO(buf))

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
        self.buffer = buf.select(*cols, pl.col(TIME), pl.col(SEQ))
