"""One key partition of one stateful rule: a `cepdsl.engine.Session` of that rule alone.

Bytewax routes every Slice keyed `RULE@FINGERPRINT#BUCKET` to one worker; this
logic puts the Slices of each input partition back in sequence, holds rows
until every input partition of the stream has passed their time (the stream's
watermark: the minimum of the partitions' horizons), then pushes them to the
session sorted by (time, partition, offset) — the order one process would have
— and advances the session to just below that watermark.  Windows, schedules
and absence deadlines therefore fire here exactly when the whole stream is past
them, whether this partition got rows or not.  When every input partition has
ended, the session is flushed (as replay does at the end of its input).

Its Bytewax snapshot is the session's own `Session.snapshot()` bytes plus the
rows and Slices still held (Arrow IPC) and per-partition progress.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import polars as pl
from bytewax.operators import StatefulBatchLogic

from cepdsl.engine import Session
from cepdsl.engine.ordering import NO_WATERMARK
from cepdsl.executor import TIME
from cepdsl.plan import Program, RulePlan
from runtime.distributed.routing import carried_fields
from runtime.distributed.slices import END, OFFSET, PART, Slice, frame_bytes, frame_of

#: Layout of the snapshot below; bumped when it changes.
KEYED_STATE_VERSION = 1
#: Seconds between per-rule stats records from one key partition.
STATS_EVERY_S = 1.0


@dataclass
class PartProgress:
    next_seq: int = 0
    horizon: int = NO_WATERMARK
    lo: int | None = None
    hi: int | None = None


class RulePartition(StatefulBatchLogic):
    """Built by Bytewax per key (fresh, or from the snapshot of an earlier execution)."""

    def __init__(self, resume: dict[str, Any] | None) -> None:
        self.rule: RulePlan | None = None
        self.silences: tuple = ()
        self.session: Session | None = None
        self._fill: list[pl.Expr] = []
        self.parts_total = 0
        self.progress: dict[int, PartProgress] = {}
        self.inbox: dict[int, dict[int, Slice]] = {}  # arrived ahead of their turn
        #: rows waiting for the watermark, as arrived: (smallest TIME, largest TIME, rows)
        self.pending: list[tuple[Any, Any, pl.DataFrame]] = []
        self.released = NO_WATERMARK  # the session has every row with TIME < released
        self.flushed = False
        self.enabled = True
        self.suppressed = 0  # matches dropped while disabled
        self.gone: set[int] = set()  # input partitions that said the rule is gone
        self._stats_at = 0.0
        if resume is not None:
            self._load(resume)

    # ------------------------------------------------------------------ Bytewax hooks
    def on_batch(self, values: list[Slice]) -> tuple[list[tuple], bool]:
        for s in values:
            self._accept(s)
        out = self._step()
        if self.gone and self.gone >= set(self.progress):
            # Every input partition that ever sent to it says the rule is deleted (or changed):
            # nothing more will come; Bytewax drops this state.
            return out, StatefulBatchLogic.DISCARD
        now = time.monotonic()
        if self.rule is not None and (now - self._stats_at >= STATS_EVERY_S or self.flushed):
            self._stats_at = now
            out.append(("s", self.stats()))
        return out, StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[list[tuple], bool]:
        # The input stopped (or ended): the last word on this partition's stats.
        return ([("s", self.stats())] if self.rule is not None else []), StatefulBatchLogic.RETAIN

    def snapshot(self) -> dict[str, Any]:
        return {
            "version": KEYED_STATE_VERSION,
            "rule": self.rule,
            "silences": self.silences,
            "session": self.session.snapshot() if self.session is not None else None,
            "parts_total": self.parts_total,
            "progress": {p: (g.next_seq, g.horizon, g.lo, g.hi) for p, g in self.progress.items()},
            "inbox": {p: {q: _slice_state(s) for q, s in byseq.items()} for p, byseq in self.inbox.items()},
            "pending": frame_bytes(pl.concat([c for _, _, c in self.pending], how="vertical")) if self.pending else None,
            "released": self.released,
            "flushed": self.flushed,
            "enabled": self.enabled,
            "suppressed": self.suppressed,
            "gone": sorted(self.gone),
        }

    def _load(self, state: dict[str, Any]) -> None:
        if state.get("version") != KEYED_STATE_VERSION:
            raise ValueError(f"key partition state version {state.get('version')}, expected {KEYED_STATE_VERSION}")
        if state["rule"] is not None:
            self._start(state["rule"], state.get("silences", ()))
            assert self.session is not None
            self.session.restore(state["session"])
        self.parts_total = state["parts_total"]
        self.progress = {p: PartProgress(*g) for p, g in state["progress"].items()}
        self.inbox = {p: {q: _slice_of(s) for q, s in byseq.items()} for p, byseq in state["inbox"].items()}
        pending = frame_of(state["pending"])
        self.pending = []
        if pending is not None:
            self._hold(pending)
        self.released = state["released"]
        self.flushed = state["flushed"]
        self.enabled = state["enabled"]
        self.suppressed = state["suppressed"]
        self.gone = set(state["gone"])

    # ------------------------------------------------------------------ the work
    def _start(self, rule: RulePlan, silences: tuple = ()) -> None:
        self.rule = rule
        self.silences = tuple(silences)
        # The reader has applied `where` (and may have left out fields the rule does not read).
        engine_rule = dataclasses.replace(rule, where=None)
        self.session = Session(Program(streams=(rule.stream,), channels=(), rules=(engine_rule,), silences=self.silences), replay=True)
        self._fill = [
            pl.lit(None, f.dtype).alias(f.name)
            for f in rule.stream.fields
            if f.name not in (carried_fields(rule) or rule.stream.schema)
        ]

    def _accept(self, s: Slice) -> None:
        if s.rule is not None and self.rule is None:
            self._start(s.rule, s.silences)
        self.parts_total = max(self.parts_total, s.parts)
        self.inbox.setdefault(s.part, {})[s.seq] = s
        prog = self.progress.setdefault(s.part, PartProgress())
        waiting = self.inbox[s.part]
        # Apply in sequence: a later Slice may have overtaken an earlier one in the exchange.
        while prog.next_seq in waiting:
            ready = waiting.pop(prog.next_seq)
            prog.next_seq += 1
            prog.horizon = max(prog.horizon, ready.horizon)
            if ready.lo is not None:
                prog.lo = ready.lo if prog.lo is None else min(prog.lo, ready.lo)
                prog.hi = ready.hi if prog.hi is None else max(prog.hi, ready.hi)
            self.enabled = ready.enabled
            if ready.gone:
                self.gone.add(s.part)
            if ready.rows is not None and ready.rows.height:
                self._hold(ready.rows)
        if not waiting:
            del self.inbox[s.part]

    def _watermark(self) -> int:
        if self.parts_total == 0 or len(self.progress) < self.parts_total:
            return NO_WATERMARK  # a partition not heard from yet may still send anything
        return min(g.horizon for g in self.progress.values())

    def _step(self) -> list[tuple]:
        if self.session is None or self.flushed:
            return []
        rule = self.rule
        assert rule is not None
        stream = rule.stream.name
        wm = self._watermark()
        outs: list[dict[str, pl.DataFrame]] = []
        if rule.stream.time_field is None:
            # No event time: rows go in as they arrive (see docs/distributed.md).
            rows = self._take(None)
            if rows is not None:
                outs.append(self.session.push(stream, rows))
        elif wm > self.released:
            rows = self._take(wm)
            if self.parts_total and len(self.progress) == self.parts_total:
                first = min((g.lo for g in self.progress.values() if g.lo is not None), default=None)
                # The stream's first event is known once everything before the watermark is in.
                if first is not None and first < wm:
                    self.session.note_extent(stream, first_ts_us=first)
            if rows is not None:
                outs.append(self.session.push(stream, rows))
            if wm < END:
                outs.append(self.session.advance(stream, wm - 1))
            self.released = wm
        if wm >= END:
            rows = self._take(None)
            if rows is not None:
                outs.append(self.session.push(stream, rows))
            last = max((g.hi for g in self.progress.values() if g.hi is not None), default=None)
            first = min((g.lo for g in self.progress.values() if g.lo is not None), default=None)
            self.session.note_extent(stream, first_ts_us=first, max_ts_us=last)
            outs.append(self.session.flush())
            self.flushed = True
        return self._records(outs)

    def _hold(self, rows: pl.DataFrame) -> None:
        times = rows[TIME]
        self.pending.append((times.min(), times.max(), rows))

    def _take(self, below: int | None) -> pl.DataFrame | None:
        """Held rows with TIME < `below` (None: all), in (TIME, PART, OFFSET) order, as the
        session wants them (declared fields only)."""
        if not self.pending:
            return None
        if below is None:
            parts, self.pending = [c for _, _, c in self.pending], []
        else:
            # Per held chunk, by its time range: whole, kept, or split. Touching only what is
            # due keeps this linear when one input partition runs far ahead of another.
            parts, keep = [], []
            for lo, hi, chunk in self.pending:
                if hi is not None and hi < below:
                    parts.append(chunk)
                elif lo is not None and lo >= below:
                    keep.append((lo, hi, chunk))
                else:
                    go = chunk[TIME] < below
                    parts.append(chunk.filter(go))
                    rest = chunk.filter(~go)
                    if rest.height:
                        keep.append((rest[TIME].min(), hi, rest))
            self.pending = keep
        parts = [p for p in parts if p.height]
        if not parts:
            return None
        if len(parts) > 1:
            # Chunks in input order (each is a run of one partition's rows in offset order):
            # time-sorted input then needs no row sort, only the check below.
            parts.sort(key=lambda c: (c[PART][0], c[OFFSET][0]))
        out = parts[0] if len(parts) == 1 else pl.concat(parts, how="vertical")
        order = [TIME, PART, OFFSET] if self.rule is not None and self.rule.stream.time_field else [PART, OFFSET]
        if not out[TIME].is_sorted():
            # In input order but not in time order (unsorted files, several live partitions):
            # (time, partition, offset) is the order one process would have given them.
            out = out.sort(order)
        assert self.rule is not None
        if self._fill:
            out = out.with_columns(self._fill)
        # `select` of the declared fields, in order: the session's conform() then costs nothing.
        return out.select(self.rule.stream.schema.keys())

    def _records(self, outs: list[dict[str, pl.DataFrame]]) -> list[tuple]:
        assert self.session is not None and self.rule is not None
        records: list[tuple] = []
        for got in outs:
            for rid, frame in got.items():
                if not frame.height:
                    continue
                if self.enabled:
                    records.append(("m", rid, frame))
                else:
                    self.suppressed += frame.height
        dead = self.session.take_dead_letters()
        if dead.height:
            records.append(("d", dead))
        return records

    def stats(self) -> dict[str, Any]:
        assert self.session is not None and self.rule is not None
        row = self.session.stats(state_size=False)[self.rule.id]
        row["disabled_suppressed"] = self.suppressed
        row["held_rows"] = sum(c.height for _, _, c in self.pending)
        row["watermark_us"] = self.released
        row["flushed"] = self.flushed
        return row


def _slice_state(s: Slice) -> tuple:
    return (s.part, s.parts, s.seq, s.horizon, s.lo, s.hi, frame_bytes(s.rows), s.enabled, s.rule, s.gone, s.silences)


def _slice_of(t: tuple) -> Slice:
    part, parts, seq, horizon, lo, hi, rows, enabled, rule, gone, silences = t
    return Slice(part, parts, seq, horizon, lo, hi, frame_of(rows), enabled, rule, gone, silences)
