"""The window kernels' micro-batch paths (cepdsl.backends.numba.window_kernels): state cells
merged in place across batches (hash table, growth, eviction, sort at emission), no
work when no window is due, new group keys held until the key table is read, and
emissions with more merges than one buffer.  Values are small integers, so sums and
averages are exact whatever the merge order: results must equal the one-batch run and
the interpreter exactly."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest

import cepdsl
from cepdsl import interpret
from cepdsl.backends import executor_for
from cepdsl.backends.numba import window_kernels as kw
from cepdsl.backends.polars.pane_windows import PaneWindowExecutor
from cepdsl.engine import Session
from tests.support.frames import assert_frames_match

T0 = datetime(2024, 1, 1)
STREAM = "stream s (ts: timestamp, g: str, h: int, x: float, n: int)\n  lateness {lateness}\n"
AGGS = "count() >= 1 or sum(n) is null or avg(x) is null or min(x) is null or max(n) is null or std(n) is null"


def compile_rule(window: str, keys: str = "g", lateness: str = "30s") -> cepdsl.Rules:
    group = f"group by {keys}\n  " if keys else ""
    rules = cepdsl.compile(STREAM.format(lateness=lateness) + f"rule r from s\n  {group}window {window}\n  having {AGGS}\n")
    assert isinstance(executor_for(rules["r"]), kw.KernelPaneExecutor)
    return rules


def events(n: int, n_keys: int, seconds: int, seed: int, disorder_s: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    secs = np.sort(rng.integers(0, seconds, n))
    if disorder_s:  # rows up to `disorder_s` late, within the stream's lateness
        secs = np.maximum(secs - rng.integers(0, disorder_s + 1, n) * (rng.random(n) < 0.3), 0)
    keys = [f"host-{i}" if i % 2 else f"a-long-host-name-{i:05d}" for i in rng.integers(0, n_keys, n)]
    x = rng.integers(-50, 50, n).astype(float)
    return pl.DataFrame(
        {
            "ts": [T0 + timedelta(seconds=int(s), microseconds=int(u)) for s, u in zip(secs, rng.integers(0, 10**6, n), strict=True)],
            "g": [None if i % 37 == 0 else k for i, k in enumerate(keys)],
            "h": rng.integers(0, 3, n),
            "x": [None if i % 11 == 0 else v for i, v in enumerate(x)],
            "n": rng.integers(0, 1000, n),
        },
        schema={"ts": pl.Datetime("us"), "g": pl.String, "h": pl.Int64, "x": pl.Float64, "n": pl.Int64},
    )


def pushed(rules: cepdsl.Rules, frame: pl.DataFrame, size: int) -> tuple[pl.DataFrame, list[int]]:
    session = rules.session()
    outs = [session.push("s", frame.slice(i, size))["r"] for i in range(0, frame.height, size)]
    outs.append(session.flush()["r"])
    return pl.concat(outs), [o.height for o in outs]


def exact(frame: pl.DataFrame) -> pl.DataFrame:
    # std is a float of a float: compare it to 1e-9 elsewhere, everything else exactly.
    return frame.drop("std_n")


@pytest.mark.parametrize("adopt_min", [1, kw._ADOPT_MIN], ids=["adopt", "merge"])
def test_micro_batches_equal_one_batch_and_the_interpreter(adopt_min: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hundreds of keys over many panes in batches of 37 rows, disorder within the
    lateness: the state outgrows its first arrays and table and is evicted at each
    emission.  `adopt`: a batch in pane order into an empty state becomes the state as
    it is (big batches only, by default)."""
    monkeypatch.setattr(kw, "_ADOPT_MIN", adopt_min)
    frame = events(4_000, n_keys=300, seconds=600, seed=1, disorder_s=20)
    for window in ("sliding 1m every 20s", "tumbling 30s", "sliding 50s every 20s"):
        rules = compile_rule(window)
        one, _ = pushed(rules, frame, frame.height)
        micro, heights = pushed(rules, frame, 37)
        assert sum(heights[:-1]) > 0 and heights.count(0) > 10  # emitted along the way, and often nothing due
        assert exact(micro).equals(exact(one)), window
        expected = interpret.run(rules.program, {"s": frame})["r"]
        assert exact(micro).equals(exact(expected)), window
        assert np.allclose(micro["std_n"].fill_null(-1).to_numpy(), expected["std_n"].fill_null(-1).to_numpy(), rtol=1e-9)
        # Emitted panes leave the state: only cells of windows still to come are kept.
        ex = executor_for(rules["r"])
        s = Session(rules.program, executors=lambda _r, ex=ex: ex)
        for i in range(0, frame.height, 37):
            s.push("s", frame.slice(i, 37))
        assert isinstance(ex, kw.KernelPaneExecutor) and ex.emitted_us is not None
        pane_start = ex.cells.pane * ex.pane
        assert 0 < len(pane_start) and ((pane_start // ex.every) * ex.every + ex.size > ex.emitted_us).all()


@pytest.mark.parametrize("adopt_min", [1, kw._ADOPT_MIN], ids=["adopt", "merge"])
def test_late_rows_into_open_windows_equal_the_polars_pane_path(adopt_min: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows past the lateness go into windows still open: cells of older panes arrive
    after newer ones, so the state is out of pane order at emission and must be sorted."""
    monkeypatch.setattr(kw, "_ADOPT_MIN", adopt_min)
    frame = events(4_000, n_keys=300, seconds=600, seed=4, disorder_s=50)
    ts = frame["ts"].dt.epoch("us").to_numpy()
    watermarks = np.maximum.accumulate([ts[i : i + 37].max() for i in range(0, len(ts), 37)]) - 30_000_000
    behind = sum(int((ts[i + 37 : i + 74] < wm).sum()) for i, wm in zip(range(0, len(ts), 37), watermarks, strict=False))
    assert behind > 100  # rows behind the watermark: they take the late path
    for window in ("sliding 1m every 20s", "tumbling 30s"):
        rules = compile_rule(window)
        w = rules["r"].window
        assert w is not None
        every = w.every_us or w.size_us
        outs = []
        for make in (lambda r: kw.KernelPaneExecutor(r, w.size_us, every), lambda r: PaneWindowExecutor(r, w.size_us, every)):
            s = Session(rules.program, executors=make)
            parts = [s.push("s", frame.slice(i, 37))["r"] for i in range(0, frame.height, 37)]
            outs.append(pl.concat([*parts, s.flush()["r"]]))
        assert_frames_match(outs[0], outs[1], ordered=True, label=window)


def test_no_due_window_returns_the_empty_frame_and_keeps_counting() -> None:
    rules = compile_rule("tumbling 1m", lateness="0s")
    s = rules.session()
    mk = lambda secs, g, n: pl.DataFrame(  # noqa: E731
        {"ts": [T0 + timedelta(seconds=x) for x in secs], "g": g, "h": [1] * len(secs), "x": [1.0] * len(secs), "n": n}
    )
    for i in range(5):  # all in [0, 60s): nothing due
        out = s.push("s", mk([10 * i, 10 * i + 1], ["a", "b"], [i, 10 * i]))["r"]
        assert out.height == 0 and out.schema == rules["r"].output_schema
    out = s.push("s", mk([61], ["b"], [7]))["r"]  # closes [0, 60s)
    assert out.select("g", "count", "sum_n", "max_n").rows() == [("a", 5, 10, 4), ("b", 5, 100, 40)]
    assert s.push("s", mk([62], ["a"], [1]))["r"].height == 0
    assert s.flush()["r"].select("g", "count", "sum_n").rows() == [("a", 1, 1), ("b", 1, 7)]


def test_snapshot_mid_stream_resumes_exactly() -> None:
    """Keys still pending (not yet in the key table) and cells in merge order go into the
    snapshot; a session resumed from it and the straight one emit the same records."""
    frame = events(3_000, n_keys=200, seconds=400, seed=2, disorder_s=10)
    rules = compile_rule("sliding 1m every 20s", keys="g, h")
    straight, _ = pushed(rules, frame, 50)
    s = rules.session()
    outs = [s.push("s", frame.slice(i, 50))["r"] for i in range(0, 1_500, 50)]
    resumed = rules.session()
    resumed.restore(s.snapshot())
    outs += [resumed.push("s", frame.slice(i, 50))["r"] for i in range(1_500, frame.height, 50)]
    outs.append(resumed.flush()["r"])
    assert pl.concat(outs).equals(straight)


def test_many_and_few_new_keys_per_batch_number_alike() -> None:
    """More new keys in a batch than are read one by one go through a Polars gather;
    either way a key keeps its slot and the table lists keys in slot order."""
    codes = kw.KeyCodes({"g": pl.String, "h": pl.Int64})
    seen: dict[tuple[object, object], int] = {}
    rng = np.random.default_rng(3)
    for size in (5, kw._SCALARS_MAX + 50, 3, 2_000, 1):
        g = [None if v == 0 else f"k{v}" for v in rng.integers(0, 700, size)]
        h = [None if v == 0 else int(v) for v in rng.integers(0, 3, size)]
        frame = pl.DataFrame({"g": g, "h": h}, schema={"g": pl.String, "h": pl.Int64})
        if size == 3:
            frame = frame.with_columns(pl.col("g").cast(pl.Categorical))
        got = codes.codes(frame).tolist()
        for key, slot in zip(zip(g, h, strict=True), got, strict=True):
            assert seen.setdefault(key, len(seen)) == slot
        assert len(codes) == len(seen)
    assert codes.table.rows() == list(seen)
    rank = codes.order()
    by_rank = sorted(seen, key=lambda k: rank[seen[k]])
    assert by_rank == sorted(seen, key=lambda k: (k[0] is not None, k[0] or "", k[1] is not None, k[1] or 0))


def test_emission_with_more_merges_than_one_buffer() -> None:
    """3,000 keys in every pane of a 3-pane sliding window: one emission merges each
    cell into 3 windows, past the merge buffer (4,096 pairs)."""
    n_keys = 3_000
    secs = [p * 20 + 1 for p in range(4) for _ in range(n_keys)]
    frame = pl.DataFrame(
        {
            "ts": [T0 + timedelta(seconds=s) for s in secs],
            "g": [f"k{i}" for _ in range(4) for i in range(n_keys)],
            "h": [1] * len(secs),
            "x": [float(i % 7) for i in range(len(secs))],
            "n": list(range(len(secs))),
        }
    )
    rules = compile_rule("sliding 1m every 20s")
    got, _ = pushed(rules, frame, frame.height)
    expected = interpret.run(rules.program, {"s": frame})["r"]
    assert got.height == expected.height > 4_096
    assert exact(got).equals(exact(expected))


@pytest.mark.parametrize(
    "having",
    ["sum(n) > 2000 and count() >= 3", "g != \"host-3\" and sum(n) > 2000", "count() < 0", "avg(x) > 5 or std(n) is null"],
    ids=["aggregates", "keys", "none-pass", "nulls"],
)
def test_selective_having_keeps_the_right_windows_and_keys(having: str) -> None:
    """`having` over aggregates only runs before the keys are joined on (then the keys
    of the passing windows must follow them); over keys, after."""
    frame = events(3_000, n_keys=40, seconds=300, seed=5)
    text = STREAM.format(lateness="30s") + f"rule r from s\n  group by g\n  window sliding 1m every 20s\n  having {having}\n"
    rules = cepdsl.compile(text)
    ex = executor_for(rules["r"])
    assert isinstance(ex, kw.KernelPaneExecutor) and bool(ex._having_on_aggregates) == ("g " not in having)
    got, _ = pushed(rules, frame, 101)
    expected = interpret.run(rules.program, {"s": frame})["r"]
    assert_frames_match(got, expected, ordered=True, label=having)
    if having != "count() < 0":
        assert 0 < got.height < interpret.run(compile_rule("sliding 1m every 20s").program, {"s": frame})["r"].height
