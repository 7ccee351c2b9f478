"""Checkpoint cost: how long one `save_many` of window state takes, per store.

Two shapes of the same ~6.4 MB of state:
  - one rule with 100k groups × 64 bytes (one big payload),
  - 100 rules × 1k groups × 64 bytes (100 payloads of 64 KB).
Target: ≤ 200 ms to Redis. Also times baseline_append_many for 10k groups.

And the engine's own checkpoint of real window state: a session holding open sliding
windows (5m every 1m, avg and max of cpu) for 100k hosts, `Session.snapshot()` (what the
executors serialise) + `save_many` to each store, as `StreamingEngine.checkpoint` does.

Run: .venv/bin/python bench/bench_state.py [--redis redis://127.0.0.1:6379/0]
Without --redis, a throwaway redis-server is started on a free port.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from runtime.state.redis_store import RedisStore, connect  # noqa: E402
from runtime.state.sqlite import SqliteStore  # noqa: E402
from runtime.state.store import MemoryStore  # noqa: E402

from common import record  # noqa: E402

BENCH = "bench_state"

GROUP_BYTES = 64
HOSTS = 100_000
WINDOW_RULES = """
stream metrics (ts: timestamp, host: str, cpu: float)
  time ts
  lateness 1m

rule hot_host
  from metrics
  group by host
  window sliding 5m every 1m
  having avg(cpu) > 80 and max(cpu) > 95
"""


def window_session():  # type: ignore[no-untyped-def]
    """A session with open windows for HOSTS hosts (3 events each over the last 3 minutes)."""
    import numpy as np
    import polars as pl

    import cepdsl

    session = cepdsl.compile(WINDOW_RULES).session()
    n = 3 * HOSTS
    rng = np.random.default_rng(1)
    t0 = 1_700_000_000_000_000
    frame = pl.DataFrame(
        {
            "ts": pl.Series(np.sort(t0 + rng.integers(0, 180_000_000, n))).cast(pl.Datetime("us")),
            "host": "host-" + pl.Series(np.tile(np.arange(HOSTS), 3)).cast(pl.String),
            "cpu": rng.random(n) * 100,
        }
    )
    session.push("metrics", frame)
    return session


def payload(groups: int) -> bytes:
    return os.urandom(16) * (groups * GROUP_BYTES // 16)


def shapes() -> dict[str, list[tuple[str, int, bytes, dict]]]:
    offsets = {"metrics": {"path": "/var/log/metrics.jsonl", "inode": 1234, "pos": 987_654_321}}
    return {
        "1 rule x 100k groups": [("big_rule", 1, payload(100_000), offsets)],
        "100 rules x 1k groups": [(f"rule_{i}", 1, payload(1_000), offsets) for i in range(100)],
    }


def timed(fn, repeat: int = 7) -> float:
    fn()  # warm: connections, page cache
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return statistics.median(runs) * 1000


def start_redis() -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server not found; pass --redis URL")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = connect(url)
    for _ in range(500):
        try:
            client.ping()
            break
        except Exception:  # noqa: BLE001 - still starting
            time.sleep(0.01)
    return proc, url


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--redis", help="use this Redis instead of starting one")
    args = ap.parse_args()
    proc = None
    url = args.redis
    if url is None:
        proc, url = start_redis()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            stores = {
                "memory": MemoryStore(),
                "sqlite": SqliteStore(os.path.join(tmp, "bench.sqlite")),
                "redis": RedisStore(connect(url, timeout_s=10)),
            }
            print(f"checkpoint (save_many), median of 7, {GROUP_BYTES} B per group")
            for shape, states in shapes().items():
                for name, store in stores.items():
                    ms = timed(lambda: store.save_many(states))
                    flag = "  (target ≤ 200 ms)" if name == "redis" else ""
                    print(f"  {shape:<24} {name:<7} {ms:8.1f} ms{flag}")
                    if name != "memory":  # microseconds of dict stores: 10 % of that is noise, not a regression
                        record(BENCH, f"save_many, {shape}, {name}", ms, "ms", better="lower")
            session = window_session()
            snap = session.snapshot()
            size = sum(len(p) for p in snap.values())
            snap_ms = timed(session.snapshot)
            print(f"engine checkpoint: sliding window state of {HOSTS:,} hosts ({size / 1e6:.1f} MB snapshot), median of 7")
            print(f"  Session.snapshot()          {snap_ms:8.1f} ms")
            record(BENCH, f"Session.snapshot(), {HOSTS:,} hosts", snap_ms, "ms", better="lower")
            for name, store in stores.items():

                def checkpoint(store=store) -> None:  # noqa: ANN001
                    store.save_many([(key, 1, payload, {}) for key, payload in session.snapshot().items()])

                ms = timed(checkpoint)
                flag = "  (target ≤ 200 ms)" if name == "redis" else ""
                print(f"  snapshot + save_many {name:<7} {ms:8.1f} ms{flag}")
                record(BENCH, f"snapshot + save_many, {HOSTS:,} hosts, {name}", ms, "ms", better="lower")
            groups = {f"host-{i}": [float(i), float(i) + 0.5] for i in range(10_000)}
            print("baseline_append_many, 10k groups x 2 values")
            for name, store in stores.items():
                ms = timed(lambda: store.baseline_append_many("anomaly_rule", groups), repeat=3)
                print(f"  {name:<7} {ms:8.1f} ms")
                record(BENCH, f"baseline_append_many, 10k groups, {name}", ms, "ms", better="lower")
            for store in stores.values():
                store.close()
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    main()
