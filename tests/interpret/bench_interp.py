"""How slow is the oracle? The interpreter against DuckDB and Polars (the peers) on
the same data in the same run. Not collected by pytest; run by hand:

    .venv/bin/python tests/interpret/bench_interp.py [rows]

The interpreter is meant to be obviously right, not fast; the figures tell
test authors how much generated data a differential test can afford.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import duckdb
import numpy as np
import polars as pl

from cepdsl.frontend import compile_source
from cepdsl.interpret import run

STREAM = "stream m (ts: timestamp, host: str, cpu: float, n: int, status: str)\n"
FILTER = "rule f from m where cpu > 80 and status != \"ok\"\n"
WINDOW = "rule w from m group by host window tumbling 1m having avg(cpu) > 50 and count() >= 1\n"
PATTERN = 'rule p from m group by host pattern a+ b within 1m define a as cpu > 50, b as cpu <= 50\n'


def data(n: int) -> pl.DataFrame:
    rng = np.random.default_rng(7)
    return pl.DataFrame(
        {
            "ts": (np.int64(1_704_067_200_000_000) + np.sort(rng.integers(0, n * 1_000_000, n))).astype("datetime64[us]"),
            "host": rng.choice(["a", "b", "c", "d"], n),
            "cpu": rng.uniform(0, 100, n),
            "n": rng.integers(0, 10, n),
            "status": rng.choice(["ok", "warn", "down"], n),
        }
    )


def best(fn: Callable[[], object], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main(n: int) -> None:
    frame = data(n)
    con = duckdb.connect()
    con.register("m", frame.to_arrow())
    lazy = frame.lazy()
    cases = {
        "filter": (
            FILTER,
            lambda: con.sql("select * from m where cpu > 80 and status != 'ok' order by ts").fetchall(),
            lambda: lazy.filter((pl.col("cpu") > 80) & (pl.col("status") != "ok")).collect(),
        ),
        "tumbling": (
            WINDOW,
            lambda: con.sql(
                "select host, time_bucket(interval 1 minute, ts) w, avg(cpu), count(*) from m group by all "
                "having avg(cpu) > 50 order by w, host"
            ).fetchall(),
            lambda: (
                lazy.group_by(pl.col("host"), pl.col("ts").dt.truncate("1m"))
                .agg(pl.col("cpu").mean(), pl.len())
                .filter(pl.col("cpu") > 50)
                .collect()
            ),
        ),
        "pattern": (PATTERN, None, None),
    }
    print(f"{n:,} rows; best of 3 (s)")
    print(f"{'case':<10}{'interpret':>11}{'duckdb':>10}{'polars':>10}{'interp/duckdb':>15}{'interp/polars':>15}")
    for name, (rule, duck, pol) in cases.items():
        program = compile_source(STREAM + rule)
        ours = best(lambda: run(program, {"m": frame}), repeat=1 if n > 50_000 else 3)
        d = best(duck) if duck else float("nan")
        p = best(pol) if pol else float("nan")
        print(f"{name:<10}{ours:>11.3f}{d:>10.4f}{p:>10.4f}{ours / d:>15.0f}{ours / p:>15.0f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
