"""`cep replay`: finished history from Parquet through every rule, matches to Parquet.

Memory stays bounded whatever the input size: each stream is read in chunks
(`runtime.sources.parquet.iter_parquet`), matches are written out as they come
(one `ParquetWriter` per rule), and rows are held back only as long as needed
to put them in event-time order.  How long that is comes from the files' own
statistics: the smallest event time of every row group not yet read is a
bound below which no row can still arrive, so it is the stream's watermark.
Time-sorted files therefore flow straight through; unsorted ones are still
replayed exactly (in event-time order, ties in file order), holding rows until
the statistics allow their release.  Streams are interleaved chunk by chunk,
always reading next from the stream that is furthest behind in event time.
"""

from __future__ import annotations

import datetime as _dt
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from cepdsl.engine import Session
from cepdsl.engine.ordering import NO_WATERMARK
from cepdsl.plan import Program, RulePlan, StreamPlan
from runtime.dead_letter_writer import DeadLetterWriter
from runtime.sources.errors import UnreadableInputError
from runtime.sources.parquet import iter_parquet, resolve_paths

DEAD_LETTER_FILE = "_dead_letter.parquet"
#: Matches are gathered per rule up to this many rows before a row group is written.
WRITE_ROWS = 256_000
_END = np.iinfo(np.int64).max

ProgressCallback = Callable[[int, int], None]  # (rows done, rows in total)


@dataclass(frozen=True)
class RuleSummary:
    rule: str
    matches: int
    suppressed: int
    late: int
    seconds: float  # time spent evaluating this rule (where share + executor + throttle)
    path: Path


@dataclass(frozen=True)
class ReplaySummary:
    rules: tuple[RuleSummary, ...]
    rows: int  # input rows read, all streams
    dead_letters: int
    seconds: float  # wall time of the whole replay
    dead_letter_path: Path

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")


# ----------------------------------------------------------------------------- time bounds


def _as_us(value: object) -> int | None:
    if isinstance(value, _dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(_dt.timezone.utc).replace(tzinfo=None)
        return (value - _dt.datetime(1970, 1, 1)) // _dt.timedelta(microseconds=1)
    if isinstance(value, _dt.date):
        return (value - _dt.date(1970, 1, 1)).days * 86_400_000_000
    return None


def row_group_bounds(stream: StreamPlan, paths: Sequence[Path]) -> tuple[np.ndarray, np.ndarray]:
    """For every row group of `paths` in read order: its row count and the smallest event time
    in it (from the footer statistics; NO_WATERMARK when the file does not say)."""
    rows: list[int] = []
    mins: list[int] = []
    for path in paths:
        try:
            md = pq.ParquetFile(path).metadata
        except (pa.ArrowException, OSError) as e:  # a truncated or non-Parquet file: name it
            raise UnreadableInputError(f"{path}: cannot read it as Parquet: {e}") from None
        col = None
        if md.num_row_groups:
            rg = md.row_group(0)
            col = next((j for j in range(rg.num_columns) if rg.column(j).path_in_schema == stream.time_field), None)
        for i in range(md.num_row_groups):
            rg = md.row_group(i)
            rows.append(rg.num_rows)
            low = None
            if col is not None:
                stats = rg.column(col).statistics
                if stats is not None and stats.has_min_max:
                    low = _as_us(stats.min)
            mins.append(NO_WATERMARK if low is None else low)
    return np.asarray(rows, dtype=np.int64), np.asarray(mins, dtype=np.int64)


def put_unless_stopped(q: queue.Queue[Any], item: object, stop: threading.Event, wait_s: float) -> bool:
    """Put `item` on the bounded queue `q`, waiting for room, unless `stop` is set first:
    a reader thread whose consumer may go away. False once `stop` is set (even after the put)."""
    while not stop.is_set():
        try:
            q.put(item, timeout=wait_s)
            break
        except queue.Full:
            continue
    return not stop.is_set()


class Prefetch:
    """Reads the next chunks in a thread while the engine works on the current one
    (Parquet decoding releases the GIL), at most `depth` chunks ahead: bounded memory."""

    _END = object()

    def __init__(self, chunks: Iterator[pl.DataFrame], depth: int = 2) -> None:
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(chunks,), name="cep-replay-read", daemon=True)
        self._thread.start()

    def _run(self, chunks: Iterator[pl.DataFrame]) -> None:
        try:
            for chunk in chunks:
                if not put_unless_stopped(self._queue, chunk, self._stop, 0.1):
                    close = getattr(chunks, "close", None)
                    if close is not None:
                        close()
                    return
            self._queue.put(self._END)
        except BaseException as e:  # handed to the consumer, raised there
            self._queue.put(e)

    def __iter__(self) -> Iterator[pl.DataFrame]:
        return self

    def __next__(self) -> pl.DataFrame:
        item = self._queue.get()
        if item is self._END:
            raise StopIteration
        if isinstance(item, BaseException):
            raise item
        return item  # type: ignore[return-value]

    def close(self) -> None:
        self._stop.set()


class StreamReader:
    """One stream's chunks, with the watermark the row-group statistics allow after each."""

    def __init__(self, stream: StreamPlan, paths: Sequence[Path], batch_rows: int) -> None:
        self.stream = stream
        self.chunks = Prefetch(iter_parquet(stream, paths, batch_rows))
        self.rows_read = 0
        rows, mins = row_group_bounds(stream, paths)
        self.total_rows = int(rows.sum())
        self.ends = np.cumsum(rows)
        if stream.time_field is None:
            self.suffix_min = np.full(len(rows) + 1, _END, dtype=np.int64)
        else:
            # suffix_min[i]: smallest event time in row groups i..end; past the end: +inf
            self.suffix_min = np.append(np.minimum.accumulate(mins[::-1])[::-1], _END)

    @property
    def horizon(self) -> int:
        """No row still unread has an event time below this."""
        first_open = int(np.searchsorted(self.ends, self.rows_read, side="right"))
        return int(self.suffix_min[first_open])

    def next_chunk(self) -> pl.DataFrame | None:
        chunk = next(self.chunks, None)
        if chunk is None:
            return None
        self.rows_read += chunk.height
        return chunk

    def close(self) -> None:
        self.chunks.close()


# ----------------------------------------------------------------------------- outputs


class MatchWriter:
    """One rule's matches into `DIR/<rule>.parquet`, written in row groups as they come."""

    def __init__(self, rule: RulePlan, path: Path) -> None:
        self.path = path
        self.schema = rule.empty_output().to_arrow().schema
        self.pending: list[pl.DataFrame] = []
        self.pending_rows = 0
        self.rows = 0
        self._writer: pq.ParquetWriter | None = None

    def add(self, frame: pl.DataFrame) -> None:
        if frame.height == 0:
            return
        self.pending.append(frame)
        self.pending_rows += frame.height
        if self.pending_rows >= WRITE_ROWS:
            self._write()

    def _write(self) -> None:
        if not self.pending:
            return
        table = pl.concat(self.pending, how="vertical").to_arrow()
        if not table.schema.equals(self.schema):
            table = table.cast(self.schema)
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, self.schema)
        self._writer.write_table(table)
        self.rows += table.num_rows
        self.pending, self.pending_rows = [], 0

    def close(self) -> None:
        self._write()
        if self._writer is not None:
            self._writer.close()
        else:
            pq.write_table(pa.Table.from_batches([], schema=self.schema), self.path)


# ----------------------------------------------------------------------------- the driver


def replay(
    program: Program,
    data: Mapping[str, Sequence[Path | str] | str | Path],
    out_dir: str | os.PathLike[str],
    *,
    progress: ProgressCallback | None = None,
    batch_rows: int = 1_000_000,
    session: Session | None = None,
    tables: Mapping[str, Any] | None = None,
) -> ReplaySummary:
    """Replay `data` ({stream: Parquet paths}) through every rule of `program`; write
    `out_dir/<rule>.parquet` for every rule and `out_dir/_dead_letter.parquet`."""
    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    session = session or Session(program, replay=True, tables=tables)
    declared = {s.name: s for s in program.streams}
    readers: list[StreamReader] = []
    for name, spec in data.items():
        if name not in declared:
            raise KeyError(f"unknown stream {name!r} (declared: {', '.join(declared)})")
        specs = [spec] if isinstance(spec, (str, Path)) else list(spec)
        paths = [p for s in specs for p in resolve_paths(s)]
        readers.append(StreamReader(declared[name], paths, batch_rows))
    total = sum(r.total_rows for r in readers)
    writers = {r.id: MatchWriter(r, out / f"{r.id}.parquet") for r in program.rules}
    dead = DeadLetterWriter(out / DEAD_LETTER_FILE)
    done = 0
    try:
        if progress:
            progress(0, total)
        live = list(readers)
        while live:
            # Read next from the stream furthest behind, so outputs come roughly in time order.
            reader = min(live, key=lambda r: r.horizon)
            chunk = reader.next_chunk()
            if chunk is None:
                live.remove(reader)
                continue
            name = reader.stream.name
            _emit(writers, session.push(name, chunk))
            horizon = reader.horizon
            if horizon != _END and horizon > NO_WATERMARK:
                _emit(writers, session.advance(name, horizon))
            dead.write(session.take_dead_letters())
            done += chunk.height
            if progress:
                progress(done, total)
        _emit(writers, session.flush())
        dead.write(session.take_dead_letters())
        if progress:
            progress(done, total)  # the end of input flushed too: now it is done
    finally:
        for r in readers:
            r.close()
        for w in writers.values():
            w.close()
        dead.close()
    stats = session.stats(state_size=False)
    summaries = tuple(
        RuleSummary(
            rid,
            int(stats[rid]["matches"]),
            int(stats[rid]["suppressed"]),
            int(stats[rid]["late"]),
            float(stats[rid]["eval_s"]),
            writers[rid].path,
        )
        for rid in writers
    )
    return ReplaySummary(summaries, done, dead.rows, time.perf_counter() - started, dead.path)


def _emit(writers: dict[str, MatchWriter], outs: dict[str, pl.DataFrame]) -> None:
    for rid, frame in outs.items():
        if frame.height:
            writers[rid].add(frame)
