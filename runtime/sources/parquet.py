"""Reading finished history from Parquet for `cep replay`.

Each file is scanned lazily with Polars and only the declared columns (and
only the declared children of struct columns) are read: extra columns never
leave the disk. Frames come out in bounded chunks through Polars' streaming
engine (faster and lighter than `pyarrow.ParquetFile.iter_batches` + `from_arrow`:
bench/README.md, "Replay end to end"), so a 100M-row file is never held whole.

Files are checked against the stream before any row is read, so a missing field
or an incompatible column fails fast with the field, the stream and the file.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from cepdsl.plan import FieldPlan, StreamPlan
from cepdsl.types import Type
from runtime.sources.errors import NoInputError, SchemaError


def resolve_paths(spec: str | os.PathLike[str]) -> list[Path]:
    """A Parquet file, a directory of them (recursive, sorted) or a glob → the files, sorted.

    Raises `NoInputError` naming `spec` when nothing matches.
    """
    text = os.fspath(spec)
    path = Path(text).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        found = sorted(p for p in path.rglob("*.parquet") if p.is_file())
        if not found:
            raise NoInputError(f"no Parquet files under directory {text!r}")
        return found
    hits: set[Path] = set()
    for hit in glob.glob(os.path.expanduser(text), recursive=True):
        p = Path(hit)
        if p.is_dir():
            hits.update(q for q in p.rglob("*.parquet") if q.is_file())
        elif p.is_file():
            hits.add(p)
    if not hits:
        raise NoInputError(f"no Parquet files match {text!r}")
    return sorted(hits)


def count_rows(paths: Iterable[Path | str]) -> int:
    """Total rows from the files' footers only (for a progress bar's ETA)."""
    return sum(pq.ParquetFile(p).metadata.num_rows for p in paths)


def iter_parquet(stream: StreamPlan, paths: Iterable[Path | str], batch_rows: int = 1_000_000) -> Iterator[pl.DataFrame]:
    """Frames of at most `batch_rows` rows: the declared fields, in order, with engine dtypes.

    Files are read in the order given; rows keep file order.
    """
    for path in paths:
        batches = scan(stream, path).collect_batches(chunk_size=batch_rows, lazy=True)
        try:
            for frame in batches:
                if frame.height:
                    yield frame
        finally:
            # A consumer that gives up part way must not leave the streaming query running:
            # Polars versions with `stop()` need it called, the others end it when the handle is dropped.
            stop = getattr(batches, "stop", None)
            if stop is not None:
                stop()
            del batches


def scan(stream: StreamPlan, path: Path | str) -> pl.LazyFrame:
    """The lazy query for one file: checked against the stream, projected to the declared fields."""
    return pl.scan_parquet(path).select(plan_columns(stream, path))


def plan_columns(stream: StreamPlan, path: Path | str) -> list[pl.Expr]:
    """One expression per declared field that reads and converts it from `path`'s schema."""
    try:
        schema = pl.read_parquet_schema(path)
    except Exception as e:  # a truncated or foreign file: say which one
        raise SchemaError(f"{path}: not a readable Parquet file ({e})") from e
    return [_field_expr(stream, f, schema, path) for f in stream.fields]


def _field_expr(stream: StreamPlan, f: FieldPlan, schema: pl.Schema, path: Path | str) -> pl.Expr:
    found = _find(schema, f.name)
    if found is None:
        raise SchemaError(f"field '{f.name}' of stream '{stream.name}' is missing from {path} (columns: {', '.join(schema.names())})")
    expr, dtype = found
    if not _compatible(f.type, dtype):
        raise SchemaError(f"field '{f.name}' of stream '{stream.name}' in {path}: found {dtype}, expected {f.type} ({f.dtype})")
    if f.type is Type.TIMESTAMP and isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
        expr = expr.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    return expr.cast(f.dtype).alias(f.name)


def _find(schema: pl.Schema, name: str) -> tuple[pl.Expr, pl.DataType] | None:
    """A flat column named `name` (dots and all), else the path through struct columns."""
    if name in schema:
        return pl.col(name), schema[name]
    parts = name.split(".")
    if len(parts) == 1 or parts[0] not in schema:
        return None
    expr, dtype = pl.col(parts[0]), schema[parts[0]]
    for part in parts[1:]:
        if not isinstance(dtype, pl.Struct):
            return None
        child = next((fld for fld in dtype.fields if fld.name == part), None)
        if child is None:
            return None
        expr, dtype = expr.struct.field(part), child.dtype
    return expr, dtype


def _compatible(t: Type, dtype: pl.DataType) -> bool:
    if isinstance(dtype, pl.Null):
        return True
    if t is Type.INT:
        return dtype.is_integer()
    if t is Type.FLOAT:
        return dtype.is_float() or dtype.is_integer() or dtype.is_decimal()
    if t is Type.STR:
        return isinstance(dtype, (pl.String, pl.Categorical, pl.Enum))
    if t is Type.BOOL:
        return isinstance(dtype, pl.Boolean)
    if t is Type.TIMESTAMP:
        return isinstance(dtype, (pl.Datetime, pl.Date))
    return False
