"""Lookup tables (LANGUAGE.md §9.2): reading a table file into a checked frame.

A table is a Polars frame of exactly its declared columns, in the engine's dtypes,
with no key repeated (a repeated key is a load error naming the file and the key)
and no row with a null key (it could never be looked up: `==` with null is null).
Files are read relative to the rule file that declares the table. Redis-hash
tables are read by the runtime (it owns the connection) and checked here too,
through `table_from_records`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import polars as pl

from cepdsl.plan import Program, TablePlan
from cepdsl.types import TIME_UNIT, Type

__all__ = ["TableError", "load_file_table", "load_file_tables", "table_file_path", "table_from_records", "check_table_frame"]


class TableError(Exception):
    """A table could not be loaded: the message names the file (or Redis hash) and why."""


def table_file_path(plan: TablePlan) -> Path:
    """Where a file table lives: its path as written, relative to the declaring rule file."""
    p = Path(plan.path)
    return p if p.is_absolute() else Path(plan.base_dir) / p


def _cast(frame: pl.DataFrame, plan: TablePlan, where: str) -> pl.DataFrame:
    """The declared columns in engine dtypes; a value that does not fit names its column."""
    missing = [f.name for f in plan.fields if f.name not in frame.columns]
    if missing:
        raise TableError(f"{where}: table `{plan.name}` has no column `{missing[0]}` (columns: {', '.join(frame.columns) or 'none'})")
    exprs = []
    for f in plan.fields:
        col = pl.col(f.name)
        src = frame.schema[f.name]
        if f.type is Type.TIMESTAMP:
            if src == pl.String:
                col = col.str.to_datetime(time_unit=TIME_UNIT, time_zone="UTC", strict=True).dt.replace_time_zone(None)
            elif isinstance(src, pl.Datetime) and src.time_zone is not None:
                col = col.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
            elif src.is_integer():  # epoch milliseconds, as in JSON input (§3.1)
                col = (col.cast(pl.Int64) * 1000).cast(pl.Datetime(TIME_UNIT))
            exprs.append(col.cast(pl.Datetime(TIME_UNIT)).alias(f.name))
        elif f.type is Type.BOOL and src == pl.String:
            low = col.str.strip_chars().str.to_lowercase()
            exprs.append(
                pl.when(low.is_in(["true", "1", "yes"]))
                .then(True)
                .when(low.is_in(["false", "0", "no"]))
                .then(False)
                .otherwise(None)
                .alias(f.name)
            )
        else:
            if src == pl.String and f.type is not Type.STR:
                col = col.str.strip_chars()
            exprs.append(col.cast(f.dtype, strict=True).alias(f.name))
    try:
        return frame.select(exprs)
    except (pl.exceptions.InvalidOperationError, pl.exceptions.ComputeError) as e:
        bad = _first_bad_column(frame, plan, exprs)
        raise TableError(
            f"{where}: table `{plan.name}`: column `{bad}` has a value that is not a {plan.field(bad).type}: {_first_line(e)}"
        ) from None


def _first_bad_column(frame: pl.DataFrame, plan: TablePlan, exprs: list[pl.Expr]) -> str:
    for f, e in zip(plan.fields, exprs):
        try:
            frame.select(e)
        except Exception:  # noqa: BLE001 - finding which one fails
            return f.name
    return plan.fields[0].name


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def check_table_frame(frame: pl.DataFrame, plan: TablePlan, where: str) -> pl.DataFrame:
    """A frame as the table: declared columns cast, null keys dropped, repeated keys refused."""
    table = _cast(frame, plan, where).filter(pl.col(plan.key).is_not_null())
    if plan.field(plan.key).type is Type.FLOAT:  # type: ignore[union-attr]
        table = table.filter(~pl.col(plan.key).is_nan())
    dup = table.filter(pl.col(plan.key).is_duplicated())
    if dup.height:
        value = dup[plan.key][0]
        raise TableError(f"{where}: key {plan.key} = {value!r} appears more than once in table `{plan.name}`")
    return table


def load_file_table(plan: TablePlan) -> pl.DataFrame:
    """Read a CSV, Parquet or JSON-lines table file (relative to its rule file)."""
    path = table_file_path(plan)
    where = str(path)
    ext = path.suffix.lower()
    try:
        if ext == ".csv":
            frame = pl.read_csv(path, infer_schema=False)
        elif ext == ".parquet":
            frame = pl.read_parquet(path)
        elif ext == ".jsonl":
            frame = _read_jsonl(path, plan)
        else:  # the checker refuses other kinds
            raise TableError(f"{where}: unknown table file kind {ext!r}")
    except TableError:
        raise
    except FileNotFoundError:
        raise TableError(f"{where}: no such file (table `{plan.name}`)") from None
    except (OSError, pl.exceptions.PolarsError, ValueError) as e:
        raise TableError(f"{where}: cannot read table `{plan.name}`: {_first_line(e)}") from None
    return check_table_frame(frame, plan, where)


def _read_jsonl(path: Path, plan: TablePlan) -> pl.DataFrame:
    records = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise TableError(f"{path}:{n}: not a JSON object: {e.msg}") from None
            if not isinstance(obj, dict):
                raise TableError(f"{path}:{n}: not a JSON object")
            records.append(obj)
    return table_from_records(plan, records, str(path), cast=False)


def table_from_records(plan: TablePlan, records: Iterable[Mapping[str, Any]], where: str, cast: bool = True) -> pl.DataFrame:
    """Rows given as dicts (JSON lines, a Redis hash) as a frame of the declared columns:
    every value is read as text first, then cast like a CSV column, so JSON numbers,
    strings and nested values all meet one set of rules."""
    cols: dict[str, list[Any]] = {f.name: [] for f in plan.fields}
    for rec in records:
        for f in plan.fields:
            v = rec.get(f.name)
            if v is None:
                cols[f.name].append(None)
            elif isinstance(v, bool):
                cols[f.name].append("true" if v else "false")
            elif isinstance(v, (dict, list)):
                cols[f.name].append(json.dumps(v))
            elif f.type is Type.TIMESTAMP and isinstance(v, (int, float)):
                t = dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=v)
                cols[f.name].append(t.isoformat())
            else:
                cols[f.name].append(str(v))
    frame = pl.DataFrame(cols, schema={f.name: pl.String for f in plan.fields})
    return check_table_frame(frame, plan, where) if cast else frame


def load_file_tables(program: Program, given: Mapping[str, pl.DataFrame] | None = None) -> dict[str, pl.DataFrame]:
    """Every table the program's rules join: `given` ones checked, file ones read. A
    Redis table must be given (the runtime reads it from --state or --redis)."""
    given = dict(given or {})
    used = {j.table.name: j.table for r in program.rules for j in r.joins}
    out: dict[str, pl.DataFrame] = {}
    for name, plan in used.items():
        if name in given:
            out[name] = check_table_frame(given[name], plan, f"table {name}")
        elif plan.source == "file":
            out[name] = load_file_table(plan)
        else:
            raise TableError(
                f'table `{name}` reads the Redis hash "{plan.path}": pass its rows (the `cep` commands read it from --state or --redis)'
            )
    return out
