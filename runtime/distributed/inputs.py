"""Input partitions: what one Bytewax source partition reads, and how far it is.

Every partition reports, with each micro-batch, its *horizon*: every row it will
still produce has an event time ≥ the horizon (END once it has ended).

- `ParquetRange`: row blocks of a stream's Parquet files (the files in `cep
  replay`'s order), read a block at a time; each row keeps its index in the whole
  input, so equal times keep file order whichever partition read them.  Its horizon is the smallest
  event time of the row groups it has not finished, from the footers'
  statistics, as `cep replay` does for a whole stream; time-sorted files flow
  straight through, unsorted ones are held until the statistics allow.
- `LivePartition`: one live source (`--source` spec: a JSON lines file, a
  Redis stream key) read on a thread of its own.  Its horizon is its largest
  event time less the stream's lateness (a time-ordered partition never sends
  a row below it again, so ties keep input order), and, once it has been silent for `idle_after_s`,
  the wall clock less lateness, so a quiet partition does not hold the others
  back (only once it has had rows, as in one process: a partition that has never
  had one holds its stream's time back).
- `RedisStreamPartition`: entries of one Redis stream key, read by entry id
  (XRANGE), the last id read being the resume offset.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from cepdsl.engine.ordering import NO_WATERMARK
from cepdsl.plan import StreamPlan
from runtime.distributed.slices import END

#: Seconds between clock-driven horizon steps of a silent live partition.
CLOCK_STEP_S = 0.25


@dataclass
class Read:
    frame: pl.DataFrame | None  # rows (declared fields), None: nothing new
    dead: pl.DataFrame | None  # rows the source could not type
    horizon: int
    done: bool
    #: the first row's index in the whole input of the stream (files read as one): ties in
    #: time then follow it, whichever partition read the row. None: the partition numbers rows.
    offset: int | None = None


class PartitionReader:
    def poll(self) -> Read | None:
        """What arrived since the last call (None: nothing, not even progress)."""
        raise NotImplementedError

    def snapshot(self) -> dict[str, Any]:
        raise NotImplementedError

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class InputPartition:
    """One Bytewax source partition: `name` is its Bytewax key, `ordinal` its place in
    its stream's input order (ties in event time follow it)."""

    stream: str
    ordinal: int
    of: int

    @property
    def name(self) -> str:
        return f"{self.stream}.{self.ordinal:05d}"

    def open(self, plan: StreamPlan, resume: dict[str, Any] | None) -> PartitionReader:
        raise NotImplementedError


# ----------------------------------------------------------------------------- Parquet


@dataclass(frozen=True)
class ParquetRange(InputPartition):
    """Row blocks of a stream's Parquet files (global row indices over `files` concatenated):
    blocks of `batch_rows` dealt round-robin to the partitions, so every partition moves
    through time together and the watermark, their minimum, moves with them (contiguous
    halves would hold the second half's rows until the first half is read)."""

    files: tuple[str, ...] = ()
    blocks: tuple[tuple[int, int], ...] = ()
    batch_rows: int = 500_000

    def open(self, plan: StreamPlan, resume: dict[str, Any] | None) -> PartitionReader:
        return _ParquetRangeReader(self, plan, (resume or {}).get("read", 0))


def split_parquet(plan: StreamPlan, paths: Sequence[Path | str], parts: int, batch_rows: int = 500_000) -> list[ParquetRange]:
    """`parts` partitions of `paths` (in order): blocks of `batch_rows` rows, round-robin."""
    import pyarrow.parquet as pq

    total = sum(pq.ParquetFile(p).metadata.num_rows for p in paths)
    parts = max(1, parts)
    files = tuple(str(p) for p in paths)
    cuts = list(range(0, total, batch_rows)) + [total]
    blocks = [(cuts[i], cuts[i + 1]) for i in range(len(cuts) - 1)]
    return [ParquetRange(plan.name, i, parts, files, tuple(blocks[i::parts]), batch_rows) for i in range(parts)]


class _ParquetRangeReader(PartitionReader):
    def __init__(self, spec: ParquetRange, plan: StreamPlan, read: int) -> None:
        from runtime.replay import row_group_bounds

        self.spec, self.plan, self.read = spec, plan, read
        self.file_rows: list[int] = []
        rg_rows: list[np.ndarray] = []
        rg_mins: list[np.ndarray] = []
        for f in spec.files:
            rows, mins = row_group_bounds(plan, [Path(f)])
            rg_rows.append(rows)
            rg_mins.append(mins)
            self.file_rows.append(int(rows.sum()))
        rows = np.concatenate(rg_rows) if rg_rows else np.zeros(0, np.int64)
        self.rg_mins = np.concatenate(rg_mins) if rg_mins else np.zeros(0, np.int64)
        self.rg_ends = np.cumsum(rows)
        self.rg_starts = self.rg_ends - rows
        self.file_starts = np.cumsum([0, *self.file_rows])
        if plan.time_field is None:
            self.rg_mins = np.full_like(self.rg_mins, END)
        sizes = np.array([b - a for a, b in spec.blocks], dtype=np.int64)
        self.block_ends = np.cumsum(sizes)  # rows of this partition up to each block's end
        self.total = int(sizes.sum())

    def _position(self) -> tuple[int, int] | None:
        """(global row index of the next row to read, end of its block); None when done."""
        if self.read >= self.total:
            return None
        i = int(np.searchsorted(self.block_ends, self.read, side="right"))
        start, stop = self.spec.blocks[i]
        before = int(self.block_ends[i]) - (stop - start)
        return start + self.read - before, stop

    def horizon(self) -> int:
        pos = self._position()
        if pos is None:
            return END
        at, stop = pos
        # Row groups holding rows of this partition not read yet: the rest of this block, later blocks.
        later = [(a, b) for a, b in self.spec.blocks if a >= stop]
        lo = int(self.rg_mins[(self.rg_ends > at) & (self.rg_starts < stop)].min(initial=END))
        for a, b in later:
            lo = min(lo, int(self.rg_mins[(self.rg_ends > a) & (self.rg_starts < b)].min(initial=END)))
        return lo

    def poll(self) -> Read | None:
        from runtime.sources.parquet import scan

        pos = self._position()
        if pos is None:
            return Read(None, None, END, True)
        at, stop = pos
        f = int(np.searchsorted(self.file_starts, at, side="right")) - 1
        local = at - int(self.file_starts[f])
        n = min(stop - at, self.file_rows[f] - local)  # one file per read
        frame = scan(self.plan, self.spec.files[f]).slice(local, n).collect()
        self.read += frame.height
        return Read(frame, None, self.horizon(), self.read >= self.total, offset=at)

    def snapshot(self) -> dict[str, Any]:
        return {"read": self.read}


# ----------------------------------------------------------------------------- live sources


@dataclass(frozen=True)
class LivePartition(InputPartition):
    spec: str = ""  # a `--source` spec (runtime.sources.spec)
    idle_after_s: float = 1.0

    def open(self, plan: StreamPlan, resume: dict[str, Any] | None) -> PartitionReader:
        if self.spec.startswith(("redis://", "rediss://")):
            return RedisStreamReader(self.spec, plan, resume, self.idle_after_s)
        return _LiveReader(self.spec, plan, resume, self.idle_after_s)


class _ClockedHorizon:
    """Event-time horizon of a live partition: its largest time − lateness, or the wall
    clock − lateness once it has been silent for `idle_after_s`."""

    def __init__(self, plan: StreamPlan, idle_after_s: float, clock: Callable[[], float] = time.time) -> None:
        self.plan, self.idle_after_s, self.clock = plan, idle_after_s, clock
        self.value = NO_WATERMARK
        self.last_rows_at = clock()
        self.last_step_at = 0.0

    def rows(self, frame: pl.DataFrame | None) -> None:
        if frame is not None and frame.height and self.plan.time_field is not None:
            hi = frame[self.plan.time_field].max()
            if hi is not None:
                us = int(pl.Series([hi]).dt.epoch("us")[0])
                self.value = max(self.value, us - self.plan.lateness_us)
            self.last_rows_at = self.clock()

    def tick(self, held_s: float) -> int:
        """The horizon now; on a silent partition it follows the clock in steps of at least
        `CLOCK_STEP_S` (each step is a Slice to every key partition)."""
        now = self.clock()
        # As in one process, only after rows have been seen: a partition still catching up on
        # history (or not yet started) must not declare the other partitions' rows late.
        seen = self.value > NO_WATERMARK
        if seen and now - self.last_rows_at >= self.idle_after_s and now - self.last_step_at >= CLOCK_STEP_S:
            self.last_step_at = now
            self.value = max(self.value, int((now - held_s) * 1_000_000) - self.plan.lateness_us)
        return self.value


class _LiveReader(PartitionReader):
    def __init__(self, spec: str, plan: StreamPlan, resume: dict[str, Any] | None, idle_after_s: float) -> None:
        from runtime.sources import open_source

        opts = {"start_offsets": resume["offsets"]} if resume and resume.get("offsets") else {}
        self.source = open_source(spec, plan, **opts)
        self.offsets: dict[str, Any] = dict(resume.get("offsets") or {}) if resume else {}
        self.clocked = _ClockedHorizon(plan, idle_after_s)
        self.inbox: queue.Queue[Any] = queue.Queue(maxsize=16)
        self.stop = threading.Event()
        self.ended = False
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._pump, name=f"cep-read-{spec[:40]}", daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        from runtime.replay import put_unless_stopped

        try:
            for batch in self.source:
                if not put_unless_stopped(self.inbox, batch, self.stop, 0.2):
                    return
        except BaseException as e:  # handed to the dataflow thread
            self.inbox.put(e)
            return
        self.inbox.put(None)

    def poll(self) -> Read | None:
        if self.ended:
            return None
        frames, deads, done = [], [], False
        while True:
            try:
                item = self.inbox.get_nowait()
            except queue.Empty:
                break
            if item is None:
                done = True
                break
            if isinstance(item, BaseException):
                raise item
            if item.frame.height:
                frames.append(item.frame)
            if item.dead.height:
                deads.append(item.dead)
            if item.offsets:
                self.offsets = dict(item.offsets)
        frame = pl.concat(frames, how="vertical") if frames else None
        self.clocked.rows(frame)
        if done:
            self.ended = True
            return Read(frame, pl.concat(deads) if deads else None, END, True)
        before = self.clocked.value
        horizon = self.clocked.tick(getattr(self.source, "max_delay_s", 0.0))
        if frame is None and not deads and horizon == before:
            return None
        return Read(frame, pl.concat(deads) if deads else None, horizon, False)

    def snapshot(self) -> dict[str, Any]:
        return {"offsets": self.offsets}

    def close(self) -> None:
        self.stop.set()
        self.source.close()


class RedisStreamReader(PartitionReader):
    """One Redis stream key, read by id: `redis://HOST:PORT/DB?stream=KEY` (an entry is a
    `data`/`json` field holding a JSON object, or flat fields, as for `cep run`)."""

    def __init__(self, spec: str, plan: StreamPlan, resume: dict[str, Any] | None, idle_after_s: float) -> None:
        from urllib.parse import parse_qsl, urlsplit, urlunsplit

        import redis

        parts = urlsplit(spec)
        query = dict(parse_qsl(parts.query))
        self.key = query.get("stream", "")
        if not self.key:
            from runtime.sources.errors import SourceSpecError

            raise SourceSpecError(f"{spec}: missing ?stream=KEY (each Redis stream key is one input partition)")
        self.count = int(query.get("max_rows", 10_000))
        self.redis = redis.Redis.from_url(urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")))
        self.plan = plan
        self.last_id = (resume or {}).get("last_id", query.get("start", "0") or "0")
        self.clocked = _ClockedHorizon(plan, idle_after_s)
        self.poll_s, self._next = 0.05, 0.0

    def poll(self) -> Read | None:
        from runtime.sources.records import Rejected, records_to_frame

        now = time.monotonic()
        if now < self._next:
            return None
        entries = self.redis.xrange(self.key, min=f"({self.last_id}" if self.last_id != "0" else "-", count=self.count)
        if not entries:
            self._next = now + self.poll_s
            before = self.clocked.value
            horizon = self.clocked.tick(0.0)
            return None if horizon == before else Read(None, None, horizon, False)
        records: list[Any] = []
        raws: list[Any] = []
        for entry_id, fields in entries:
            payload = fields.get(b"data", fields.get(b"json"))
            if payload is not None:
                raws.append(payload)
                try:
                    records.append(json.loads(payload))
                except ValueError as e:
                    records.append(Rejected(f"malformed JSON in entry {entry_id.decode()}: {e}"))
            else:
                rec = {k.decode(): v.decode() for k, v in fields.items()}
                records.append(rec)
                raws.append(json.dumps(rec))
        self.last_id = entries[-1][0].decode()
        frame, dead = records_to_frame(self.plan, records, raws)
        self.clocked.rows(frame)
        return Read(frame, dead if dead.height else None, self.clocked.tick(0.0), False)

    def snapshot(self) -> dict[str, Any]:
        return {"last_id": self.last_id}

    def close(self) -> None:
        self.redis.close()
