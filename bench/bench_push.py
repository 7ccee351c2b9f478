"""Fixed cost per push: what one `Session.push` of a small batch costs with issue 7's 10 mixed
rules, per rule. It bounds streaming latency (a batch waits for the one before it) and is a
large share of ingest time at small batches.

    .venv/bin/python bench/bench_push.py                 # batches of 500 and 10,000 rows
    .venv/bin/python bench/bench_push.py --rows 500 --batches 400

Peer from the same run: the same rows pushed as one big batch (the per-row cost without the
fixed part), so fixed ≈ (ms per push) − rows × (per-row cost).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench.bench_streaming import events, program  # noqa: E402
from cepdsl.engine import Session  # noqa: E402


def run(rows: int, batches: int) -> None:
    prog = program()
    df = events(rows * batches)
    warm = Session(prog)
    warm.push("metrics", df.head(2_000))  # Numba cache loads, Polars pools
    big = Session(prog)
    t0 = time.perf_counter()
    big.push("metrics", df)
    per_row_us = (time.perf_counter() - t0) / df.height * 1e6
    s = Session(prog)
    t0 = time.perf_counter()
    for i in range(batches):
        s.push("metrics", df.slice(i * rows, rows))
    per_push_ms = (time.perf_counter() - t0) / batches * 1e3
    print(
        f"\n== {batches} pushes of {rows:,} rows (10 rules): {per_push_ms:.2f} ms per push; "
        f"one push of all {df.height:,} rows: {per_row_us:.3f} µs/row "
        f"→ fixed ≈ {per_push_ms - rows * per_row_us / 1e3:.2f} ms per push"
    )
    stats = s.stats(state_size=False)
    print("  rule                 kind       mean ms/push")
    for rid, row in sorted(stats.items(), key=lambda kv: -kv[1]["mean_eval_ms"]):
        print(f"  {rid:20s} {row['kind']:10s} {row['mean_eval_ms']:8.3f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="*", default=[500, 10_000])
    ap.add_argument("--batches", type=int, default=200)
    a = ap.parse_args()
    for rows in a.rows:
        run(rows, a.batches)


if __name__ == "__main__":
    main()
