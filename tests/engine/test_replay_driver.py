"""runtime.replay: Parquet in chunks → Session → one Parquet file per rule."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq

import cepdsl
from runtime.replay import DEAD_LETTER_FILE, replay, row_group_bounds
from tests.support.frames import assert_frames_match

RULES = """
stream m (ts: timestamp, host: str, cpu: float)
stream a (ts: timestamp, user: str)

rule hot from m where cpu > 50
rule each from m throttle 10s
rule users from a where user != "root"
rule never from m where cpu > 1000
"""


def metrics(n: int, seed: int = 1, shuffle: bool = False) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    t0 = dt.datetime(2024, 1, 1)
    secs = np.sort(rng.integers(0, n // 2 + 1, n))
    df = pl.DataFrame(
        {
            "ts": [t0 + dt.timedelta(seconds=int(s)) for s in secs],
            "host": rng.choice(["a", "b", "c"], n).tolist(),
            "cpu": rng.uniform(0, 100, n).round(1).tolist(),
        }
    )
    if shuffle:
        df = df.sample(fraction=1.0, shuffle=True, seed=seed)
    return df.with_columns(pl.when(pl.int_range(pl.len()) % 97 == 5).then(None).otherwise(pl.col("ts")).alias("ts"))


def read(out: Path, rule: str) -> pl.DataFrame:
    return pl.read_parquet(out / f"{rule}.parquet")


def test_replay_writes_every_rule_and_matches_the_in_memory_replay(tmp_path: Path) -> None:
    program = cepdsl.compile(RULES).program
    m = metrics(3000)
    users = pl.DataFrame({"ts": [dt.datetime(2024, 1, 1, 0, 0, s) for s in (3, 1, 2)], "user": ["bob", "root", "eve"]})
    m[:1700].write_parquet(tmp_path / "m1.parquet", row_group_size=256)
    m[1700:].write_parquet(tmp_path / "m2.parquet", row_group_size=256)
    users.write_parquet(tmp_path / "a.parquet")
    seen: list[tuple[int, int]] = []
    summary = replay(
        program,
        {"m": [tmp_path / "m1.parquet", tmp_path / "m2.parquet"], "a": [tmp_path / "a.parquet"]},
        tmp_path / "out",
        progress=lambda done, total: seen.append((done, total)),
        batch_rows=500,
    )
    expected, dead = cepdsl.Rules(program).replay_with_dead_letters({"m": m, "a": users})
    for rid in ("hot", "each", "users", "never"):
        assert_frames_match(read(tmp_path / "out", rid), expected[rid], ordered=True, label=rid)
    assert read(tmp_path / "out", "users")["user"].to_list() == ["eve", "bob"]
    assert read(tmp_path / "out", "never").columns == ["rule", "ts", "severity", "host", "cpu"]
    by_rule = {r.rule: r for r in summary.rules}
    assert by_rule["hot"].matches == expected["hot"].height
    assert by_rule["each"].suppressed > 0
    assert summary.rows == 3003 and seen[0] == (0, 3003) and seen[-1] == (3003, 3003)
    dl = pl.read_parquet(tmp_path / "out" / DEAD_LETTER_FILE)
    assert dl.height == summary.dead_letters == dead.height == m["ts"].null_count()
    assert set(dl["reason"]) == {"missing time"}


def test_unsorted_files_are_replayed_in_event_time_order(tmp_path: Path) -> None:
    program = cepdsl.compile(RULES).program
    m = metrics(2000, seed=7, shuffle=True)
    m.write_parquet(tmp_path / "m.parquet", row_group_size=300)
    summary = replay(program, {"m": [tmp_path / "m.parquet"]}, tmp_path / "out", batch_rows=128)
    expected = cepdsl.Rules(program).replay({"m": m})
    for rid in ("hot", "each"):
        got = read(tmp_path / "out", rid)
        assert got["ts"].is_sorted()
        assert_frames_match(got, expected[rid], ordered=True, label=rid)
    assert all(r.late == 0 for r in summary.rules)
    assert read(tmp_path / "out", "users").height == 0  # stream `a` had no data


def test_row_group_bounds_come_from_footer_statistics(tmp_path: Path) -> None:
    program = cepdsl.compile(RULES).program
    df = pl.DataFrame({"ts": [dt.datetime(2024, 1, 1, 0, 0, s) for s in (5, 1, 9, 7)], "host": list("abcd"), "cpu": [1.0] * 4})
    df.write_parquet(tmp_path / "x.parquet", row_group_size=2)
    assert pq.ParquetFile(tmp_path / "x.parquet").metadata.num_row_groups == 2
    rows, mins = row_group_bounds(program.stream("m"), [tmp_path / "x.parquet"])
    t0 = int(dt.datetime(2024, 1, 1).timestamp()) * 1_000_000
    assert rows.tolist() == [2, 2]
    assert mins.tolist() == [t0 + 1_000_000, t0 + 7_000_000]
