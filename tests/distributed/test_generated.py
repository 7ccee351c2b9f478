"""Generated rules (filter, every window, schedule, with or without where/group by/having/
throttle) on generated streams (ties, gaps, null times and values, shuffled order), split
across files, row blocks and 2 workers: the single-process replay's matches, row for row."""

from __future__ import annotations

import tempfile
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("bytewax")

import cepdsl  # noqa: E402
from runtime.distributed.runner import Cluster, replay_distributed  # noqa: E402
from tests.differential.test_patterns_absence_anomaly import pattern_rules  # noqa: E402
from tests.differential.test_patterns_absence_anomaly import streams as small_streams  # noqa: E402
from tests.support.frames import assert_frames_match  # noqa: E402
from tests.support.generators import streams, window_rules  # noqa: E402

pytestmark = pytest.mark.timeout(240)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=window_rules(),
    data=streams(max_rows=80),
    shuffle_seed=st.one_of(st.none(), st.integers(0, 99)),
    split=st.integers(0, 80),
    block=st.integers(3, 40),
    buckets=st.integers(1, 5),
)
def test_two_workers_equal_single_process(
    text: str, data: pl.DataFrame, shuffle_seed: int | None, split: int, block: int, buckets: int
) -> None:
    rules = cepdsl.compile(text)
    if shuffle_seed is not None:
        data = data.sample(fraction=1.0, shuffle=True, seed=shuffle_seed)
    expected = rules.replay({"s": data})["r"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cut = min(split, data.height)
        files = []
        for i, part in enumerate((data[:cut], data[cut:])):
            if part.height:
                path = root / f"s{i}.parquet"
                part.write_parquet(path, row_group_size=max(1, block // 2))
                files.append(path)
        if not files:
            return
        replay_distributed(rules.program, {"s": files}, root / "out", Cluster(workers=2), buckets=buckets, batch_rows=block)
        got = pl.read_parquet(root / "out" / "r.parquet")
    assert_frames_match(got, expected, ordered=False, label=text)


PA_STREAM = "stream s (ts: timestamp, g: str, k: str, v: float, n: int)\n"
STATEFUL = [
    'rule r from s where k != "z" group by g absent for 2s',
    'rule r from s where k != "z" group by g, k absent for 5s',
    'rule r from s where k != "z" absent for 1s',
    "rule r from s group by g anomaly zscore(v, threshold = 1.07) baseline 3 warmup 2",
    "rule r from s anomaly iqr(v, multiplier = 0.5) baseline 5 warmup 3",
    "rule r from s group by g anomaly ema(n, threshold = 0.83) warmup 1",
]


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_patterns_absence_anomaly_on_two_workers(data: st.DataObject) -> None:
    text = data.draw(st.one_of(pattern_rules(), st.sampled_from([PA_STREAM + r for r in STATEFUL])))
    frame = data.draw(small_streams(max_rows=60))
    rules = cepdsl.compile(text)
    rid = rules.program.rules[0].id
    expected = rules.replay({"s": frame})[rid]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if frame.height == 0:
            return
        frame.write_parquet(root / "s.parquet", row_group_size=7)
        replay_distributed(
            rules.program,
            {"s": [root / "s.parquet"]},
            root / "out",
            Cluster(workers=2),
            buckets=data.draw(st.integers(1, 4)),
            batch_rows=data.draw(st.integers(3, 25)),
        )
        got = pl.read_parquet(root / "out" / f"{rid}.parquet")
    assert_frames_match(got, expected, ordered=False, label=text)
