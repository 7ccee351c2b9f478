"""Filter rules: one 5-condition rule, then 1…1000 rules on one stream in one pass.

    .venv/bin/python bench/bench_filters.py        (BENCH_EVENTS=1000000 for a quick run)

Ours = what users run: `cepdsl.compile(text).session()`, `push` of the frame, `flush`
(conversion, SEQ/TIME, watermark, reorder buffer, one-pass `where`, match records).
Peers, measured in the same run on the same frame: a hand-written Polars `df.filter`,
and the seed's per-event Python loop over nested dict conditions (measured on a
100k-event sample and extrapolated linearly; the loop is O(n)).  Both string dtypes
are measured: plain String columns, and status/event_type as Enum (the engine keeps
dictionary-encoded columns for `where`, and so does the hand-written filter).
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import cepdsl  # noqa: E402

from common import STREAM, best_of, describe, engine_run, events, mrows, record, report  # noqa: E402
from peers import seed_loop  # noqa: E402

BENCH = "bench_filters"
WHERE = '(cpu > 80 and memory > 70 and not (status == "healthy")) or (latency_ms > 500 and event_type == "metric")'
HAND = ((pl.col("cpu") > 80) & (pl.col("memory") > 70) & ~(pl.col("status") == "healthy")) | (
    (pl.col("latency_ms") > 500) & (pl.col("event_type") == "metric")
)


def one_rule(df: pl.DataFrame, label: str) -> None:
    rules = cepdsl.compile(STREAM + f"rule hot from metrics where {WHERE}")
    n = df.height
    ours_s, out = best_of(lambda: engine_run(rules, df)["hot"])
    hand_s, hand_out = best_of(lambda: df.filter(HAND))
    assert hand_out.height == out.height
    assert out["cpu"].equals(hand_out["cpu"])  # same rows, same order
    peers = {"polars hand-written df.filter": hand_s}
    if label == "String":
        sample = df.head(100_000).to_dicts()
        t0 = time.perf_counter()
        seed_out = seed_loop.run(sample)
        peers["seed per-event loop (100k sample, extrapolated)"] = (time.perf_counter() - t0) * (n / len(sample))
        assert len(seed_out) == df.head(100_000).filter(HAND).height
    print(f"\nrule: where {WHERE}  ({out.height:,} matches, {out.height / n:.2%})")
    report(
        f"5-condition filter, engine push+flush → match records ({label} columns)",
        n,
        ours_s,
        peers,
        {"events/s": "≥ 200M", "vs df.filter": "≥ 1.0x", "vs seed loop": "≥ 1000x"},
        record_as=(BENCH, f"5-condition filter, {label} columns ({mrows(n)})"),
    )


def rule_set(count: int) -> str:
    rng = random.Random(count)
    rules = []
    for i in range(count):
        # Rules built from a few templates with varied thresholds, as real rule sets are:
        # shared sub-expressions (string tests) let Polars' CSE evaluate them once.
        c, m, lat = rng.choice([90, 95, 99]), rng.choice([80, 90, 95]), rng.choice([300, 500, 800])
        status = rng.choice(["healthy", "down"])
        rules.append(
            f"rule r{i} from metrics where (cpu > {c} and memory > {m} and not (status == \"{status}\"))"
            f" or (latency_ms > {lat} and event_type == \"metric\")"
        )
    return STREAM + "\n".join(rules)


def many_rules(df: pl.DataFrame, count: int) -> float:
    t0 = time.perf_counter()
    rules = cepdsl.compile(rule_set(count))
    compile_s = time.perf_counter() - t0
    secs, outs = best_of(lambda: engine_run(rules, df), repeat=1 if count >= 1000 else 2)
    total = sum(f.height for f in outs.values())
    print(
        f"  {count:5d} rules: {secs * 1e3:9.1f} ms  {df.height / secs / 1e6:8.2f} M events/s"
        f"  ({total:,} matches; compile {compile_s * 1e3:.0f} ms)"
    )
    record(BENCH, f"{count} filter rules, one pass ({mrows(df.height)})", df.height / secs / 1e6, "M ev/s")
    return secs


def main() -> None:
    for label, categorical in (("String", False), ("Enum", True)):
        df = events(categorical=categorical)
        print("data:", describe(df))
        one_rule(df, label)
        if not categorical:
            print(
                "\n== N filter rules on one stream, one pass (engine push+flush; where for all rules in one select, rows per rule by arg_true gathers)"
            )
            for count in (1, 10, 100, 1000):
                many_rules(df, count)
            print("  target: ≥ 5M events/s at 100 rules")
        del df


if __name__ == "__main__":
    main()
