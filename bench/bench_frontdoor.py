"""Speed through the front door (issue 18): every rule kind as a user runs it, beside the
hand-written peers, at 1k, 10k and 100k keys.

    .venv/bin/python bench/bench_frontdoor.py             # 10M rows, 1k/10k/100k keys, String and Enum
    .venv/bin/python bench/bench_frontdoor.py --quick     # 1M rows
    .venv/bin/python bench/bench_frontdoor.py --keys 10000 --dtypes String --only sliding,pattern
    .venv/bin/python bench/bench_frontdoor.py --only replay   # the `cep replay` process only

Ours = `cepdsl.compile(text).replay({stream: frame})` on an in-memory frame of the declared
fields (conversion, SEQ/TIME, ordering, key coding, kernels and match records included).
Peers, in the same run on the same frame, best of 3 after a warm-up like ours:
* hand-written Polars: `df.filter`, `group_by`, `sort` + `group_by_dynamic`, the pattern and
  absence rewrites of bench_patterns.py and the rolling expressions of bench_anomaly.py
  (those get the engine's time/sequence columns precomputed, outside their timing);
* hand-written single-pass Numba (bench/peers/numba_onepass.py): one loop over the rows
  with per-key arrays, key coding by Polars' categorical cast included; filters gather
  the matching rows (all columns) as ours and `df.filter` return them.
Each row prints both ratios (> 1: ours is faster) and the match counts, which must agree
(a mismatch is printed with `!!`).

The `replay` section runs the `cep replay` process on a Parquet file (bench_replay.py's
generator: 1,000 hosts, 7 columns) with two rules (the 5-condition filter and the sliding
window), beside `pl.read_parquet` of the same file in its own process (the floor); peak
RSS of each process comes from `/usr/bin/time`.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import bench_anomaly as ba  # noqa: E402
import bench_patterns as bp  # noqa: E402
from bench_filters import HAND, WHERE  # noqa: E402

import cepdsl  # noqa: E402
from cepdsl.executor import SEQ, TIME  # noqa: E402

from common import STREAM, metrics, mrows, record  # noqa: E402
from peers import numba_onepass as nop  # noqa: E402

BENCH = "bench_frontdoor"
M_US = 60_000_000
KEYS = (1_000, 10_000, 100_000)
SECTIONS = ("filter2", "filter5", "sliding", "tumbling", "pattern", "absence", "zscore", "ema", "replay")
TARGETS = {  # issue 18's targets, as ratios or M events/s
    "filter2": "≥ 1.0× df.filter",
    "filter5": "≥ 1.0× df.filter",
    "sliding": "≥ 0.5× Numba at 10k/100k",
    "tumbling": "≥ 0.5× Numba at 10k/100k",
    "pattern": "≥ 0.5× Numba at 10k/100k",
    "absence": "≥ 30M ev/s at 10k",
    "zscore": "≥ 30M ev/s at 10k",
    "ema": "≥ 30M ev/s at 10k",
}
RULES = {
    "filter2": STREAM + "rule r from metrics where cpu > 80 and memory > 70",
    "filter5": STREAM + f"rule r from metrics where {WHERE}",
    "sliding": STREAM + "rule r from metrics group by host window sliding 5m every 1m having avg(cpu) > 80",
    "tumbling": STREAM + "rule r from metrics group by host window tumbling 1m having count() > 0",
    "pattern": """stream auth (ts: timestamp, user: str, event_type: str)
rule r from auth group by user pattern fail{3,} ok within 10m
  define fail as event_type == "login_failed", ok as event_type == "login_ok"
""",
    "absence": "stream hb (ts: timestamp, host: str)\nrule r from hb group by host absent for 2m\n",
    "zscore": "stream m (ts: timestamp, host: str, cpu: float)\n"
    "rule r from m group by host anomaly zscore(cpu, threshold = 3.0) baseline 100 warmup 10\n",
    "ema": "stream m (ts: timestamp, host: str, cpu: float)\n"
    "rule r from m group by host anomaly ema(cpu, alpha = 0.3, threshold = 3.0) baseline 100 warmup 10\n",
}
STREAM_OF = {
    "filter2": "metrics",
    "filter5": "metrics",
    "sliding": "metrics",
    "tumbling": "metrics",
    "pattern": "auth",
    "absence": "hb",
    "zscore": "m",
    "ema": "m",
}


def best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def enum_keys(df: pl.DataFrame, cols: list[str]) -> pl.DataFrame:
    """String columns as Enum, categories in sorted order (as a user's schema would list them)."""
    return df.with_columns(pl.col(c).cast(pl.Enum(sorted(df[c].unique().to_list()))) for c in cols)


# --------------------------------------------------------------------------- the frames


_LAST: dict[tuple, pl.DataFrame] = {}


def frame_for(section: str, n: int, keys: int, dtype: str) -> pl.DataFrame:
    """The section's frame with the engine's SEQ/TIME columns (dropped for ours); the last
    one is kept for the next section that uses the same data."""
    kind = {
        "filter2": "metrics",
        "filter5": "metrics",
        "sliding": "metrics",
        "tumbling": "metrics",
        "zscore": "anomaly",
        "ema": "anomaly",
    }.get(section, section)
    if (kind, n, keys, dtype) not in _LAST:
        _LAST.clear()
        _LAST[(kind, n, keys, dtype)] = _make_frame(section, n, keys, dtype)
    return _LAST[(kind, n, keys, dtype)]


def _make_frame(section: str, n: int, keys: int, dtype: str) -> pl.DataFrame:
    if section in ("filter2", "filter5", "sliding", "tumbling"):
        df = metrics(n, hosts=keys, categorical=dtype == "Enum")
        return enum_keys(df, ["host"]) if dtype == "Enum" else df
    if section == "pattern":
        df = bp.auth_events(n, keys)
        return enum_keys(df, ["user", "event_type"]) if dtype == "Enum" else df
    if section == "absence":
        df = bp.heartbeats(n, keys)
    else:
        df = ba.metrics(n, keys)
    return enum_keys(df, ["host"]) if dtype == "Enum" else df


# --------------------------------------------------------------------------- the peers


def code_of(s: pl.Series, value: str) -> int:
    """The code a categorical column gives `value` (-1 when absent), for the Numba filters."""
    if isinstance(s.dtype, pl.Enum):
        cats = s.dtype.categories.to_list()
        return cats.index(value) if value in cats else -1
    return -1


def numba_peer(section: str, ev: pl.DataFrame) -> int:
    """The hand-written single-pass kernel, from the user's frame (codes, times, gathers timed)."""
    if section == "filter2":
        idx = nop.filter2(ev["cpu"].to_numpy(), ev["memory"].to_numpy())
        return ev[idx].height
    if section == "filter5":
        st, ty = ev["status"], ev["event_type"]
        if isinstance(st.dtype, pl.Enum):
            s_codes, healthy = st.to_physical().to_numpy(), code_of(st, "healthy")
            t_codes, metric = ty.to_physical().to_numpy(), code_of(ty, "metric")
        else:  # strings compared once per row by Polars, the rest in the kernel
            s_codes, healthy = (st == "healthy").to_numpy().view(np.uint8), 1
            t_codes, metric = (ty == "metric").to_numpy().view(np.uint8), 1
        idx = nop.filter5(
            ev["cpu"].to_numpy(), ev["memory"].to_numpy(), s_codes, healthy, ev["latency_ms"].to_numpy(), t_codes, metric
        )
        return ev[idx].height
    if section in ("sliding", "tumbling", "absence", "zscore", "ema"):
        key, nk = nop.key_codes(ev["host"])
        t = nop.times(ev["ts"])
        if section == "sliding":
            return nop.sliding_avg(key, t, ev["cpu"].to_numpy(), nk, 5, 80.0)[0].shape[0]
        if section == "tumbling":
            return nop.tumbling_count(key, t, nk)[0].shape[0]
        if section == "absence":
            return nop.absent_for(key, t, nk, bp.TWO_MIN, int(t[-1]))
        if section == "zscore":
            return nop.zscore(key, ev["cpu"].to_numpy(), nk, 100, 10, 3.0).shape[0]
        return nop.ema(key, ev["cpu"].to_numpy(), nk, 0.3, 10, 3.0).shape[0]
    # pattern
    key, nk = nop.key_codes(ev["user"])
    is_ok = (ev["event_type"] == "login_ok").to_numpy()
    return nop.fail3_ok(key, nop.times(ev["ts"]), is_ok, nk, bp.TEN_MIN).shape[0]


def polars_peer(section: str, df: pl.DataFrame) -> tuple[str, int]:
    """(what, match count) of the hand-written Polars way."""
    if section == "filter2":
        return "df.filter", df.drop(SEQ, TIME).filter((pl.col("cpu") > 80) & (pl.col("memory") > 70)).height
    if section == "filter5":
        return "df.filter", df.drop(SEQ, TIME).filter(HAND).height
    if section == "sliding":
        out = (
            df.select("ts", "host", "cpu")
            .sort("ts")
            .group_by_dynamic("ts", every="1m", period="5m", group_by="host")
            .agg(pl.col("cpu").mean().alias("avg_cpu"))
            .filter(pl.col("avg_cpu") > 80)
        )
        return "sort + group_by_dynamic", out.height
    if section == "tumbling":
        return "group_by", df.group_by("host", (pl.col(TIME) // M_US).alias("k")).agg(pl.len()).height
    if section == "pattern":
        return "run ids + join (bench_patterns)", bp.polars_expr(df)
    if section == "absence":
        return "shift().over() (bench_patterns)", bp.absence_polars(df, int(df[TIME][-1]))
    return "rolling/ewm .over() (bench_anomaly)", ba.polars_rolling(section, df)


# --------------------------------------------------------------------------- in memory


def run_section(section: str, n: int, keys: int, dtype: str, repeat: int, rows_out: list[dict]) -> None:
    df = frame_for(section, n, keys, dtype)
    ev = df.drop(SEQ, TIME)
    stream = STREAM_OF[section]
    rules = cepdsl.compile(RULES[section])
    rules.replay({stream: ev.head(10_000)})  # warm-up: kernels compiled or loaded from the cache
    numba_peer(section, ev.head(10_000))
    ours_s, out = best_of(lambda: rules.replay({stream: ev})["r"], repeat)
    nb_s, nb_n = best_of(lambda: numba_peer(section, ev), repeat)
    # group_by_dynamic takes seconds per run at 10M rows: once is enough to place it.
    pl_s, (pl_what, pl_n) = best_of(lambda: polars_peer(section, df), 1 if section == "sliding" else repeat)
    ours_n = out.height
    # group_by_dynamic starts a key's windows at its first row (bench_windows.py): fewer windows.
    pl_ok = pl_n == ours_n or section == "sliding"
    # zscore's peer keeps running sums: a value on the threshold may fall either side.
    nb_ok = nb_n == ours_n or (section == "zscore" and abs(nb_n - ours_n) <= max(2, ours_n // 1000))
    row = {
        "section": section,
        "keys": keys,
        "dtype": dtype,
        "n": n,
        "ours": ours_s,
        "numba": nb_s,
        "polars": pl_s,
        "polars_what": pl_what,
        "ours_n": ours_n,
        "numba_n": nb_n,
        "polars_n": pl_n,
    }
    rows_out.append(row)
    case = f"{section}, {keys:,} keys, {dtype} ({mrows(n)})"
    record(BENCH, case, n / ours_s / 1e6, "M ev/s")
    record(BENCH, f"{case} / hand-written Polars", pl_s / ours_s, "x")
    record(BENCH, f"{case} / hand-written Numba", nb_s / ours_s, "x")
    print(
        f"  {section:<9} {keys:>7,} keys {dtype:<6} ours {ours_s * 1e3:8.1f} ms {n / ours_s / 1e6:7.1f} M ev/s | "
        f"polars {pl_what} {pl_s * 1e3:8.1f} ms ({pl_s / ours_s:5.2f}x) | numba {nb_s * 1e3:8.1f} ms "
        f"({nb_s / ours_s:5.2f}x) | matches {ours_n:,}{'' if pl_ok else f' !! polars {pl_n:,}'}"
        f"{'' if nb_ok else f' !! numba {nb_n:,}'}",
        flush=True,
    )


def table(rows: list[dict]) -> None:
    """The rows as a Markdown table for bench/README.md."""
    print("\n| rule | keys | key dtype | ours | hand-written Polars | ratio | hand-written Numba | ratio | target |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        n = r["n"]
        print(
            f"| {r['section']} | {r['keys']:,} | {r['dtype']} | {n / r['ours'] / 1e6:.1f} M ev/s | "
            f"{r['polars_what']} {n / r['polars'] / 1e6:.1f} M ev/s | {r['polars'] / r['ours']:.2f}× | "
            f"{n / r['numba'] / 1e6:.1f} M ev/s | {r['numba'] / r['ours']:.2f}× | {TARGETS[r['section']]} |"
        )


# --------------------------------------------------------------------------- the `cep replay` process

TWO_RULES = (
    STREAM
    + f"""
rule hot from metrics where {WHERE}

rule busy from metrics group by host window sliding 5m every 1m having avg(cpu) > 80
"""
)

FLOOR = """
import sys, time
import polars as pl
t0 = time.perf_counter()
df = pl.read_parquet(sys.argv[1])
print(f"read {time.perf_counter() - t0:.4f} {df.height}")
"""


def timed_process(cmd: list[str]) -> tuple[float, float, str]:
    """(wall s, peak RSS MB, stdout+stderr) of a child process, by /usr/bin/time."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        t0 = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", tf.name, *cmd], cwd=HERE.parent, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode:
            raise RuntimeError(f"{cmd} failed:\n{proc.stderr[-3000:]}")
        rss_kb = float(tf.read().strip().splitlines()[-1])
    return wall, rss_kb / 1024, proc.stdout + proc.stderr


def bench_replay_process(rows: int, repeat: int) -> None:
    from bench_replay import generate

    path = generate(rows)
    work = Path(tempfile.mkdtemp(prefix="frontdoor-"))
    rules = work / "two.cep"
    rules.write_text(TWO_RULES)
    small = work / "small.parquet"
    pl.read_parquet(path, n_rows=50_000).write_parquet(small)
    cep = [sys.executable, "-m", "runtime.cli", "replay", str(rules), "--no-progress"]
    timed_process([*cep, "--data", f"metrics={small}", "--out", str(work / "warm")])  # kernels into the cache
    floor = min((timed_process([sys.executable, "-c", FLOOR, str(path)]) for _ in range(repeat)), key=lambda r: r[0])
    read_s = float(floor[2].split()[1])
    ours = min(
        (timed_process([*cep, "--data", f"metrics={path}", "--out", str(work / f"out{i}")]) for i in range(repeat)), key=lambda r: r[0]
    )
    m = re.search(r"rows in ([\d.]+)s", ours[2])
    own_s = float(m.group(1)) if m else float("nan")
    print(
        f"\n== `cep replay` of {path.name} ({rows:,} rows, {path.stat().st_size / 1e6:.0f} MB): "
        "5-condition filter + sliding 5m every 1m per host, best of "
        f"{repeat}"
    )
    print(f"  floor: pl.read_parquet {read_s:.3f} s in a process of {floor[0]:.2f} s, peak RSS {floor[1]:.0f} MB")
    print(f"  ours:  `cep replay` process {ours[0]:.2f} s (its own figure {own_s:.2f} s), peak RSS {ours[1]:.0f} MB")
    print(
        f"  speed vs the read floor: {read_s / ours[0]:.2f}x of the process, {read_s / own_s:.2f}x of replay's own "
        "time (target ≥ 0.5x)"
    )
    case = f"`cep replay`, two rules ({mrows(rows)})"
    record(BENCH, f"{case}, process", ours[0], "s", better="lower")
    record(BENCH, f"{case}, replay's own time", own_s, "s", better="lower")
    record(BENCH, f"{case}, peak RSS", ours[1], "MB", better="lower")
    record(BENCH, f"{case} / pl.read_parquet, process", read_s / ours[0], "x")
    print(
        f"\n| `cep replay`, two rules | {rows:,} rows | process {ours[0]:.2f} s (replay {own_s:.2f} s), "
        f"{ours[1]:.0f} MB peak | `pl.read_parquet` {read_s:.3f} s, {floor[1]:.0f} MB peak | "
        f"{read_s / ours[0]:.2f}× ({read_s / own_s:.2f}×) | ≥ 0.5× |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1M rows (default 10M, or BENCH_EVENTS)")
    ap.add_argument("--rows", type=int, default=None)
    ap.add_argument("--keys", default=",".join(map(str, KEYS)), help="key counts, comma-separated")
    ap.add_argument("--dtypes", default="String,Enum", help="key column dtypes: String,Enum")
    ap.add_argument("--only", default=",".join(SECTIONS), help="sections, comma-separated: " + ",".join(SECTIONS))
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    n = args.rows or (1_000_000 if args.quick else int(os.environ.get("BENCH_EVENTS", 10_000_000)))
    only = args.only.split(",")
    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores; {n:,} rows; best of {args.repeat}")
    rows: list[dict] = []
    for keys in (int(k) for k in args.keys.split(",")):
        for dtype in args.dtypes.split(","):
            for section in (s for s in SECTIONS if s in only and s != "replay"):
                run_section(section, n, keys, dtype, args.repeat, rows)
    if rows:
        table(rows)
    if "replay" in only:
        bench_replay_process(n, args.repeat)
    print(f"\nload average at end {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
