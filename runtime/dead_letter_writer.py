"""The dead-letter output: every row the engine could not use, with why.

Malformed events (bad JSON, wrong types, missing time) and late rows end up
here instead of vanishing; `raw` keeps the original text (or the row as JSON)
so nothing is lost.  The schema is defined once, in `cepdsl.engine.dead_letter_rows`
(the embedding API writes the same thing without importing the runtime); this
module adds the file the runtime writes it to.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from cepdsl.engine.dead_letter_rows import (
    DEAD_LETTER_SCHEMA,
    concat_dead_letters,
    dead_letters,
    empty_dead_letters,
    rows_as_dead_letters,
)

__all__ = [
    "DEAD_LETTER_SCHEMA",
    "DeadLetterWriter",
    "concat_dead_letters",
    "dead_letters",
    "empty_dead_letters",
    "rows_as_dead_letters",
]


class DeadLetterWriter:
    """Appends dead letters to one Parquet file as they come (never held whole);
    `close` always leaves a readable file, empty with the right columns if need be."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.rows = 0
        self._schema = empty_dead_letters().to_arrow().schema
        self._writer: pq.ParquetWriter | None = None
        self._closed = False

    def write(self, frame: pl.DataFrame) -> None:
        if frame.height == 0:
            return
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(self.path, self._schema)
        self._writer.write_table(frame.select(DEAD_LETTER_SCHEMA.keys()).to_arrow().cast(self._schema))
        self.rows += frame.height

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.Table.from_batches([], schema=self._schema), self.path)
        else:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> DeadLetterWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
