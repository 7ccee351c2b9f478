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
from typing import Any, Protocol

import polars as pl

from cepdsl.plan import StreamPlan
from runtime.deadletter import empty_dead_letters
from runtime.sources.records import records_to_frame


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
    """What one read produced: records (dicts or `Rejected`) with their raw text."""

    records: list[Any] = field(default_factory=list)
    raws: list[str | bytes] = field(default_factory=list)
    eof: bool = False


class Source(ABC):
    """A live source: iterate (or async-iterate) it for `Batch`es; `ack` after a batch is stored."""

    def __init__(
        self,
        stream: StreamPlan,
        *,
        max_rows: int = 10_000,
        max_delay_s: float = 0.5,
        clock: Clock | None = None,
    ) -> None:
        if max_rows < 1 or max_delay_s <= 0:
            raise ValueError("max_rows must be ≥ 1 and max_delay_s > 0")
        self.stream = stream
        self.max_rows = max_rows
        self.max_delay_s = max_delay_s
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

    def ack(self, batch: Batch) -> None:
        """Tell the source `batch`'s results are safely stored (Redis Streams acks then)."""

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Batch]:
        records: list[Any] = []
        raws: list[str | bytes] = []
        started = self.clock.monotonic()  # of the oldest buffered record, or of the last batch
        while not self.closed:
            waited = self.clock.monotonic() - started
            chunk = self._read(max(self.max_delay_s - waited, 0.0), self.max_rows - len(records))
            if chunk.records and not records:
                started = self.clock.monotonic()
            records += chunk.records
            raws += chunk.raws
            due = self.clock.monotonic() - started >= self.max_delay_s
            if len(records) >= self.max_rows or due or (chunk.eof and records):
                yield self._batch(records, raws)
                records, raws = [], []
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
        if records:
            frame, dead = records_to_frame(self.stream, records, raws)
        else:
            frame, dead = pl.DataFrame(schema=self.stream.schema), empty_dead_letters()
        return Batch(self.stream.name, frame, dead, self.offsets())
