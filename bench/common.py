"""Shared benchmark data: a metrics stream generated in memory (seeded, so every run
and every peer sees the same rows), plus timing and reporting helpers, and `record`, which
hands a headline figure to bench/run_all.py for its comparison with the last recorded run."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from cepdsl.executor import SEQ, TIME

N_EVENTS = int(os.environ.get("BENCH_EVENTS", 10_000_000))
N_HOSTS = 1_000
START_US = 1_700_000_000_000_000  # 2023-11-14 22:13:20 UTC
SPAN_US = 10_000 * 1_000_000  # 10,000 s: ~1,000 events/s

STREAM = """
stream metrics (ts: timestamp, host: str, cpu: float, memory: float,
                status: str, latency_ms: float, event_type: str)
"""

STATUS = ["healthy", "degraded", "down"]
EVENT_TYPES = ["metric", "heartbeat", "log"]


def metrics(n: int = N_EVENTS, hosts: int = N_HOSTS, seed: int = 7, categorical: bool = False) -> pl.DataFrame:
    """`n` events sorted by time, with the engine's SEQ and TIME columns added.
    With `categorical`, the low-cardinality string columns are Enum-encoded (same values)."""
    rng = np.random.default_rng(seed)
    t = np.sort(START_US + rng.integers(0, SPAN_US, n, dtype=np.int64))
    # Strings by gather from a small Series: numpy string arrays take ~20 s at 10M rows.
    host_names = pl.Series([f"host-{i:04d}" for i in range(hosts)])
    df = pl.DataFrame(
        {
            "ts": pl.Series(t, dtype=pl.Int64).cast(pl.Datetime("us")),
            "host": host_names.gather(rng.integers(0, hosts, n)),
            "cpu": rng.uniform(0, 100, n),
            "memory": rng.uniform(0, 100, n),
            "status": pl.Series(STATUS).gather(rng.choice(3, n, p=[0.8, 0.15, 0.05])),
            "latency_ms": rng.exponential(100, n),
            "event_type": pl.Series(EVENT_TYPES).gather(rng.choice(3, n, p=[0.7, 0.2, 0.1])),
        }
    )
    if categorical:
        df = df.with_columns(
            pl.col("status").cast(pl.Enum(STATUS)),
            pl.col("event_type").cast(pl.Enum(EVENT_TYPES)),
        )
    return df.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias(SEQ), pl.Series(TIME, t))


def events(n: int = N_EVENTS, categorical: bool = False) -> pl.DataFrame:
    """What a user hands the engine: the declared fields only (the engine adds SEQ/TIME)."""
    return metrics(n, categorical=categorical).drop(SEQ, TIME)


def engine_run(rules: Any, df: pl.DataFrame, batches: int = 1) -> dict[str, pl.DataFrame]:
    """The user's path: a `Session` (streaming, watermark from the data), `push` of the
    frame in `batches` micro-batches, then `flush`; every rule's matches."""
    session = rules.session()
    outs: dict[str, list[pl.DataFrame]] = {}
    step = -(-df.height // batches)
    for i in range(0, df.height, step):
        for rid, f in session.push("metrics", df.slice(i, step)).items():
            outs.setdefault(rid, []).append(f)
    for rid, f in session.flush().items():
        outs.setdefault(rid, []).append(f)
    return {rid: fs[0] if len(fs) == 1 else pl.concat([f for f in fs if f.height] or fs[:1]) for rid, fs in outs.items()}


def best_of(fn: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    """Best wall time in seconds over `repeat` runs, and the last result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def describe(df: pl.DataFrame) -> str:
    cols = ", ".join(f"{c}: {t}" for c, t in df.schema.items())
    return f"{df.height:,} events, {df.estimated_size('mb'):.0f} MB in memory; columns: {cols}"


def report(
    title: str,
    n: int,
    ours_s: float,
    peers: dict[str, float],
    targets: dict[str, str] | None = None,
    record_as: tuple[str, str] | None = None,
) -> None:
    """Our figure, each peer's from the same run, and the ratios (> 1: we are faster).
    With `record_as=(bench, case)`, our rate and each ratio are also `record`ed."""
    print(f"\n== {title}")
    print(f"  ours: {ours_s * 1e3:9.1f} ms  {n / ours_s / 1e6:9.1f} M events/s")
    for name, s in peers.items():
        print(f"  {name:<34} {s * 1e3:9.1f} ms  {n / s / 1e6:9.1f} M events/s   ours is {s / ours_s:7.2f}x")
    for what, goal in (targets or {}).items():
        print(f"  target {what}: {goal}")
    if record_as:
        bench, case = record_as
        record(bench, case, n / ours_s / 1e6, "M ev/s")
        for name, s in peers.items():
            record(bench, f"{case} / {name}", s / ours_s, "x")


def mrows(n: int) -> str:
    """A data size for a recorded case's name: "10M rows", "200k rows"."""
    return f"{n / 1e6:g}M rows" if n >= 1_000_000 else f"{n / 1e3:g}k rows"


def record(bench: str, case: str, value: float, unit: str, better: str = "higher") -> None:
    """Append one headline figure, as a JSON line, to the file named by $BENCH_RECORD
    (bench/run_all.py sets it for each bench it runs and compares the figures with the last
    recorded run); without $BENCH_RECORD, nothing. `bench` is the script's name without
    .py, `case` names the figure within it (unique per bench; put the data size in it when
    it depends on arguments), `better` says which way is good: "higher" for rates and
    ratios to a peer (peer time / ours), "lower" for times and memory. Only our own figures
    and ratios are recorded: a peer's figure regressing is not ours to flag. The 1-minute
    load average goes with each figure: one measured under much more load is not compared."""
    if better not in ("higher", "lower"):
        raise ValueError(f"better must be 'higher' or 'lower', not {better!r}")
    path = os.environ.get("BENCH_RECORD")
    if not path or not math.isfinite(value):  # a figure that could not be taken shows as missing
        return
    line = {
        "bench": bench,
        "case": case,
        "value": float(f"{value:.6g}"),
        "unit": unit,
        "better": better,
        "load": round(os.getloadavg()[0], 2),
    }
    with open(path, "a", encoding="utf-8") as f:  # one short write per line: appends from children don't interleave
        f.write(json.dumps(line) + "\n")
