"""The oracle checked against an independent peer: DuckDB runs the same
filters and window aggregates as SQL on generated data, and the interpreter
must agree with it row for row (floats within a relative tolerance)."""

from __future__ import annotations

import math

import duckdb
import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from cepdsl.interpret import run
from tests.interpret.interp_helpers import SCHEMA, T0_US, compile_rules, examples

row = st.fixed_dictionaries(
    {
        "t": st.integers(min_value=-120_000_000, max_value=600_000_000),  # µs around T0, before it too
        "host": st.sampled_from(["a", "b", None]),
        "cpu": st.one_of(st.none(), st.floats(min_value=-100, max_value=100, allow_nan=False)),
        "n": st.one_of(st.none(), st.integers(min_value=-10, max_value=10)),
        "status": st.sampled_from(["up", "down", "x", None]),
    }
)


def frame_of(rows: list[dict]) -> pl.DataFrame:
    data = {
        "ts": [T0_US + r["t"] for r in rows],
        "host": [r["host"] for r in rows],
        "cpu": [r["cpu"] for r in rows],
        "n": [r["n"] for r in rows],
        "status": [r["status"] for r in rows],
    }
    return pl.DataFrame(data, schema={**SCHEMA, "ts": pl.Int64}).with_columns(pl.col("ts").cast(pl.Datetime("us")))


_CON = duckdb.connect(config={"threads": 1})  # one connection (opening costs ~0.1 s); tiny inputs need no threads


def duck(sql: str, frame: pl.DataFrame) -> list[tuple]:
    con = _CON
    con.register("m", frame.with_columns(pl.col("ts").dt.epoch("us").alias("t")).to_arrow())
    return con.sql(sql).fetchall()


def close(a: object, b: object) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is None and b is None
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    return a == b


def assert_rows_agree(ours: list[tuple], theirs: list[tuple]) -> None:
    assert len(ours) == len(theirs), (ours, theirs)
    for x, y in zip(ours, theirs, strict=True):
        assert all(close(a, b) for a, b in zip(x, y, strict=True)), (x, y)


@examples(60)
@given(st.lists(row, max_size=40))
def test_filter_with_nulls_agrees_with_duckdb(rows: list[dict]) -> None:
    cond = 'cpu > 10 and not (n % 3 == 1) or status in ["up", null] or (n / 2 >= 1 and host != "a")'
    sql_cond = "cpu > 10 and not (n % 3 = 1) or status in ('up', null) or (n / 2 >= 1 and host != 'a')"
    frame = frame_of(rows)
    out = run(compile_rules(f"rule f from m where {cond}\n"), {"m": frame})["f"]
    ours = [(r["ts"], r["host"], r["cpu"], r["n"], r["status"]) for r in out.with_columns(pl.col("ts").dt.epoch("us")).to_dicts()]
    theirs = duck(f"select t, host, cpu, n, status from m where {sql_cond} ", frame)
    assert sorted(ours, key=repr) == sorted(theirs, key=repr)


# A `having` that is always true but uses every aggregate, so each lands in the record.
AGGS_CEP = " and ".join(
    f"({a} is null or {a} is not null)"
    for a in ("count()", "count(cpu)", "sum(cpu)", "avg(cpu)", "min(cpu)", "max(n)", "std(cpu)", "percentile(cpu, 90)", "distinct(n)")
)
AGGS_SQL = "count(*), count(cpu), sum(cpu), avg(cpu), min(cpu), max(n), stddev_samp(cpu), quantile_cont(cpu, 0.9), count(distinct n)"
AGG_COLS = ("count", "count_cpu", "sum_cpu", "avg_cpu", "min_cpu", "max_n", "std_cpu", "p90_cpu", "distinct_n")


def _ours(rule: str, frame: pl.DataFrame) -> list[tuple]:
    out = run(compile_rules(rule), {"m": frame})["w"]
    cols = ["host", "window_start", *AGG_COLS]
    out = out.with_columns(pl.col("window_start").dt.epoch("us"))
    return [tuple(r[c] for c in cols) for r in out.to_dicts()]


@examples(60)
@given(st.lists(row, max_size=40))
def test_tumbling_aggregates_agree_with_duckdb(rows: list[dict]) -> None:
    frame = frame_of(rows)
    ours = _ours(f"rule w from m group by host window tumbling 1m having {AGGS_CEP}\n", frame)
    d = 60_000_000
    theirs = duck(
        f"select host, floor(t / {d})::bigint * {d} as ws, {AGGS_SQL} from m group by host, ws "
        "order by ws + {d}, ws, host nulls first".replace("{d}", str(d)),
        frame,
    )
    assert_rows_agree(ours, theirs)


@examples(60)
@given(st.lists(row, max_size=30))
def test_sliding_windows_agree_with_duckdb(rows: list[dict]) -> None:
    # Every window [kS, kS + D) holding a row, enumerated in SQL from the row's time.
    frame = frame_of(rows)
    ours = _ours(f"rule w from m group by host window sliding 3m every 1m having {AGGS_CEP}\n", frame)
    s, d = 60_000_000, 180_000_000
    theirs = duck(
        f"""
        with w as (
          select *, unnest(range(floor((t - {d}) / {s})::bigint + 1, floor(t / {s})::bigint + 1)) * {s} as ws from m
        )
        select host, ws, {AGGS_SQL} from w group by host, ws
        order by ws + {d}, ws, host nulls first
        """,
        frame,
    )
    assert_rows_agree(ours, theirs)
