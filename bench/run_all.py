"""Run every benchmark, one after the other, and keep their reports.

    .venv/bin/python bench/run_all.py            # full sizes (10M events; ~15-30 min on 2 cores)
    .venv/bin/python bench/run_all.py --quick    # 1M events where the bench allows it

Each bench prints its data size, our figure, the peers' figures from the same run
and the ratio; this script only runs them in sequence (never in parallel: they
would measure each other) and writes the combined output to bench/results.txt.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = [
    "bench_frontdoor.py",
    "bench_check.py",
    "bench_filters.py",
    "bench_windows.py",
    "bench_replay.py",
    "bench_patterns.py",
    "bench_anomaly.py",
    "bench_state.py",
    "bench_streaming.py",
    "bench_notify.py",
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller inputs (BENCH_EVENTS=1000000)")
    ap.add_argument("only", nargs="*", help="run only these (e.g. bench_filters.py)")
    args = ap.parse_args()
    env = dict(os.environ)
    if args.quick:
        env.setdefault("BENCH_EVENTS", "1000000")
    chosen = [b for b in BENCHES if not args.only or b in args.only]
    out = open(HERE / "results.txt", "w", encoding="utf-8")
    failed = []
    for name in chosen:
        head = f"\n===== {name} ({time.strftime('%Y-%m-%d %H:%M:%S')}, load {os.getloadavg()[0]:.1f}) =====\n"
        print(head, flush=True)
        out.write(head)
        proc = subprocess.run([sys.executable, str(HERE / name)], cwd=HERE.parent, env=env, capture_output=True, text=True)
        print(proc.stdout, proc.stderr[-2000:] if proc.returncode else "", flush=True)
        out.write(proc.stdout)
        if proc.returncode:
            failed.append(name)
            out.write(proc.stderr)
    out.close()
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
