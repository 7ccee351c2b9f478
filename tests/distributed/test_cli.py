"""`cep run --workers`, `cep serve --workers` and their usage errors, as a user runs them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import polars as pl
import pytest

pytest.importorskip("bytewax")

import cepdsl  # noqa: E402

pytestmark = pytest.mark.timeout(180)

RULES = """\
stream m (ts: timestamp, host: str, cpu: float)
rule hot from m where cpu > 70
rule busy from m group by host window tumbling 1m having count() >= 2 and avg(cpu) > 40
rule quiet from m group by host absent for 3m
"""
CEP = [sys.executable, "-m", "runtime.cli"]
ENV = {**os.environ, "POLARS_MAX_THREADS": "1"}


def _frame(seed: int, n: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    t0 = datetime(2026, 1, 5)
    return pl.DataFrame(
        {
            "ts": [t0 + timedelta(seconds=int(s)) for s in np.cumsum(rng.choice([0, 2, 15, 40, 200], n))],
            "host": rng.choice(["a", "b", "c", "d"], n),
            "cpu": rng.uniform(0, 100, n).round(0),
        }
    )


def _as_json_rows(frame: pl.DataFrame) -> list[str]:
    frame = frame.with_columns(
        pl.col(c).dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ") for c, t in frame.schema.items() if isinstance(t, pl.Datetime)
    )
    return sorted(json.dumps(r, sort_keys=True) for r in frame.iter_rows(named=True))


def test_run_on_two_workers_over_two_files_matches_replay(tmp_path: Path) -> None:
    rule_file = tmp_path / "rules.cep"
    rule_file.write_text(RULES)
    parts = [_frame(5, 400), _frame(6, 300)]
    for i, f in enumerate(parts):
        (tmp_path / f"p{i}.jsonl").write_text(f.with_columns(pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%SZ")).write_ndjson())
    out = tmp_path / "out"
    # --idle-after: a loaded machine must not stall a partition long enough to move its time
    # by the wall clock (which would make the other partition's history late).
    done = subprocess.run(
        [
            *CEP,
            "run",
            str(rule_file),
            "--workers",
            "2",
            "--no-stats",
            "--out",
            str(out),
            "--idle-after",
            "3600",
            "--outbox",
            str(tmp_path / "outbox.sqlite"),
            "--source",
            f"m=jsonl:{tmp_path / 'p0.jsonl'}?follow=false",
            "--source",
            f"m=jsonl:{tmp_path / 'p1.jsonl'}?follow=false",
        ],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert done.returncode == 0, done.stderr
    expected = cepdsl.compile(RULES).replay({"m": pl.concat(parts)})
    for rid, frame in expected.items():
        lines = (out / f"{rid}.jsonl").read_text().splitlines() if frame.height else []
        got = sorted(json.dumps(json.loads(line), sort_keys=True) for line in lines)
        assert got == _as_json_rows(frame), rid


def test_serve_with_workers_reports_rules_and_partitions(tmp_path: Path) -> None:
    rule_file = tmp_path / "rules.cep"
    rule_file.write_text(RULES)
    source = tmp_path / "m.jsonl"
    source.write_text(_frame(7, 200).with_columns(pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%SZ")).write_ndjson())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            *CEP,
            "serve",
            str(rule_file),
            "--listen",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--outbox",
            str(tmp_path / "outbox.sqlite"),
            "--source",
            f"jsonl:{source}?follow=false",
        ],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )  # the catalogue and history default to files in the working directory
    try:
        deadline = time.monotonic() + 90
        body: dict = {}
        while time.monotonic() < deadline:
            try:
                body = httpx.get(f"http://127.0.0.1:{port}/cep/stats", timeout=2).json()
                busy = body.get("rules", {}).get("busy", {})
                # Each key partition reports its stats on its own: wait for all 16, not the first.
                if busy.get("events_in", 0) > 0 and busy.get("key_partitions") == 16:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        assert body["running"] is True
        assert body["rules"]["busy"]["key_partitions"] == 16
        health = httpx.get(f"http://127.0.0.1:{port}/cep/health", timeout=2).json()
        assert health["status"] == "ok"
        workers = httpx.get(f"http://127.0.0.1:{port}/cep/health/bytewax", timeout=2).json()
        assert workers["configured"] is True and workers["workers_per_process"] == 2
        assert list(workers["input_partitions"]) == ["m.00000"]
        assert workers["input_partitions"]["m.00000"]["rows"] == 200
        assert len([k for k in workers["key_partitions"] if k.startswith("busy@")]) == 16
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-a", "127.0.0.1:1;127.0.0.1:2"], "needs -i/--process-id"),
        (["-i", "0"], "needs -a/--addresses"),
        (["-i", "5", "-a", "127.0.0.1:1;127.0.0.1:2"], "the address list has 2 entries"),
        (["-i", "0", "-a", "127.0.0.1:1;10.1.2.3:2"], "needs --trusted-network"),
    ],
)
def test_cluster_usage_errors_name_the_option(tmp_path: Path, args: list[str], message: str) -> None:
    rule_file = tmp_path / "rules.cep"
    rule_file.write_text(RULES)
    done = subprocess.run(
        [
            *CEP,
            "replay",
            str(rule_file),
            "--data",
            str(tmp_path / "none.parquet"),
            "--out",
            str(tmp_path / "out"),
            "--workers",
            "1",
            *args,
        ],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr


def test_run_refuses_single_process_options_with_workers(tmp_path: Path) -> None:
    rule_file = tmp_path / "rules.cep"
    rule_file.write_text(RULES)
    for extra, message in ((["--state", "x.sqlite"], "use --recovery DIR"), (["--api", "127.0.0.1:1"], "cep serve")):
        done = subprocess.run(
            [*CEP, "run", str(rule_file), "--workers", "2", "--source", "jsonl:-", *extra],
            env=ENV,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2 and message in done.stderr, done.stderr
