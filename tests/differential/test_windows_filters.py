"""Engine (Session over any batching, replay, snapshot/restore) ≡ the reference interpreter,
for generated filter, window, schedule and throttle rules on generated streams."""

from __future__ import annotations

import tempfile
from pathlib import Path

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

import cepdsl
from cepdsl import interpret
from cepdsl.backends.polars import rowsets
from tests.support.frames import assert_frames_match
from tests.support.generators import cuts, streams, window_rules


def pieces(frame: pl.DataFrame, bounds: list[int]) -> list[pl.DataFrame]:
    edges = [0, *bounds, frame.height]
    return [frame[a:b] for a, b in zip(edges, edges[1:], strict=False) if b > a]


def session_output(rules: cepdsl.Rules, batches: list[pl.DataFrame], snapshot_at: int | None = None) -> pl.DataFrame:
    session = rules.session()
    outs = []
    for i, b in enumerate(batches):
        if snapshot_at == i:
            snap = session.snapshot()
            session = rules.session()
            session.restore(snap)
        outs.append(session.push("s", b)["r"])
    outs.append(session.flush()["r"])
    return pl.concat(outs)


@given(text=window_rules(), data=streams(), shuffle_seed=st.one_of(st.none(), st.integers(0, 1000)))
def test_replay_equals_interpreter(text: str, data: pl.DataFrame, shuffle_seed: int | None) -> None:
    rules = cepdsl.compile(text)
    if shuffle_seed is not None:
        # Replay orders by event time whatever the input order (ties: input order), as the
        # interpreter does: both see the same shuffled input.
        data = data.sample(fraction=1.0, shuffle=True, seed=shuffle_seed)
    expected = interpret.run(rules.program, {"s": data})["r"]
    got = rules.replay({"s": data})["r"]
    assert_frames_match(got, expected, ordered=True, label=text)


@given(st.data())
def test_any_batching_equals_interpreter(data: st.DataObject) -> None:
    text = data.draw(window_rules(), label="rule")
    frame = data.draw(streams(), label="stream")
    bounds = data.draw(cuts(frame.height), label="cuts")
    rules = cepdsl.compile(text)
    expected = interpret.run(rules.program, {"s": frame})["r"]
    got = session_output(rules, pieces(frame, bounds))
    assert_frames_match(got, expected, ordered=True, label=f"{text} cuts={bounds}")


@given(st.data())
def test_big_batch_filter_path_equals_interpreter(data: st.DataObject) -> None:
    """The lazy-`filter` way of finding a rule's rows (rowsets.py, for big batches), forced
    on the small generated batches."""
    text = data.draw(window_rules(), label="rule")
    frame = data.draw(streams(), label="stream")
    bounds = data.draw(cuts(frame.height), label="cuts")
    rules = cepdsl.compile(text)
    expected = interpret.run(rules.program, {"s": frame})["r"]
    saved = rowsets._FILTER_ROWS
    rowsets._FILTER_ROWS = 0
    try:
        got = session_output(rules, pieces(frame, bounds))
        replayed = rules.replay({"s": frame})["r"]
    finally:
        rowsets._FILTER_ROWS = saved
    assert_frames_match(got, expected, ordered=True, label=f"{text} cuts={bounds}")
    assert_frames_match(replayed, expected, ordered=True, label=text)


@given(st.data())
def test_snapshot_restore_mid_stream_changes_nothing(data: st.DataObject) -> None:
    text = data.draw(window_rules(), label="rule")
    frame = data.draw(streams(max_rows=40), label="stream")
    bounds = data.draw(cuts(frame.height), label="cuts")
    batches = pieces(frame, bounds)
    at = data.draw(st.integers(0, max(len(batches) - 1, 0)), label="snapshot before batch")
    rules = cepdsl.compile(text)
    straight = session_output(rules, batches)
    resumed = session_output(rules, batches, snapshot_at=at)
    assert_frames_match(resumed, straight, ordered=True, label=f"{text} cuts={bounds} at={at}")


@given(st.data())
def test_disorder_within_lateness_is_put_back_in_order(data: st.DataObject) -> None:
    """Rows arriving out of order by less than the stream's lateness are never late, and the
    matches are those of the same rows in (time, arrival) order, whatever the batching."""
    text = data.draw(window_rules(), label="rule").replace("n: int)\n", "n: int)\n  lateness 30s\n")
    frame = data.draw(streams(null_times=False), label="stream")
    jitter = data.draw(st.lists(st.integers(0, 29_999_999), min_size=frame.height, max_size=frame.height))
    arrival = (
        frame.with_columns((pl.col("ts").dt.epoch("us") + pl.Series(jitter, dtype=pl.Int64)).alias("__due"))
        .sort("__due", maintain_order=True)
        .drop("__due")
    )
    bounds = data.draw(cuts(arrival.height), label="cuts")
    rules = cepdsl.compile(text)
    expected = interpret.run(rules.program, {"s": arrival})["r"]
    session = rules.session()
    outs = [session.push("s", b)["r"] for b in pieces(arrival, bounds)] + [session.flush()["r"]]
    assert session.dead_letters().height == 0
    assert all(v["late"] == 0 for v in session.stats().values())
    assert_frames_match(pl.concat(outs), expected, ordered=True, label=f"{text} cuts={bounds}")


@settings(max_examples=15)
@given(st.data())
def test_parquet_replay_driver_equals_interpreter_on_unsorted_row_groups(data: st.DataObject) -> None:
    """`cep replay`'s driver: shuffled rows, small row groups and small chunks, so rows are
    released only as the footer statistics allow — still the interpreter's matches."""
    from runtime.replay import replay

    text = data.draw(window_rules(), label="rule")
    frame = data.draw(streams(), label="stream")
    seed = data.draw(st.integers(0, 1000), label="shuffle")
    group = data.draw(st.sampled_from([3, 8, 50]), label="row group size")
    shuffled = frame.sample(fraction=1.0, shuffle=True, seed=seed) if data.draw(st.booleans()) else frame
    rules = cepdsl.compile(text)
    expected = interpret.run(rules.program, {"s": shuffled})["r"]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.parquet"
        shuffled.write_parquet(path, row_group_size=group)
        summary = replay(rules.program, {"s": [path]}, Path(tmp) / "out", batch_rows=group + 1)
        got = pl.read_parquet(Path(tmp) / "out" / "r.parquet")
    assert summary.rules[0].late == 0
    assert_frames_match(got, expected, ordered=True, label=text)
