"""`join` (§9.2), row by row: each row looks its key up in a dict of the table's rows.

Python's `==` between int and float is numeric (1 == 1.0, same hash), which is the
language's typing of the lookup; a null or NaN key finds nothing (a left join: the
joined fields are null)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import polars as pl

from cepdsl.interpret.rows import StreamRows
from cepdsl.interpret.values import eval_expr
from cepdsl.plan import Program, RulePlan
from cepdsl.types import TIME_UNIT, Type

Lookup = dict[Any, dict[str, Any]]


def table_lookups(program: Program, tables: Mapping[str, pl.DataFrame] | None) -> dict[str, Lookup]:
    """Key → row (timestamps as int µs, like stream rows) of every table a rule joins."""
    from cepdsl.tables import load_file_tables

    if not any(r.joins for r in program.rules):
        return {}
    frames = load_file_tables(program, tables)
    out: dict[str, Lookup] = {}
    for name, frame in frames.items():
        plan = program.table(name)
        typed = frame.select(pl.col(f.name).dt.epoch(TIME_UNIT) if f.type is Type.TIMESTAMP else pl.col(f.name) for f in plan.fields)
        out[name] = {row[plan.key]: row for row in typed.to_dicts()}
    return out


def join_rows(rule: RulePlan, stream: StreamRows, lookups: Mapping[str, Lookup]) -> StreamRows:
    rows = []
    for row in stream.rows:
        row = dict(row)
        for j in rule.joins:
            key = eval_expr(j.on, row)
            if isinstance(key, float) and math.isnan(key):
                key = None
            found = lookups[j.table.name].get(key) if key is not None else None
            for f in j.table.fields:
                row[f"{j.alias}.{f.name}"] = None if found is None else found[f.name]
        rows.append(row)
    return StreamRows(rows, stream.first_ts, stream.max_ts)
