"""The Numba pane kernels (cepdsl.backends.numba.window_kernels) against the reference
interpreter and the Polars pane path: any batching, Categorical/Enum keys, snapshots,
late rows into still-open windows, and hash collisions."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

import cepdsl
from cepdsl import interpret
from cepdsl.backends import executor_for
from cepdsl.backends.numba import window_kernels as kw
from cepdsl.backends.polars.pane_windows import PaneWindowExecutor
from cepdsl.engine import Session
from tests.support.frames import assert_frames_match

EXAMPLES = 25 if os.environ.get("CI") else 60
T0 = datetime(2024, 1, 1)
STREAM = "stream s (ts: timestamp, g: str, h: int, x: float, n: int)\n"
KERNEL_AGGS = ["count()", "count(x)", "sum(x)", "avg(x)", "min(x)", "max(x)", "std(x)", "sum(n)", "min(n)",
               "max(n)", "avg(n)", "std(n)", "count(g)", "min(ts)", "max(ts)"]  # fmt: skip
WINDOWS = ["tumbling 10s", "tumbling 1m", "sliding 30s every 10s", "sliding 1m every 20s", "sliding 50s every 20s"]


def rule_text(window: str, aggs: list[str], keys: str) -> str:
    having = " or ".join(f"{a} is null or {a} is not null" for a in aggs)
    group = f"group by {keys}\n  " if keys else ""
    return STREAM + f"rule r from s\n  {group}window {window}\n  having {having}\n"


@st.composite
def frames(draw: st.DrawFn, max_rows: int = 50) -> pl.DataFrame:
    n = draw(st.integers(0, max_rows))
    steps = draw(st.lists(st.sampled_from([0, 0, 1, 3, 10, 20, 59, 60, 400]), min_size=n, max_size=n))
    t, ts = draw(st.sampled_from([0, 1, 10])), []
    for s in steps:
        t += s
        ts.append(T0 + timedelta(seconds=t))
    return pl.DataFrame(
        {
            "ts": ts,
            "g": draw(st.lists(st.sampled_from(["a", "b", "c", None]), min_size=n, max_size=n)),
            "h": draw(st.lists(st.sampled_from([1, 2, None]), min_size=n, max_size=n)),
            "x": draw(st.lists(st.one_of(st.none(), st.floats(-5, 5), st.sampled_from([0.0, 1.5])), min_size=n, max_size=n)),
            "n": draw(st.lists(st.one_of(st.none(), st.integers(-3, 9)), min_size=n, max_size=n)),
        },
        schema={"ts": pl.Datetime("us"), "g": pl.String, "h": pl.Int64, "x": pl.Float64, "n": pl.Int64},
    )


def run_batches(rules: cepdsl.Rules, batches: list[pl.DataFrame]) -> pl.DataFrame:
    session = rules.session()
    outs = [session.push("s", b)["r"] for b in batches]
    outs.append(session.flush()["r"])
    return pl.concat(outs)


def split(frame: pl.DataFrame, cuts: list[int]) -> list[pl.DataFrame]:
    edges = [0, *sorted(set(cuts)), frame.height]
    return [frame[a:b] for a, b in zip(edges, edges[1:], strict=False) if b > a]


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    data=st.data(),
    window=st.sampled_from(WINDOWS),
    aggs=st.lists(st.sampled_from(KERNEL_AGGS), min_size=1, max_size=4, unique=True),
    keys=st.sampled_from(["", "g", "g, h"]),
)
def test_kernels_equal_interpreter_for_any_batching(data: st.DataObject, window: str, aggs: list[str], keys: str) -> None:
    frame = data.draw(frames(), label="frame")
    cuts = data.draw(st.lists(st.integers(1, max(frame.height, 1)), max_size=5), label="cuts")
    rules = cepdsl.compile(rule_text(window, aggs, keys))
    assert isinstance(executor_for(rules["r"]), kw.KernelPaneExecutor)
    expected = interpret.run(rules.program, {"s": frame})["r"]
    got = run_batches(rules, split(frame, cuts))
    assert_frames_match(got, expected, ordered=True, label=rules["r"].having and str(aggs))
    # Dictionary-encoded keys (Enum batches mixed with String ones) give the same matches.
    enc = frame.with_columns(pl.col("g").cast(pl.Enum(["c", "b", "a"])))
    mixed = [b.with_columns(pl.col("g").cast(pl.String)) if i % 2 else b for i, b in enumerate(split(enc, cuts))]
    assert_frames_match(run_batches(rules, mixed), expected, ordered=True, label=f"enum {aggs}")


@settings(max_examples=EXAMPLES, deadline=None)
@given(data=st.data(), window=st.sampled_from(WINDOWS))
def test_kernels_equal_polars_pane_path(data: st.DataObject, window: str) -> None:
    frame = data.draw(frames(), label="frame")
    text = rule_text(window, ["count()", "avg(x)", "std(x)", "sum(n)", "max(n)"], "g")
    rules = cepdsl.compile(text)
    rule = rules["r"]
    w = rule.window
    assert w is not None
    every = w.every_us or w.size_us
    expected = Session(rules.program, executors=lambda r: PaneWindowExecutor(r, w.size_us, every))  # type: ignore[arg-type]
    got = Session(rules.program, executors=lambda r: kw.KernelPaneExecutor(r, w.size_us, every))  # type: ignore[arg-type]
    a = pl.concat([got.push("s", frame)["r"], got.flush()["r"]])
    b = pl.concat([expected.push("s", frame)["r"], expected.flush()["r"]])
    assert_frames_match(a, b, ordered=True)


def test_worked_example_sliding() -> None:
    """Hand-worked: 1m every 30s windows over two groups, every aggregate family."""
    rows = pl.DataFrame(
        {
            "ts": [T0 + timedelta(seconds=s) for s in (5, 20, 40, 70)],
            "g": ["a", "a", "b", "a"],
            "h": [1, 1, 1, 1],
            "x": [1.0, 3.0, 10.0, None],
            "n": [4, None, 7, 1],
        }
    )
    text = rule_text("sliding 1m every 30s", ["count()", "avg(x)", "std(x)", "sum(n)"], "g")
    out = cepdsl.compile(text).replay({"s": rows})["r"]
    got = out.select("g", pl.col("window_start").dt.second().alias("s0"), "count", "avg_x", "std_x", "sum_n").rows()
    # windows [-30s, 30s), [0, 60s), [30s, 90s), [60s, 120s)
    sd = float(np.std([1.0, 3.0], ddof=1))
    assert got[0][:2] == ("a", 30) and got[0][2:] == (2, 2.0, sd, 4)  # [-30s, 30s): window_start second 30 of prev minute
    assert ("a", 0, 2, 2.0, sd, 4) in got
    assert ("b", 0, 1, 10.0, None, 7) in got
    assert ("a", 30, 1, None, None, 1) in got  # [30s, 90s) for a: only the 70s row, x null
    assert ("b", 30, 1, 10.0, None, 7) in got
    assert ("a", 0, 1, None, None, 1) in got[-1:]  # [60s, 120s): the last window
    assert out.height == 6  # a: 4 windows, b: 2


def test_late_rows_go_into_open_windows_and_refused_after() -> None:
    text = rule_text("tumbling 1m", ["count()", "sum(n)"], "g")
    rules = cepdsl.compile(text.replace("n: int)\n", "n: int)\n  lateness 0s\n"))
    s = rules.session()
    mk = lambda secs, n: pl.DataFrame(  # noqa: E731
        {
            "ts": [T0 + timedelta(seconds=x) for x in secs],
            "g": ["a"] * len(secs),
            "h": [1] * len(secs),
            "x": [1.0] * len(secs),
            "n": n,
        }  # fmt: skip
    )
    first = s.push("s", mk([10, 70], [1, 2]))["r"]  # window [0, 60s) fires at watermark 70s
    assert first.select("count", "sum_n").rows() == [(1, 1)]
    s.push("s", mk([30], [5]))  # late for [0, 60s): refused, counted
    s.push("s", mk([65], [7]))  # behind the watermark but [60s, 120s) is open: taken
    out = s.flush()["r"]
    assert out.select("count", "sum_n").rows() == [(2, 9)]
    assert s.stats(state_size=False)["r"]["late"] == 1


def test_snapshot_restore_keeps_cells_and_keys() -> None:
    rules = cepdsl.compile(rule_text("sliding 1m every 20s", ["count()", "avg(n)"], "g"))
    rows = pl.DataFrame(
        {
            "ts": [T0 + timedelta(seconds=s) for s in range(0, 300, 7)],
            "g": [["a", "b", None][i % 3] for i in range(0, 300, 7)],
            "h": [1] * 43,
            "x": [0.5] * 43,
            "n": list(range(43)),
        }
    )
    straight = run_batches(rules, [rows[:20], rows[20:]])
    s = rules.session()
    part = [s.push("s", rows[:20])["r"]]
    resumed = rules.session()
    resumed.restore(s.snapshot())
    part += [resumed.push("s", rows[20:])["r"], resumed.flush()["r"]]
    assert_frames_match(pl.concat(part), straight, ordered=True)


def test_long_keys_told_apart_by_their_bytes_across_batches() -> None:
    # Keys over 12 bytes with equal length and prefix differ only in bytes the first
    # batch's buffers held: codes must stay exact after those buffers are gone.
    a, b = "host-" + "x" * 30 + "1", "host-" + "x" * 30 + "2"
    codes = kw.KeyCodes({"g": pl.String})
    assert codes.codes(pl.DataFrame({"g": [a, "b", a, None, "c"]})).tolist() == [0, 1, 0, 2, 3]
    assert codes.codes(pl.DataFrame({"g": ["c", b, None, a, b]})).tolist() == [3, 4, 2, 0, 4]
    assert codes.table["g"].to_list() == [a, "b", None, "c", b]


def test_codes_stable_across_dtypes_and_batches() -> None:
    codes = kw.KeyCodes({"g": pl.String, "h": pl.Int64})
    a = codes.codes(pl.DataFrame({"g": ["x", "y", None], "h": [1, 1, 2]}))
    b = codes.codes(pl.DataFrame({"g": pl.Series(["y", None, "z"]).cast(pl.Categorical), "h": [1, 2, 1]}))
    c = codes.codes(pl.DataFrame({"g": pl.Series(["z", "x"]).cast(pl.Enum(["z", "x"])), "h": [1, 1]}))
    assert a.tolist() == [0, 1, 2] and b.tolist() == [1, 2, 3] and c.tolist() == [3, 0]
    assert codes.order().tolist() == [1, 2, 0, 3]  # (null, 2) first, then x, y, z


def test_rules_with_values_stay_on_polars_path() -> None:
    for aggs in (["percentile(x, 90)"], ["distinct(g)"], ["min(g)"], ["sum(x)", "distinct(n)"]):
        rule = cepdsl.compile(rule_text("tumbling 1m", aggs, "g"))["r"]
        assert kw.kernel_fields(rule) is None
        assert isinstance(executor_for(rule), PaneWindowExecutor)
