"""Turning whatever frame a user hands us into a stream's engine frame.

Accepted: Polars, Arrow (`pa.Table` / `pa.RecordBatch`) and pandas frames.
The result holds exactly the declared fields, in declaration order, with the
engine dtypes (`cepdsl.types.polars_dtype`): dotted fields are taken from a
column of that name or from nested struct columns; timestamps of any unit are
brought to naive UTC microseconds (naive input is taken as UTC, tz-aware input
is converted to UTC).  Extra columns are ignored.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from cepdsl.plan import StreamPlan
from cepdsl.types import TIME_UNIT, Type


class FrameError(ValueError):
    """The data does not fit the declared stream (missing field, incompatible type)."""


def to_polars(frame: Any) -> pl.DataFrame:
    """Polars, Arrow or pandas in; a Polars frame out (zero-copy where the library allows)."""
    if isinstance(frame, pl.DataFrame):
        return frame
    if isinstance(frame, pl.LazyFrame):
        return frame.collect()
    module = type(frame).__module__.split(".")[0]
    if module == "pyarrow":
        import pyarrow as pa

        if isinstance(frame, pa.RecordBatch):
            frame = pa.Table.from_batches([frame])
        out = pl.from_arrow(frame)
        if isinstance(out, pl.Series):
            out = out.to_frame()
        return out
    if module == "pandas":
        return pl.from_pandas(frame)
    if isinstance(frame, (list, dict)):
        return pl.DataFrame(frame)
    raise TypeError(f"expected a Polars, Arrow or pandas frame, got {type(frame).__name__}")


def _locate(frame: pl.DataFrame, name: str) -> pl.Expr | None:
    """The column holding field `name`: the column itself, or a path through struct columns."""
    if name in frame.columns:
        return pl.col(name)
    parts = name.split(".")
    # Try every split point: `a.b.c` may be column `a.b` with struct field `c`, etc.
    for i in range(len(parts) - 1, 0, -1):
        head = ".".join(parts[:i])
        if head not in frame.columns:
            continue
        dtype = frame.schema[head]
        expr = pl.col(head)
        ok = True
        for part in parts[i:]:
            if not isinstance(dtype, pl.Struct):
                ok = False
                break
            fields = {f.name: f.dtype for f in dtype.fields}
            if part not in fields:
                ok = False
                break
            expr = expr.struct.field(part)
            dtype = fields[part]
        if ok:
            return expr
    return None


def _dtype_of(frame: pl.DataFrame, expr: pl.Expr) -> pl.DataType:
    return frame.lazy().select(expr).collect_schema().dtypes()[0]


def _time_expr(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is not None:
            expr = expr.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        return expr.cast(pl.Datetime(TIME_UNIT))
    if isinstance(dtype, pl.Date):
        return expr.cast(pl.Datetime(TIME_UNIT))
    if dtype == pl.String:
        # RFC 3339 text (offsets honoured); naive text is UTC.
        return expr.str.to_datetime(time_unit=TIME_UNIT, time_zone="UTC").dt.replace_time_zone(None)
    if dtype == pl.Null:
        return expr.cast(pl.Datetime(TIME_UNIT))
    raise FrameError(f"expected a timestamp, got {dtype}")


def _fits(dtype: pl.DataType, engine: pl.DataType) -> bool:
    """`dtype` can stand for the engine dtype as is.  Categorical/Enum stand for String:
    `where` compares their codes (~40x faster than String equality) and the engine
    decodes them to String for executors and match records (backends.polars.rowsets)."""
    return dtype == engine or (engine == pl.String and isinstance(dtype, (pl.Categorical, pl.Enum)))


def conform(stream: StreamPlan, frame: Any, source: str = "input") -> pl.DataFrame:
    """The declared fields of `frame` with engine dtypes, or FrameError naming the field."""
    df = to_polars(frame)
    schema = stream.schema
    # `df.schema` builds a new Schema on every call, and with it every Enum's categories:
    # read once (a 100k-value Enum key cost ~0.2 s per column read per push).
    have = df.schema
    if list(have) == list(schema) and all(_fits(have[c], dt) for c, dt in schema.items()):
        return df  # already an engine frame: the common streaming case costs nothing
    exprs: list[pl.Expr] = []
    for f in stream.fields:
        expr = _locate(df, f.name)
        if expr is None:
            raise FrameError(f"stream {stream.name}: declared field `{f.name}` is missing from {source}")
        dtype = _dtype_of(df, expr)
        try:
            if f.type is Type.TIMESTAMP:
                expr = _time_expr(expr, dtype)
            elif dtype != f.dtype:
                if f.type is Type.STR and dtype not in (pl.String, pl.Null, pl.Categorical, pl.Enum):
                    raise FrameError(f"expected str, got {dtype}")
                if _fits(dtype, f.dtype):
                    exprs.append(expr.alias(f.name))
                    continue
                if f.type in (Type.INT, Type.FLOAT, Type.BOOL) and dtype == pl.String:
                    raise FrameError(f"expected {f.type}, got {dtype}")
                expr = expr.cast(f.dtype)
        except FrameError as e:
            raise FrameError(f"stream {stream.name}: field `{f.name}` in {source}: {e}") from None
        exprs.append(expr.alias(f.name))
    try:
        return df.select(exprs)
    except pl.exceptions.PolarsError as e:
        raise FrameError(f"stream {stream.name}: {source} does not fit the declared types: {e}") from None
