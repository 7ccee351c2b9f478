"""Rows in, records out: the only place the interpreter touches Polars.

A row is a dict of the stream's declared fields (timestamps as int µs since the
epoch, UTC) plus two bookkeeping keys: `TIME` (the event time, int µs) and `SEQ`
(the row's position in the input frame, which breaks ties in time).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from cepdsl.interpret.values import is_nan
from cepdsl.plan import RulePlan, StreamPlan
from cepdsl.types import TIME_UNIT, Type

Row = dict[str, Any]

# The executors' frames carry the same two bookkeeping columns (`cepdsl.executor`); the
# names are written again here on purpose: the oracle shares no code with what it checks.
#: A row's position in its input frame (ties in time are broken by it).
SEQ = "__seq"
#: A row's event time, int µs since the epoch (UTC), whatever the time field is called.
TIME = "__t"


@dataclass(frozen=True)
class StreamRows:
    """One stream, replay-ordered."""

    rows: list[Row]  # time not null, sorted by (TIME, SEQ); all rows when the stream has no time field
    first_ts: int | None  # smallest event time, before `where`
    max_ts: int | None  # largest event time, before `where`


def _declared_column(frame: pl.DataFrame, name: str, stream: str) -> pl.Expr:
    """The column for a declared field: flattened (`data.avg`) or inside a struct column `data`."""
    if name in frame.columns:
        return pl.col(name)
    head, *rest = name.split(".")
    if rest and head in frame.columns:
        expr = pl.col(head)
        for part in rest:
            expr = expr.struct.field(part)
        return expr.alias(name)
    raise ValueError(f"stream {stream}: declared field {name!r} is missing from the data")


def _engine_column(expr: pl.Expr, name: str, t: Type, dtype: pl.DataType, schema_dtype: pl.DataType) -> pl.Expr:
    if t is Type.TIMESTAMP:
        if isinstance(schema_dtype, pl.Datetime) and schema_dtype.time_zone is not None:
            expr = expr.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        return expr.cast(pl.Datetime(TIME_UNIT)).dt.epoch(TIME_UNIT).alias(name)
    return expr.cast(dtype).alias(name)


def read_stream(stream: StreamPlan, frame: pl.DataFrame | None) -> StreamRows:
    """Declared fields of `frame` as rows in replay order (§6): by event time,
    ties in input order, rows with a null time dropped."""
    if frame is None:
        frame = pl.DataFrame(schema=stream.schema)
    exprs = [_declared_column(frame, f.name, stream.name) for f in stream.fields]
    raw = frame.select(exprs)
    typed = raw.select(_engine_column(pl.col(f.name), f.name, f.type, f.dtype, raw.schema[f.name]) for f in stream.fields)
    rows: list[Row] = typed.to_dicts()
    for i, row in enumerate(rows):
        row[SEQ] = i
        row[TIME] = row[stream.time_field] if stream.time_field else None
    if stream.time_field is None:
        return StreamRows(rows, None, None)
    timed = sorted((r for r in rows if r[TIME] is not None), key=lambda r: (r[TIME], r[SEQ]))
    if not timed:
        return StreamRows([], None, None)
    return StreamRows(timed, timed[0][TIME], timed[-1][TIME])


# --------------------------------------------------------------------------- group keys


class _NaNKey:
    """Stands for every NaN in a group key, so all NaNs fall in one group."""

    def __repr__(self) -> str:
        return "NaN"


_NAN = _NaNKey()


def group_key(row: Mapping[str, Any], keys: Sequence[str]) -> tuple[Any, ...]:
    """Hashable group identity: nulls form one group (SQL GROUP BY), so do NaNs."""
    return tuple(_NAN if is_nan(row[k]) else row[k] for k in keys)


def group_order(key: tuple[Any, ...]) -> tuple[tuple[int, Any], ...]:
    """Sort order of group keys: nulls first, then values, NaN last (Polars' default sort)."""
    return tuple((0, 0) if v is None else (2, 0) if v is _NAN else (1, v) for v in key)


def partition(rows: Iterable[Row], keys: Sequence[str]) -> dict[tuple[Any, ...], list[Row]]:
    """Rows per group, keeping their order; groups in order of first appearance."""
    groups: dict[tuple[Any, ...], list[Row]] = {}
    for row in rows:
        groups.setdefault(group_key(row, keys), []).append(row)
    return groups


# --------------------------------------------------------------------------- records out


@dataclass(frozen=True)
class Match:
    """One match before throttling.

    `order` sorts a rule's matches (§ ordering in docs/semantics.md): it starts
    with `ts`; `key` is the group key the throttle works on.
    """

    order: tuple[Any, ...]
    key: tuple[Any, ...]
    record: dict[str, Any]

    @property
    def ts(self) -> int:
        return self.record["ts"]


def build_frame(rule: RulePlan, records: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    """Match records (timestamps as int µs) → a frame with exactly `rule.output`.

    Written apart from the executors' `finalize` on purpose (the oracle shapes its own
    records): one Series per output column, built from Python values and cast once."""
    if not records:
        return rule.empty_output()
    constants = {"rule": rule.id, "severity": rule.severity}
    columns = []
    for f in rule.output:
        if f.name in constants:
            series = pl.Series(f.name, [constants[f.name]] * len(records), dtype=pl.String)
        else:
            values = [rec.get(f.name) for rec in records]
            if f.type is Type.FLOAT:
                values = [None if v is None else float(v) for v in values]
            series = pl.Series(f.name, values, dtype=pl.Int64() if f.type is Type.TIMESTAMP else f.dtype, strict=True)
        columns.append(series if series.dtype == f.dtype else series.cast(f.dtype))
    return pl.DataFrame(columns)
