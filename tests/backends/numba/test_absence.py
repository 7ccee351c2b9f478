"""Absence rules on hand-made streams."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from cepdsl.backends import executor_for
from cepdsl.backends.numba.absence import by_rank
from cepdsl.executor import Progress

from harness import at, released, rule_of, run_batches, us

SRC = """stream m (ts: timestamp, host: str, event_type: str)
rule lost
  from m
  where event_type == "heartbeat"
  group by host
  absent for 2m
"""


def frame(events: list[tuple[float, str, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        {"ts": [at(t) for t, _, _ in events], "host": [h for _, h, _ in events], "event_type": [e for _, _, e in events]},
        schema={"ts": pl.Datetime("us"), "host": pl.String, "event_type": pl.String},
    )


def fired(df: pl.DataFrame, cuts: list[int] = ()) -> list[tuple[str, float, float]]:  # type: ignore[assignment]
    _, rule = rule_of(SRC)
    out = run_batches(rule, df, cuts)
    return [
        (h, (t - at(0)).total_seconds(), (s - at(0)).total_seconds()) for h, t, s in out.select("host", "ts", "last_seen").iter_rows()
    ]


EVENTS = [
    (0, "a", "heartbeat"),
    (0, "b", "heartbeat"),
    (60, "a", "heartbeat"),
    (100, "b", "heartbeat"),
    (180, "a", "heartbeat"),  # a: 120s after 60 → alive exactly at the deadline
    (200, "b", "cpu"),  # not a heartbeat: b's deadline 220 stands
    (400, "a", "heartbeat"),  # a: silent from 180 → deadline 300
    (401, "b", "heartbeat"),
    (520, "c", "heartbeat"),  # the stream ends at 520: a's 520 fires, b's 521 does not, c's 640 does not
]


def test_deadlines_in_order_only_up_to_the_largest_event_time() -> None:
    want = [("b", 220, 100), ("a", 300, 180), ("a", 520, 400)]
    assert fired(frame(EVENTS)) == want
    for c in range(1, len(EVENTS)):
        assert fired(frame(EVENTS), [c]) == want


def test_ties_give_one_match_per_deadline() -> None:
    ev = [(0, "a", "heartbeat"), (0, "a", "heartbeat"), (10, "a", "heartbeat"), (10, "a", "heartbeat"), (500, "a", "heartbeat")]
    assert fired(frame(ev)) == [("a", 130, 10)]


def test_fires_when_the_watermark_passes_the_deadline() -> None:
    _, rule = rule_of(SRC)
    ex = executor_for(rule)
    rows = released(rule, frame([(0, "a", "heartbeat")]))
    assert ex.process(rows, Progress(us(0), us(0), us(0))).height == 0
    # At exactly the deadline a heartbeat at 120s could still arrive (it would not be late).
    assert ex.advance(Progress(us(120), us(0), us(120))).height == 0
    out = ex.advance(Progress(us(120) + 1, us(0), us(120) + 1))
    assert out.select("host").to_series().to_list() == ["a"]
    # A row that would have kept `a` alive now comes too late to be taken.
    assert ex.late_mask(np.array([us(100), us(120) + 1]), us(0)).tolist() == [True, False]
    assert ex.advance(Progress(us(999), us(0), us(999))).height == 0  # once per deadline


def test_snapshot_restore() -> None:
    _, rule = rule_of(SRC)
    whole = run_batches(rule, frame(EVENTS))
    for snap in (1, 2):
        assert run_batches(rule, frame(EVENTS), [3, 6], snapshot_at=snap).equals(whole)


def test_without_group_by() -> None:
    _, rule = rule_of(SRC.replace("  group by host\n", ""))
    out = run_batches(rule, frame(EVENTS))
    assert [(t - at(0)).total_seconds() for t in out.get_column("ts")] == [300]
    assert out.columns == ["rule", "ts", "severity", "last_seen"]


@pytest.mark.parametrize(
    ("n", "spread", "dupes"),
    [(1, 1, False), (500, 2, False), (500, 1, True), (500, 100_000, False), (20_000, 3, False)],
    ids=["one", "dense", "duplicate ranks", "sparse: sorted", "many"],
)
def test_by_rank_orders_columns_by_rank(n: int, spread: int, dupes: bool) -> None:
    """Placed by value over a dense range, sorted over a sparse one or with a repeated rank:
    the columns come in stable rank order either way."""
    rng = np.random.default_rng(n + spread)
    ranks = rng.choice(n * spread, size=n, replace=False).astype(np.int64) + 7_000_000
    if dupes:
        ranks[::3] = ranks[0]
    items = np.stack([rng.integers(0, 1 << 40, n), rng.integers(0, 1 << 40, n), np.arange(n), ranks])
    order = np.argsort(ranks, kind="stable")
    assert np.array_equal(by_rank(items), items[:, order])
