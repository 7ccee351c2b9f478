"""A directory watched for new Parquet files; each file is read once.

The directory is polled (portable, and cheap next to reading Parquet). Files
are taken in name order, so writers that name files by time get time order.
A file whose footer cannot be read yet is assumed to be still being written
and is retried on later polls; if it stays unreadable and unchanged for
`settle_s` it becomes a dead letter. Writers should write to a temporary name
(`.x.parquet`, `_x.parquet`, `x.parquet.tmp` are ignored) and rename.

Offsets: `{"done": [names...], "file": name, "rows": n}` — the files finished
and, for the file being read, the rows already handed out, so a restart skips
them. Batches never span two files.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Unpack

import polars as pl

from cepdsl.plan import StreamPlan
from runtime.dead_letter_writer import dead_letters, empty_dead_letters
from runtime.sources.batch import Batch, Chunk, Source, SourceOptions
from runtime.sources.errors import SchemaError
from runtime.sources.parquet import iter_parquet, plan_columns
from runtime.sources.records import OVERSIZE_PREVIEW_BYTES, oversize, oversize_raw

log = logging.getLogger(__name__)


class ParquetDirSource(Source):
    def __init__(
        self,
        stream: StreamPlan,
        directory: str | os.PathLike[str],
        *,
        poll_s: float = 1.0,
        settle_s: float = 5.0,
        start_offsets: dict[str, Any] | None = None,
        **options: Unpack[SourceOptions],
    ) -> None:
        options.setdefault("max_rows", 100_000)
        options.setdefault("max_delay_s", 1.0)
        super().__init__(stream, **options)
        self.directory = Path(directory)
        self.poll_s = poll_s
        self.settle_s = settle_s
        start = start_offsets or {}
        self.done: set[str] = set(start.get("done", ()))
        self._current: str | None = start.get("file")
        self._rows = int(start.get("rows", 0)) if self._current else 0
        self._unreadable: dict[str, tuple[int, float]] = {}  # name → (size, first seen unreadable)
        self.last_error: str | None = None  # the directory is missing (health shows it)
        self.errors = 0

    @property
    def unavailable(self) -> bool:
        return self.last_error is not None

    def offsets(self) -> dict[str, Any]:
        return {"done": sorted(self.done), "file": self._current, "rows": self._rows}

    def _read(self, timeout_s: float, limit: int) -> Chunk:  # pragma: no cover - frames come whole
        raise NotImplementedError("ParquetDirSource yields frames, not records")

    def __iter__(self) -> Iterator[Batch]:
        last = self.clock.monotonic()
        while not self.closed:
            progressed = False
            for name in self._ready_files():
                for batch in self._read_file(name):
                    progressed = True
                    yield batch
                    last = self.clock.monotonic()
                if self.closed:
                    return
            if not progressed:
                idle = self.clock.monotonic() - last
                if idle >= self.max_delay_s:
                    yield self._batch([], [])
                    last = self.clock.monotonic()
                else:
                    self.clock.sleep(min(self.poll_s, self.max_delay_s - idle))

    def _ready_files(self) -> list[str]:
        try:
            names = sorted(
                e.name
                for e in os.scandir(self.directory)
                if e.is_file() and e.name.endswith(".parquet") and e.name[0] not in "._" and e.name not in self.done
            )
        except (FileNotFoundError, NotADirectoryError):
            if self.last_error is None:  # said once, in the log and in health, not waited on in silence
                self.errors += 1
                self.last_error = f"{self.directory}: no such directory (waiting for it to appear)"
                log.error("source %s: %s", self.stream.name, self.last_error)
            return []
        if self.last_error is not None:
            log.warning("source %s: %s appeared; reading it", self.stream.name, self.directory)
            self.last_error = None
        if self._current in names:  # a file interrupted by a restart goes first
            names.remove(self._current)
            names.insert(0, self._current)
        return names

    def _read_file(self, name: str) -> Iterator[Batch]:
        path = self.directory / name
        try:
            plan_columns(self.stream, path)
        except SchemaError as e:
            if "not a readable Parquet file" in str(e) and not self._settled(name, path):
                return  # probably still being written: look again next poll
            yield self._finish(name, dead_letters(self.stream.name, [str(e)], [str(path)]))
            return
        skip = self._rows if name == self._current else 0
        self._current, self._rows = name, skip
        frames = iter_parquet(self.stream, [path], batch_rows=self.max_rows)
        seen = 0
        pending: pl.DataFrame | None = None
        for frame in frames:
            if seen + frame.height <= skip:
                seen += frame.height
                continue
            if seen < skip:
                frame = frame.slice(skip - seen)
            seen = skip = 0  # counting is only needed up to the resume point
            # One frame of look-ahead so the file's last batch carries "done" in its offsets.
            if pending is not None:
                self._rows += pending.height
                yield Batch(self.stream.name, *self._within_limit(pending), self.offsets())
            pending = frame
        if pending is None:
            yield self._finish(name, empty_dead_letters())
            return
        self.done.add(name)
        self._current, self._rows = None, 0
        yield Batch(self.stream.name, *self._within_limit(pending), self.offsets())

    def _within_limit(self, frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Rows whose text fields together pass `max_event_bytes` become dead letters, as an
        oversized JSON line does (a Parquet row has no other size worth bounding)."""
        text = [f.name for f in self.stream.fields if f.dtype == pl.String]
        if not text or frame.height == 0:
            return frame, empty_dead_letters()
        size = pl.sum_horizontal(pl.col(c).str.len_bytes().fill_null(0) for c in text)
        big = frame.select(size > self.max_event_bytes).to_series()
        if not big.any():
            return frame, empty_dead_letters()
        sizes = frame.select(size).to_series().filter(big).to_list()
        reasons = [oversize(n, self.max_event_bytes).reason for n in sizes]
        heads = frame.filter(big).with_columns(pl.col(c).str.slice(0, OVERSIZE_PREVIEW_BYTES) for c in text)
        raws = [oversize_raw(json.dumps(r, default=str), n) for r, n in zip(heads.rows(named=True), sizes)]
        return frame.filter(~big), dead_letters(self.stream.name, reasons, raws)

    def _finish(self, name: str, dead: pl.DataFrame) -> Batch:
        self.done.add(name)
        self._unreadable.pop(name, None)
        self._current, self._rows = None, 0
        return Batch(self.stream.name, pl.DataFrame(schema=self.stream.schema), dead, self.offsets())

    def _settled(self, name: str, path: Path) -> bool:
        """True once an unreadable file has kept its size for `settle_s`."""
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return False
        now = self.clock.monotonic()
        seen = self._unreadable.get(name)
        if seen is None or seen[0] != size:
            self._unreadable[name] = (size, now)
            return False
        return now - seen[1] >= self.settle_s
