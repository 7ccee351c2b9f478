"""Micro-batches and the loop that cuts a live source into them.

A live source yields a `Batch` when `max_rows` records have arrived, when the
oldest buffered record has waited `max_delay_s`, and — with nothing buffered —
an empty batch every `max_delay_s` as an idle tick, so the engine can advance
the watermark with the wall clock on a silent stream (LANGUAGE.md §6).
The clock is injected so tests drive time instead of sleeping.
"""

from __future__ import annotations

import asyncio
import time as _time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypedDict

import polars as pl

from cepdsl.plan import StreamPlan
from runtime.dead_letter_writer import concat_dead_letters, empty_dead_letters
from runtime.sources.ndjson import blocks_to_frame
from runtime.sources.records import DEFAULT_MAX_EVENT_BYTES, records_to_frame


@dataclass(frozen=True)
class Batch:
    """Rows typed to `stream`, the rows that could not be used, and where the source stood after them.

    `offsets` is what a checkpoint stores to resume the source after exactly
    these rows (a byte position, the files done, the stream entry ids to ack).
    """

    stream: str
    frame: pl.DataFrame
    dead: pl.DataFrame
    offsets: dict[str, Any] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return self.frame.height == 0 and self.dead.height == 0


class Clock(Protocol):
    def monotonic(self) -> float: ...
    def time(self) -> float: ...
    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    monotonic = staticmethod(_time.monotonic)
    time = staticmethod(_time.time)
    sleep = staticmethod(_time.sleep)


class ManualClock:
    """A clock for tests: `sleep` advances time instantly."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Chunk:
    """What one read produced: records (dicts or `Rejected`) with their raw text, or a
    `block` of `lines` complete JSON lines typed in bulk when the batch is cut
    (`runtime.sources.ndjson`), or rows already typed (`frame`, `dead`)."""

    records: list[Any] = field(default_factory=list)
    raws: list[str | bytes] = field(default_factory=list)
    eof: bool = False
    block: bytes = b""
    lines: int = 0
    frame: pl.DataFrame | None = None
    dead: pl.DataFrame | None = None
    #: Nothing more was waiting at the source when this was read (a short read).
    caught_up: bool = False

    @property
    def rows(self) -> int:
        """How many rows this counts for against `max_rows`."""
        typed = self.frame.height + (self.dead.height if self.dead is not None else 0) if self.frame is not None else 0
        return len(self.records) + self.lines + typed


class SourceOptions(TypedDict, total=False):
    """The batching options of every source (`Source.__init__`): a kind takes them as
    `**options: Unpack[SourceOptions]` and sets its own defaults where they differ."""

    max_rows: int
    max_delay_s: float
    clock: Clock | None
    flush_when_caught_up: bool
    max_event_bytes: int


class Source(ABC):
    """A live source: iterate (or async-iterate) it for `Batch`es; `ack` after a batch is stored."""

    def __init__(
        self,
        stream: StreamPlan,
        *,
        max_rows: int = 10_000,
        max_delay_s: float = 0.5,
        clock: Clock | None = None,
        flush_when_caught_up: bool = True,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    ) -> None:
        if max_rows < 1 or max_delay_s <= 0:
            raise ValueError("max_rows must be ≥ 1 and max_delay_s > 0")
        if max_event_bytes < 1:
            raise ValueError("max_event_bytes must be ≥ 1")
        self.stream = stream
        #: An event (line, entry, poll body) longer than this is a dead letter, never parsed.
        self.max_event_bytes = max_event_bytes
        self.max_rows = max_rows
        self.max_delay_s = max_delay_s
        # Cut a batch as soon as the source has nothing more waiting, instead of holding rows
        # for up to max_delay_s: the engine groups whatever queued up while it was busy into
        # one push (runtime.stream_loop), so batches grow with load and latency stays low.
        self.flush_when_caught_up = flush_when_caught_up
        self.clock: Clock = clock or SystemClock()
        self.closed = False

    # -- to implement

    @abstractmethod
    def _read(self, timeout_s: float, limit: int) -> Chunk:
        """Up to `limit` records, waiting at most `timeout_s` for the first; `eof` when done for good."""

    @abstractmethod
    def offsets(self) -> dict[str, Any]:
        """Where the source stands after the records `_read` has returned so far."""

    # -- shared behaviour

    def ack(self, batch: Batch) -> None:  # noqa: B027 - a no-op by design: most sources have nothing to acknowledge
        """Tell the source `batch`'s results are safely stored (Redis Streams acks then)."""

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Batch]:
        parts: list[Chunk] = []
        rows = 0
        started = self.clock.monotonic()  # of the oldest buffered record, or of the last batch
        while not self.closed:
            waited = self.clock.monotonic() - started
            chunk = self._read(max(self.max_delay_s - waited, 0.0), self.max_rows - rows)
            n = chunk.rows
            if n:
                if not rows:
                    started = self.clock.monotonic()
                parts.append(chunk)
                rows += n
            due = self.clock.monotonic() - started >= self.max_delay_s
            caught_up = self.flush_when_caught_up and chunk.caught_up
            if rows >= self.max_rows or due or ((chunk.eof or caught_up) and rows):
                yield self._batch_parts(parts)
                parts, rows = [], 0
                started = self.clock.monotonic()
            if chunk.eof:
                return

    async def __aiter__(self) -> AsyncIterator[Batch]:
        # Sources block on files, sockets and sleeps; a worker thread keeps the event loop free.
        it = iter(self)
        done = object()
        while True:
            batch = await asyncio.to_thread(next, it, done)
            if batch is done:
                return
            yield batch  # type: ignore[misc]

    def _batch(self, records: Sequence[Any], raws: Sequence[str | bytes]) -> Batch:
        return self._batch_parts([Chunk(list(records), list(raws))])

    def _batch_parts(self, parts: Sequence[Chunk]) -> Batch:
        """Type what was read, in order: adjacent blocks are parsed as one, adjacent records too."""
        frames: list[pl.DataFrame] = []
        deads: list[pl.DataFrame] = []
        blocks: list[bytes] = []
        records: list[Any] = []
        raws: list[str | bytes] = []

        def flush() -> None:
            if blocks:
                f, d = blocks_to_frame(self.stream, blocks, self.max_event_bytes)
                frames.append(f)
                deads.append(d)
                blocks.clear()
            if records:
                f, d = records_to_frame(self.stream, records, raws)
                frames.append(f)
                deads.append(d)
                records.clear()
                raws.clear()

        for p in parts:
            if p.block:
                if records:
                    flush()
                blocks.append(p.block)
            if p.records:
                if blocks:
                    flush()
                records.extend(p.records)
                raws.extend(p.raws)
            if p.frame is not None:
                flush()
                frames.append(p.frame)
                deads.append(p.dead if p.dead is not None else empty_dead_letters())
        flush()
        frame = pl.concat(frames) if len(frames) > 1 else frames[0] if frames else pl.DataFrame(schema=self.stream.schema)
        dead = concat_dead_letters(deads) if len(deads) > 1 else deads[0] if deads else empty_dead_letters()
        return self._emit(frame, dead)

    def _emit(self, frame: pl.DataFrame, dead: pl.DataFrame) -> Batch:
        return Batch(self.stream.name, frame, dead, self.offsets())
