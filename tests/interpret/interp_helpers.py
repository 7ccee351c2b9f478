"""Shared helpers for the interpreter tests: rules from `.cep` text, events from
seconds after T0, and match records back with times as seconds after T0."""

from __future__ import annotations

import datetime as dt
import functools
import os
from typing import Any

import polars as pl
from hypothesis import settings

from cepdsl.frontend import compile_source
from cepdsl.interpret import InterpretResult, eval_expr, run_detailed
from cepdsl.plan import Program, TExpr, TIsNull

T0 = dt.datetime(2024, 1, 1)  # a Monday, 00:00 UTC
T0_US = (T0 - dt.datetime(1970, 1, 1)) // dt.timedelta(microseconds=1)
S = 1_000_000  # µs per second
M = 60 * S
H = 60 * M

STREAM = "stream m (ts: timestamp, host: str, cpu: float, n: int, status: str)\n"
SCHEMA = {"ts": pl.Datetime("us"), "host": pl.String, "cpu": pl.Float64, "n": pl.Int64, "status": pl.String}


def examples(n: int) -> settings:
    """Hypothesis settings for one test: n examples locally, a third of them under CI
    (set per test, not as a global profile, so other suites are not affected)."""
    return settings(max_examples=max(10, n // 3) if os.environ.get("CI") else n, deadline=None)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


@functools.lru_cache(maxsize=256)
def compile_rules(rules: str, streams: str = STREAM) -> Program:
    # Cached: property tests compile the same rule for every example (plans are immutable).
    return compile_source(streams + rules)


def events(*rows: dict[str, Any], schema: dict[str, pl.DataType] | None = None) -> pl.DataFrame:
    """Rows of stream `m`; `ts` in seconds after T0 (None stays null); absent fields are null."""
    schema = schema or SCHEMA
    data = {name: [r.get(name) for r in rows] for name in schema}
    if "ts" in data:
        data["ts"] = [None if t is None else at(t) for t in data["ts"]]
    return pl.DataFrame(data, schema=schema)


def _seconds(v: Any) -> Any:
    if isinstance(v, dt.datetime):
        s = (v - T0) / dt.timedelta(seconds=1)
        return int(s) if s == int(s) else s
    return v


def records(frame: pl.DataFrame, *columns: str) -> list[dict[str, Any]]:
    """Rows of a match frame as dicts (all or some columns), timestamps as seconds after T0."""
    if columns:
        frame = frame.select(columns)
    return [{k: _seconds(v) for k, v in row.items()} for row in frame.to_dicts()]


def replay(rules: str, frame: pl.DataFrame, streams: str = STREAM, stream: str = "m") -> InterpretResult:
    return run_detailed(compile_rules(rules, streams), {stream: frame})


def matches(rules: str, frame: pl.DataFrame, *columns: str, rule: str | None = None) -> list[dict[str, Any]]:
    """Records of one rule (the only or the named one) for `frame` on stream `m`."""
    program = compile_rules(rules)
    result = run_detailed(program, {"m": frame})
    rid = rule or program.rules[0].id
    return records(result.matches[rid], *columns)


def expr(text: str, streams: str = STREAM) -> TExpr:
    """The typed plan of an expression of any type, via the checker: `where (E) is not null`."""
    program = compile_source(streams + f"rule e from m where ({text}) is not null\n")
    where = program.rules[0].where
    assert isinstance(where, TIsNull)
    return where.operand


def value(text: str, **row: Any) -> Any:
    """Evaluate an expression on one row of stream `m` (unset fields are null)."""
    full = {"ts": None, "host": None, "cpu": None, "n": None, "status": None, **row}
    return eval_expr(expr(text), full)
