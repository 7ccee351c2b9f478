"""Shared benchmark data: a metrics stream generated in memory (seeded, so every run
and every peer sees the same rows), plus timing and reporting helpers."""

from __future__ import annotations

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


def report(title: str, n: int, ours_s: float, peers: dict[str, float], targets: dict[str, float] | None = None) -> None:
    """Our figure, each peer's from the same run, and the ratios (> 1: we are faster)."""
    print(f"\n== {title}")
    print(f"  ours: {ours_s * 1e3:9.1f} ms  {n / ours_s / 1e6:9.1f} M events/s")
    for name, s in peers.items():
        print(f"  {name:<34} {s * 1e3:9.1f} ms  {n / s / 1e6:9.1f} M events/s   ours is {s / ours_s:7.2f}x")
    for what, goal in (targets or {}).items():
        print(f"  target {what}: {goal}")
