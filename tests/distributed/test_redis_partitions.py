"""Redis Streams as input partitions (one partition per stream key), on a real redis-server."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

pytest.importorskip("bytewax")

import cepdsl  # noqa: E402
from runtime.distributed.runner import Cluster, run_distributed  # noqa: E402

pytestmark = pytest.mark.timeout(120)

RULES = """\
stream m (ts: timestamp, host: str, cpu: float)
rule hot from m where cpu > 50
rule pair from m group by host window last 2 events having sum(cpu) > 90
"""
T0 = datetime(2026, 1, 5)


def _rows(seed: int, n: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame(
        {
            "ts": [T0 + timedelta(seconds=int(s)) for s in np.cumsum(rng.choice([0, 1, 3, 10], n))],
            "host": rng.choice(["a", "b", "c"], n),
            "cpu": rng.uniform(0, 100, n).round(0),
        }
    )


def test_two_stream_keys_as_partitions(redis_client, redis_server, tmp_path: Path) -> None:  # noqa: ANN001
    rules = cepdsl.compile(RULES)
    parts = [_rows(3, 300), _rows(4, 250)]
    for i, frame in enumerate(parts):
        for row in frame.with_columns(pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%SZ")).iter_rows(named=True):
            redis_client.xadd(f"m:{i}", {"data": json.dumps(row)})
    out = tmp_path / "out"
    specs = {f"m#{i}": ("m", f"{redis_server.url}?stream=m:{i}&max_rows=64") for i in range(2)}
    stop = threading.Event()
    runner = threading.Thread(
        target=run_distributed,
        kwargs=dict(
            program=rules.program,
            specs=specs,
            cluster=Cluster(workers=2),
            outbox=str(tmp_path / "outbox.sqlite"),
            out_dir=str(out),
            buckets=2,
            idle_after_s=3600,
            stop=stop,
        ),
        daemon=True,
    )
    runner.start()
    # Everything before the smaller of the two partitions' last times is decided.
    done_before = min(f["ts"].max() for f in parts)
    expected = rules.replay({"m": pl.concat(parts)})
    want_pair = expected["pair"].filter(pl.col("ts") < done_before)

    def got(rule: str) -> pl.DataFrame:
        path = out / f"{rule}.jsonl"
        if not path.exists() or path.stat().st_size == 0:
            return pl.DataFrame()
        return pl.read_ndjson(path)

    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if got("hot").height >= expected["hot"].height and got("pair").height >= want_pair.height:
                break
            time.sleep(0.1)
    finally:
        stop.set()
        runner.join(60)

    def as_json(frame: pl.DataFrame) -> pl.DataFrame:  # times as the JSON lines sink writes them
        return frame.with_columns(
            pl.col(c).dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ") for c, t in frame.schema.items() if isinstance(t, pl.Datetime)
        )

    expected = {k: as_json(v) for k, v in expected.items()}
    want_pair = as_json(want_pair)
    cols = ["ts", "host", "cpu"]
    assert got("hot").select(cols).sort(cols).equals(expected["hot"].select(cols).sort(cols))
    pcols = [c for c in want_pair.columns if c in got("pair").columns]
    assert got("pair").select(pcols).sort(pcols).equals(want_pair.select(pcols).sort(pcols))
