"""Every rule kind on Bytewax workers gives exactly the single-process replay's matches.

One program holds a rule of every kind of the conformance tests (filters, every
window, schedule, throttle, pattern, absence, zscore/iqr/ema, `for`/`resolve`
lifecycles, silences) over two streams;
generated data (ties, null times, several files, small row groups, a file out
of time order) is replayed by the single-process engine and by
`replay_distributed` with 1, 2 and 4 worker threads and by two `cep replay`
processes joined by Bytewax's -i/-a addressing.  Same rows per rule, compared
after sorting by every column.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

pytest.importorskip("bytewax")

import cepdsl  # noqa: E402
from runtime.distributed.runner import Cluster, replay_distributed  # noqa: E402

pytestmark = pytest.mark.timeout(240)

PROGRAM = """\
stream m (ts: timestamp, host: str, cpu: float, status: str)
stream auth (ts: timestamp, user: str, event_type: str)

rule filter_3vl from m where cpu > 80 and not (status == "healthy")
rule filter_in from m where host in ["h1", "h3"] and status starts_with "do"
rule win_tumbling from m group by host window tumbling 1m having count() >= 2
rule tumbling_all from m window tumbling 5m having count() >= 1 and percentile(cpu, 90) > 10
rule win_sliding from m group by host window sliding 2m every 1m having avg(cpu) > 40
rule win_session from m group by host window session gap 1m having count() >= 1
rule last_n from m group by host window last 3 events having sum(cpu) > 120
rule last_n_all from m window last 4 events having max(cpu) - min(cpu) > 50
rule sched_all from m schedule "*/10 * * * *" over 10m having count() >= 0
rule sched_grouped from m group by host schedule "*/5 * * * *" over 5m having count() >= 1
rule throttled from m where cpu > 50 group by host throttle 5m
rule window_throttled from m group by host window tumbling 1m having count() >= 1 throttle 3m
rule absent_hb from m where status == "hb" group by host absent for 2m
rule absent_all from m where status == "down" absent for 3m
rule z_score from m group by host anomaly zscore(cpu, threshold = 1.0) baseline 5 warmup 3
rule iqr_rule from m group by host anomaly iqr(cpu, multiplier = 1) baseline 8 warmup 4
rule ema_rule from m anomaly ema(cpu, alpha = 0.5, threshold = 1.5) warmup 2
rule brute from auth group by user pattern fail{3,} ok within 10m
  define fail as event_type == "login_failed", ok as event_type == "login_ok"
rule alternation from auth pattern (p | q) q
  define p as user == "u1", q as event_type == "login_ok"

rule life_window from m group by host window tumbling 1m having count() >= 2 for 2m resolve after 1m
rule life_anomaly from m group by host anomaly zscore(cpu, threshold = 1.2) baseline 5 warmup 3 for 30s resolve after 1m
rule life_absent from m where status == "hb" group by host absent for 2m resolve
rule life_all from m window tumbling 5m having avg(cpu) > 45 for 10m resolve

silence h1_morning match host == "h1" from "2026-01-05T01:00:00Z" until "2026-01-05T04:00:00Z"
silence brute_u2 match rule == "brute" and user == "u2" every "0 */3 * * *" for 1h
"""

RULES = cepdsl.compile(PROGRAM)
RULE_IDS = [r.id for r in RULES.program.rules]
T0 = datetime(2026, 1, 5)


def _times(rng: np.random.Generator, n: int) -> list[datetime]:
    steps = rng.choice([0, 0, 1, 2, 5, 30, 59, 60, 61, 200], n)
    return [T0 + timedelta(seconds=int(s)) for s in np.cumsum(steps)]


def make_data(root: Path, seed: int) -> dict[str, list[Path]]:
    rng = np.random.default_rng(seed)
    n = 1500
    ts: list[datetime | None] = list(_times(rng, n))
    for i in rng.choice(n, 3, replace=False):
        ts[i] = None  # dead letters, once
    m = pl.DataFrame(
        {
            "ts": ts,
            "host": rng.choice(["h1", "h2", "h3", "h4", "h5", "h6"], n),
            "cpu": rng.uniform(0, 100, n).round(0),
            "status": rng.choice(["hb", "hb", "ok", "down", "healthy"], n),
        },
        schema={"ts": pl.Datetime("us"), "host": pl.String, "cpu": pl.Float64, "status": pl.String},
    )
    # Three files; the last one's rows are shuffled: rows wait for the statistics to allow them.
    paths = [root / f"m{i}.parquet" for i in range(3)]
    m[:600].write_parquet(paths[0], row_group_size=100)
    m[600:1100].write_parquet(paths[1], row_group_size=128)
    m[1100:].sample(fraction=1.0, shuffle=True, seed=seed).write_parquet(paths[2], row_group_size=64)
    k = 900
    auth = pl.DataFrame(
        {
            "ts": _times(rng, k),
            "user": rng.choice(["u1", "u2", "u3"], k),
            "event_type": rng.choice(["login_failed", "login_failed", "login_ok"], k),
        }
    )
    apath = root / "auth.parquet"
    auth.write_parquet(apath, row_group_size=150)
    return {"m": paths, "auth": [apath]}


def normalised(frame: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    frame = frame.select(columns)
    return frame.sort(columns, nulls_last=False)


@pytest.fixture(scope="module", params=[7, 11])
def dataset(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    root = tmp_path_factory.mktemp(f"data{request.param}")
    data = make_data(root, request.param)
    frames = {name: pl.concat([pl.read_parquet(p) for p in paths]) for name, paths in data.items()}
    expected = RULES.replay(frames)
    assert sum(f.height for f in expected.values()) > 500  # the data does exercise the rules
    return root, data, expected


def _check(expected: dict[str, pl.DataFrame], out: Path) -> None:
    problems = []
    for rid in RULE_IDS:
        exp = expected[rid]
        got = pl.read_parquet(out / f"{rid}.parquet")
        a, b = normalised(exp, exp.columns), normalised(got, exp.columns)
        if not a.equals(b):
            problems.append(f"{rid}: expected {a.height} rows, got {b.height}")
    assert not problems, "\n".join(problems)
    dead = pl.read_parquet(out / "_dead_letter.parquet")
    assert dead.height == 3 and set(dead["reason"]) == {"missing time"}


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_threads_match_single_process(dataset: tuple[Path, dict, dict], workers: int, tmp_path: Path) -> None:
    _, data, expected = dataset
    replay_distributed(RULES.program, data, tmp_path, Cluster(workers=workers, snapshot_every_s=5), buckets=4, batch_rows=170)
    _check(expected, tmp_path)


@pytest.mark.parametrize("workers", [2, 4])
def test_rules_weighed_and_placed_whole_match_single_process(
    dataset: tuple[Path, dict, dict], workers: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replay's default on big inputs: rules weighed on a sample, placed whole where that
    balances the workers, split only when one is too heavy (forced here on the small data)."""
    from runtime.distributed import runner

    monkeypatch.setattr(runner, "WEIGH_FROM_ROWS", 0)
    monkeypatch.setattr(runner, "WEIGH_ROWS", 300)
    weighed = {}
    real = runner.weigh_rules
    monkeypatch.setattr(runner, "weigh_rules", lambda *a: weighed.update(real(*a)) or dict(weighed))
    _, data, expected = dataset
    replay_distributed(RULES.program, data, tmp_path, Cluster(workers=workers), batch_rows=170)
    assert weighed and sum(weighed.values()) > 0  # the rules were weighed
    _check(expected, tmp_path)


def test_more_partitions_than_workers_and_one_key_partition(dataset: tuple[Path, dict, dict], tmp_path: Path) -> None:
    _, data, expected = dataset
    replay_distributed(RULES.program, data, tmp_path, Cluster(workers=2), partitions=5, buckets=1, batch_rows=333)
    _check(expected, tmp_path)


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_two_processes_match_single_process(dataset: tuple[Path, dict, dict], tmp_path: Path) -> None:
    root, data, expected = dataset
    rule_file = tmp_path / "rules.cep"
    rule_file.write_text(PROGRAM)
    out = tmp_path / "out"
    addresses = ";".join(f"127.0.0.1:{p}" for p in _free_ports(2))
    cep = [sys.executable, "-m", "runtime.cli"]
    args = [
        "replay",
        str(rule_file),
        "--out",
        str(out),
        "--workers",
        "1",
        "--key-partitions",
        "3",
        "--batch-rows",
        "200",
        "--data",
        f"m={root}/m*.parquet",
        "--data",
        f"auth={root}/auth.parquet",
        "-a",
        addresses,
    ]
    env = {**os.environ, "POLARS_MAX_THREADS": "1"}
    procs = [subprocess.Popen([*cep, *args, "-i", str(i)], env=env, stderr=subprocess.PIPE, text=True) for i in range(2)]
    errors = [p.communicate(timeout=180)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    _check(expected, out)
