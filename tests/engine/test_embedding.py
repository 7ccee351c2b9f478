"""The embedding API: cepdsl.compile → rules.session() / rules.replay()."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import polars as pl
import pytest

import cepdsl
from tests.support.frames import assert_frames_match

RULES = """
stream metrics (ts: timestamp, host: str, cpu: float, data.mem: float)
  lateness 10s

rule hot "CPU above 80"
  from metrics
  where cpu > 80
  severity high

rule quiet
  from metrics
  where data.mem < 10
  throttle 1m
"""


def rows(n: int = 6) -> pl.DataFrame:
    t0 = dt.datetime(2024, 1, 1)
    return pl.DataFrame(
        {
            "ts": [t0 + dt.timedelta(seconds=20 * i) for i in range(n)],
            "host": ["a", "b"] * (n // 2),
            "cpu": [90.0, 10.0, 85.0, None, 99.0, 50.0][:n],
            "data": [{"mem": m} for m in [5.0, 50.0, 1.0, 2.0, 80.0, 3.0][:n]],
        }
    )


def test_compile_takes_text_or_a_path(tmp_path: Path) -> None:
    rules = cepdsl.compile(RULES)
    assert rules.ids == ("hot", "quiet")
    path = tmp_path / "ops.cep"
    path.write_text(RULES)
    assert cepdsl.compile(path).ids == ("hot", "quiet")
    assert cepdsl.compile(str(path)).ids == ("hot", "quiet")
    assert rules["hot"].severity == "high"


def test_compile_errors_raise_check_error_with_diagnostics(tmp_path: Path) -> None:
    with pytest.raises(cepdsl.CheckError) as info:
        cepdsl.compile("stream s (ts: timestamp)\nrule r from nowhere\n")
    assert info.value.diagnostics
    with pytest.raises((cepdsl.CheckError, FileNotFoundError)):
        cepdsl.compile(str(tmp_path / "missing.cep"))


def test_replay_runs_every_rule_in_event_time_order() -> None:
    rules = cepdsl.compile(RULES)
    shuffled = rows().sample(fraction=1.0, shuffle=True, seed=3)
    out = rules.replay({"metrics": shuffled})
    assert out["hot"]["cpu"].to_list() == [90.0, 85.0, 99.0]
    assert out["hot"]["severity"].to_list() == ["high"] * 3
    # quiet: mem < 10 at 0 s, 40 s, 60 s, 100 s; throttle 1m keeps 0 s and 60 s... 60 s is not within (0, 60]
    assert out["quiet"]["ts"].dt.second().to_list() == [0, 0]
    assert out["quiet"].columns == ["rule", "ts", "severity", "host", "cpu", "data.mem"]


def test_replay_accepts_arrow_pandas_and_parquet_paths(tmp_path: Path) -> None:
    rules = cepdsl.compile(RULES)
    expected = rules.replay({"metrics": rows()})
    flat = rows().unnest("data").rename({"mem": "data.mem"})
    path = tmp_path / "m.parquet"
    rows().write_parquet(path)
    for data in (rows().to_arrow(), flat.to_pandas(), path, str(tmp_path), [rows()[:3], rows()[3:]]):
        got = rules.replay({"metrics": data})
        for rid in expected:
            assert_frames_match(got[rid], expected[rid], ordered=True, label=f"{type(data).__name__} {rid}")


def test_replay_with_no_data_gives_empty_frames_with_the_columns() -> None:
    out = cepdsl.compile(RULES).replay({})
    assert out["hot"].height == 0
    assert out["hot"].columns == ["rule", "ts", "severity", "host", "cpu", "data.mem"]


def test_a_session_matches_replay_for_in_order_batches() -> None:
    rules = cepdsl.compile(RULES)
    data = rows()
    expected = rules.replay({"metrics": data})
    session = rules.session()
    parts = [session.push("metrics", data[i : i + 2]) for i in range(0, data.height, 2)] + [session.flush()]
    for rid in expected:
        assert_frames_match(pl.concat([p[rid] for p in parts]), expected[rid], ordered=True, label=rid)


def test_pandas_with_tz_aware_times_goes_through_push() -> None:
    rules = cepdsl.compile(RULES)
    df = pd.DataFrame(
        {
            "ts": pd.to_datetime(["2024-01-01 01:00:00"]).tz_localize("Europe/Paris"),
            "host": ["a"],
            "cpu": [95.0],
            "data.mem": [50.0],
        }
    )
    session = rules.session()
    session.push("metrics", df)
    out = session.flush()["hot"]
    assert out["ts"].to_list() == [dt.datetime(2024, 1, 1, 0, 0)]
