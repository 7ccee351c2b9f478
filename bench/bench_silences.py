"""Silences (LANGUAGE.md §9.4): 100 silences (a matcher on `rule` and one group key,
cron periods) applied to 1M match records.

    .venv/bin/python bench/bench_silences.py        (BENCH_MATCHES=100000 for a quick run)

Ours: `cepdsl.silences.apply_silences` on one rule's records, as the session runs it
after throttle (the `silenced` column and the count).  Peers in the same run: the
reference interpreter's per-record loop (Python: each silence's matcher, then its period
via croniter, as an Alertmanager-style matcher does per alert; a 10k sample,
extrapolated), and the
same result hand-written in Polars (a `join_asof` on each silence's ticks for its period).
Target (issue 17): ≤ 200 ms.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import cepdsl  # noqa: E402
from cepdsl.interpret.silences import silence_of  # noqa: E402
from cepdsl.silences import applicable, apply_silences  # noqa: E402

from common import best_of, report  # noqa: E402

N = int(os.environ.get("BENCH_MATCHES", 1_000_000))
HOSTS = 1_000
START_US = 1_700_000_000_000_000


def main() -> None:
    silences = "\n".join(
        f'silence s{i:03d}\n  match rule == "hot" and host == "host-{i * 7:04d}"\n  every "{i % 60} */2 * * *" for 30m\n'
        for i in range(100)
    )
    text = "stream metrics (ts: timestamp, host: str, cpu: float)\nrule hot from metrics where cpu > 0\n" + silences
    rules = cepdsl.compile(text)
    rule = rules["hot"]
    rng = np.random.default_rng(5)
    t = np.sort(START_US + rng.integers(0, 86_400 * 1_000_000, N))
    records = pl.DataFrame(
        {
            "rule": ["hot"] * N,
            "ts": pl.Series(t).cast(pl.Datetime("us")),
            "severity": ["medium"] * N,
            "host": pl.Series([f"host-{i:04d}" for i in range(HOSTS)]).gather(rng.integers(0, HOSTS, N)),
            "cpu": rng.uniform(0, 100, N),
        }
    )
    sils = applicable(rule, rules.program.silences)
    apply_silences(records, sils, rule)  # croniter ticks cached, as in a running session
    ours_s, (out, count) = best_of(lambda: apply_silences(records, sils, rule))

    def hand() -> pl.Series:
        name = pl.lit(None, dtype=pl.String)
        for s in reversed(sils):  # first by name wins: apply in reverse
            host = s.match.right.right.value  # type: ignore[union-attr]
            name = pl.when((pl.col("host") == host) & pl.col("__active_" + s.name)).then(pl.lit(s.name)).otherwise(name)
        return name

    def hand_run() -> pl.DataFrame:
        frame = records.with_columns(pl.col("ts").dt.epoch("us").alias("__ts"))
        from cepdsl.silences import cron_ticks

        actives = []
        for s in sils:
            ticks = cron_ticks(s.cron, int(t.min()) - s.duration_us, int(t.max()))
            tick_frame = pl.DataFrame({"__tick": ticks}).with_columns(pl.col("__tick").alias("__ts"))
            last = frame.select("__ts").join_asof(tick_frame, on="__ts")["__tick"]
            actives.append(((frame["__ts"] - last) < s.duration_us).fill_null(False).alias("__active_" + s.name))
        return frame.with_columns(actives).select(hand().alias("silenced"))

    hand_s, hand_out = best_of(hand_run, repeat=1)
    assert hand_out["silenced"].equals(out["silenced"])
    sample = records.head(10_000).to_dicts()
    t0 = time.perf_counter()
    for rec in sample:
        rec["ts"] = int((rec["ts"] - __import__("datetime").datetime(1970, 1, 1)).total_seconds() * 1e6)
        silence_of(rule, rec, list(rules.program.silences))
    loop_s = (time.perf_counter() - t0) * (N / len(sample))
    print(f"\n{N:,} match records of rule hot, {len(sils)} silences; {count:,} silenced")
    report(
        "100 silences (rule + host matcher, cron periods) applied to match records",
        N,
        ours_s,
        {
            "polars hand-written (join_asof per silence)": hand_s,
            "reference interpreter, per record (10k sample, extrapolated)": loop_s,
        },
        {"time for 1M matches": "≤ 200 ms"},
    )


if __name__ == "__main__":
    main()
