"""Filter, window and schedule executors on small hand-made streams: values by hand,
every batch split gives the same output, emission follows the watermark, and a
snapshot/restore mid-stream changes nothing."""

from __future__ import annotations

from functools import partial

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from cepdsl import backends
from cepdsl.backends.polars.count_windows import CountWindowExecutor
from cepdsl.backends.polars.filters import FilterExecutor
from cepdsl.backends.polars.pane_windows import SlidingExecutor, TumblingExecutor
from cepdsl.backends.polars.schedule import ScheduleExecutor
from cepdsl.backends.polars.sessions import SessionExecutor
from cepdsl.executor import Progress
from cepdsl.state_format import decode_state, encode_state

from drive import M, S, at, frame, rule_of, run_batches, where

#: The Polars executors alone, whatever `cepdsl.backends.EXECUTORS` prefers for a rule.
executor_for = partial(backends.executor_for, backend="polars")

STREAM = "stream m (ts: timestamp, host: str, cpu: float, n: int)\n"

ROWS = [
    dict(ts=10 * S, host="a", cpu=1.0, n=1),
    dict(ts=70 * S, host="b", cpu=2.0, n=2),
    dict(ts=130 * S, host="a", cpu=None, n=3),
    dict(ts=130 * S, host=None, cpu=9.0, n=None),
    dict(ts=250 * S, host="a", cpu=4.0, n=4),
    dict(ts=260 * S, host="a", cpu=6.0, n=4),
]

ALL_AGGS = (
    "count() > 0 or count(cpu) > 0 or sum(n) > 0 or avg(cpu) > 0 or min(cpu) > 0 or max(n) > 0"
    " or std(cpu) > 0 or percentile(cpu, 50) > 0 or distinct(n) > 0"
)

RULES = {
    "tumbling": f"group by host window tumbling 2m having {ALL_AGGS}",
    "sliding": f"group by host window sliding 3m every 1m having {ALL_AGGS}",
    "sliding_nogroup": "window sliding 5m every 2m having count() > 0",
    "session": f"group by host window session gap 2m having {ALL_AGGS}",
    "count": f"group by host window last 2 events having {ALL_AGGS}",
    "schedule": f'group by host schedule "*/2 * * * *" over 3m having {ALL_AGGS}',
    "schedule_nogroup": 'schedule "*/1 * * * *" over 1m',
    "filter": 'where cpu > 1.5 and host != "b"',
}


def rule(kind: str):  # noqa: ANN201
    return rule_of(STREAM + "rule r from m " + RULES[kind])


def rows_of(out: pl.DataFrame, *cols: str) -> list[tuple]:
    return out.select(cols).rows()


def test_executor_classes() -> None:
    assert isinstance(executor_for(rule("filter")), FilterExecutor)
    assert isinstance(executor_for(rule("tumbling")), TumblingExecutor)
    assert isinstance(executor_for(rule("sliding")), SlidingExecutor)
    assert isinstance(executor_for(rule("session")), SessionExecutor)
    assert isinstance(executor_for(rule("count")), CountWindowExecutor)
    assert isinstance(executor_for(rule("schedule")), ScheduleExecutor)
    with pytest.raises(NotImplementedError):
        executor_for(rule_of(STREAM + "rule r from m group by host absent for 1m"))


# ------------------------------------------------------------------ values by hand


def test_filter_values() -> None:
    r = rule("filter")
    out = run_batches(r, frame(r, ROWS))
    assert out.columns == [f.name for f in r.output]
    assert rows_of(out, "ts", "host", "cpu") == [(at(250 * S), "a", 4.0), (at(260 * S), "a", 6.0)]


def test_tumbling_values() -> None:
    r = rule("tumbling")
    out = run_batches(r, frame(r, ROWS))
    assert out.columns[:6] == ["rule", "ts", "severity", "host", "window_start", "window_end"]
    got = rows_of(out, "ts", "host", "count", "count_cpu", "sum_n", "avg_cpu", "min_cpu", "max_n", "std_cpu", "p50_cpu", "distinct_n")
    assert got == [
        (at(2 * M), "a", 1, 1, 1, 1.0, 1.0, 1, None, 1.0, 1),
        (at(2 * M), "b", 1, 1, 2, 2.0, 2.0, 2, None, 2.0, 1),
        (at(4 * M), None, 1, 1, None, 9.0, 9.0, None, None, 9.0, 0),  # null key first
        (at(4 * M), "a", 1, 0, 3, None, None, 3, None, None, 1),
        (at(6 * M), "a", 2, 2, 8, 5.0, 4.0, 4, pytest.approx(2**0.5), 5.0, 1),
    ]
    assert out["window_start"].to_list() == [at(0), at(0), at(2 * M), at(2 * M), at(4 * M)]


def test_sliding_includes_windows_starting_before_the_first_event() -> None:
    r = rule("sliding")
    out = run_batches(r, frame(r, ROWS))
    a = out.filter(pl.col("host") == "a")
    assert rows_of(a, "window_start", "window_end", "count") == [
        (at(-2 * M), at(1 * M), 1),
        (at(-1 * M), at(2 * M), 1),
        (at(0), at(3 * M), 2),
        (at(1 * M), at(4 * M), 1),
        (at(2 * M), at(5 * M), 3),
        (at(3 * M), at(6 * M), 2),
        (at(4 * M), at(7 * M), 2),
    ]


def test_sliding_with_gcd_panes() -> None:
    r = rule("sliding_nogroup")  # 5m every 2m: panes of 1m
    out = run_batches(r, frame(r, ROWS))
    assert rows_of(out, "window_start", "window_end", "count") == [
        (at(-4 * M), at(1 * M), 1),
        (at(-2 * M), at(3 * M), 4),
        (at(0), at(5 * M), 6),
        (at(2 * M), at(7 * M), 4),
        (at(4 * M), at(9 * M), 2),
    ]


def test_session_gap_of_exactly_g_starts_a_new_session() -> None:
    r = rule("session")
    out = run_batches(r, frame(r, ROWS))
    a = out.filter(pl.col("host") == "a")
    # a: 10s | 130s (gap exactly 2m) | 250s, 260s (gap 2m from 130s)
    assert rows_of(a, "window_start", "window_end", "count", "sum_n") == [
        (at(10 * S), at(130 * S), 1, 1),
        (at(130 * S), at(250 * S), 1, 3),
        (at(250 * S), at(380 * S), 2, 8),
    ]


def test_last_n_events() -> None:
    r = rule("count")
    out = run_batches(r, frame(r, ROWS))
    assert rows_of(out, "ts", "host", "window_start", "count", "sum_n", "avg_cpu") == [
        (at(10 * S), "a", at(10 * S), 1, 1, 1.0),
        (at(70 * S), "b", at(70 * S), 1, 2, 2.0),
        (at(130 * S), "a", at(10 * S), 2, 4, 1.0),  # same ts: by window_start, then key
        (at(130 * S), None, at(130 * S), 1, None, 9.0),
        (at(250 * S), "a", at(130 * S), 2, 7, 4.0),
        (at(260 * S), "a", at(250 * S), 2, 8, 5.0),
    ]


def test_schedule_ticks_after_first_event_and_up_to_max_ts() -> None:
    r = rule("schedule")
    out = run_batches(r, frame(r, ROWS))
    # first event 10s → ticks 2m, 4m; 6m > max ts (260s) does not fire at finish
    assert rows_of(out, "ts", "host", "window_start", "count") == [
        (at(2 * M), "a", at(-1 * M), 1),
        (at(2 * M), "b", at(-1 * M), 1),
        (at(4 * M), None, at(1 * M), 1),
        (at(4 * M), "a", at(1 * M), 1),
        (at(4 * M), "b", at(1 * M), 1),
    ]


def test_schedule_without_group_evaluates_empty_ticks() -> None:
    r = rule_of(STREAM + 'rule r from m schedule "*/1 * * * *" over 1m having count() == 0 or sum(n) > 0')
    out = run_batches(r, frame(r, ROWS))
    assert rows_of(out, "ts", "count", "sum_n") == [
        (at(1 * M), 1, 1),
        (at(2 * M), 1, 2),
        (at(3 * M), 2, 3),
        (at(4 * M), 0, None),  # empty tick still evaluated: count 0, sum null
    ]


# ------------------------------------------------------------------ batching, watermark, snapshots


@pytest.mark.parametrize("kind", sorted(RULES))
def test_every_split_point_gives_the_same_output(kind: str) -> None:
    r = rule(kind)
    df = frame(r, ROWS)
    whole = run_batches(r, df)
    assert whole.height > 0
    for cut in range(df.height + 1):
        assert_frame_equal(run_batches(r, df, cuts=[cut]), whole)
    assert_frame_equal(run_batches(r, df, cuts=list(range(1, df.height))), whole)


@pytest.mark.parametrize("kind", sorted(RULES))
def test_snapshot_and_restore_mid_stream(kind: str) -> None:
    r = rule(kind)
    df = frame(r, ROWS)
    whole = run_batches(r, df)
    for i in range(3):
        assert_frame_equal(run_batches(r, df, cuts=[2, 4], snapshot_at=i), whole)


def test_windows_emit_only_when_the_watermark_reaches_their_end() -> None:
    r = rule("tumbling")
    ex = executor_for(r)
    df = where(r, frame(r, ROWS))
    out = ex.process(df.slice(0, 2), Progress(70 * S, 10 * S, 70 * S))
    assert out.height == 0  # [0, 2m) still open
    out = ex.advance(Progress(2 * M - 1, 10 * S, 70 * S))
    assert out.height == 0
    out = ex.advance(Progress(2 * M, 10 * S, 70 * S))
    assert rows_of(out, "host", "count") == [("a", 1), ("b", 1)]
    assert ex.advance(Progress(3 * M, 10 * S, 70 * S)).height == 0  # emitted once


def test_late_rows_accepted_until_their_windows_fire() -> None:
    r = rule("tumbling")
    ex = executor_for(r)
    df = where(r, frame(r, ROWS))
    ex.process(df.slice(4, 1), Progress(250 * S, 10 * S, 250 * S))  # fires [0,2m) and [2m,4m) (empty)
    ts = np.array([10 * S, 130 * S, 245 * S], dtype=np.int64)
    assert ex.late_mask(ts, 250 * S).tolist() == [True, True, False]


def test_sliding_row_late_only_when_all_its_windows_fired() -> None:
    r = rule("sliding")  # 3m every 1m
    ex = executor_for(r)
    ex.advance(Progress(4 * M, 0, 4 * M))
    # t=1.5m is in windows ending 2m, 3m, 4m: all fired; t=2.5m also in the one ending 5m
    ts = np.array([90 * S, 150 * S], dtype=np.int64)
    assert ex.late_mask(ts, 4 * M).tolist() == [True, False]


def test_count_windows_keep_default_late_mask() -> None:
    ex = executor_for(rule("count"))
    assert ex.late_mask(np.array([5, 15], dtype=np.int64), 10).tolist() == [True, False]


def test_state_is_plain_data() -> None:
    r = rule("sliding")
    ex = executor_for(r)
    ex.process(where(r, frame(r, ROWS)), Progress(100 * S, 10 * S, 260 * S))
    st = ex.state()
    assert set(st) == {"panes", "emitted_us"} and isinstance(st["panes"], bytes)
    assert decode_state(encode_state(st)) == st


def test_last_n_averages_are_summed_afresh_not_slid_along() -> None:
    """Found by the differential test: Polars' rolling mean slides its sum along, so the
    window (4.0, 0.0, null) came out 2.0000000000000004 and `having avg(x) > 2` fired;
    the reference (and exact arithmetic) says 2.0."""
    import datetime as dt

    import cepdsl
    from cepdsl import interpret

    text = "stream s (ts: timestamp, x: float)\nrule r from s\n  window last 3 events\n  having avg(x) > 2\n"
    rows = pl.DataFrame(
        {"ts": [dt.datetime(2024, 1, 1)] * 4, "x": [0.6362270271430072, 4.0, 0.0, None]},
        schema={"ts": pl.Datetime("us"), "x": pl.Float64},
    )
    rules = cepdsl.compile(text)
    session = rules.session()
    got = pl.concat([session.push("s", rows)["r"], session.flush()["r"]])
    assert got["avg_x"].to_list() == [(0.6362270271430072 + 4.0) / 2]
    assert interpret.run(rules.program, {"s": rows})["r"]["avg_x"].to_list() == got["avg_x"].to_list()
