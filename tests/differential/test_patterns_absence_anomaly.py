"""Numba pattern/absence/anomaly executors ≡ the reference interpreter, on generated
streams (nulls, ties, duplicates, gaps) and generated patterns, across random
micro-batch splits and a snapshot/restore in the middle."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
from hypothesis import given
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

sys.path.insert(0, str(Path(__file__).parents[1] / "backends" / "numba"))
from cepdsl.interpret import run  # noqa: E402

from harness import rule_of, run_batches  # noqa: E402

T0 = datetime(2024, 1, 1)
STREAM = "stream s (ts: timestamp, g: str, k: str, v: float, n: int)\n"


@st.composite
def streams(draw: st.DrawFn, max_rows: int = 40, values: st.SearchStrategy[float] | None = None) -> pl.DataFrame:
    n = draw(st.integers(0, max_rows))
    # Small time steps give ties and duplicates; an occasional big jump gives gaps.
    steps = draw(st.lists(st.sampled_from([0, 0, 1, 1, 2, 3, 5, 30]), min_size=n, max_size=n))
    t, ts = 0, []
    for s in steps:
        t += s
        ts.append(T0 + timedelta(seconds=t))
    return pl.DataFrame(
        {
            "ts": ts,
            "g": draw(st.lists(st.sampled_from(["a", "b", "c", None]), min_size=n, max_size=n)),
            "k": draw(st.lists(st.sampled_from(["x", "y", "z", None]), min_size=n, max_size=n)),
            "v": draw(
                st.lists(st.one_of(st.none(), values if values is not None else st.integers(-3, 8).map(float)), min_size=n, max_size=n)
            ),
            "n": draw(st.lists(st.one_of(st.none(), st.integers(0, 5)), min_size=n, max_size=n)),
        },
        schema={"ts": pl.Datetime("us"), "g": pl.String, "k": pl.String, "v": pl.Float64, "n": pl.Int64},
    )


def _regex(depth: int) -> st.SearchStrategy[str]:
    step = st.sampled_from(["A", "B", "C"])
    if depth == 0:
        return step
    sub = _regex(depth - 1)
    quant = st.sampled_from(["", "", "?", "*", "+", "{2}", "{1,}", "{0,2}", "{1,3}"])
    return st.one_of(
        step,
        st.builds(lambda a, q: f"({a}){q}", sub, quant),
        st.builds(lambda a, b: f"{a} {b}", sub, sub),
        st.builds(lambda a, b: f"({a} | {b})", sub, sub),
    )


DEFINES = {
    "A": ["k == \"x\"", "v > 2", "k in [\"x\", \"y\"]"],
    "B": ["k == \"y\" or v < 0", "n is null", "v >= n"],
    "C": ["k != \"x\"", "v % 2 == 0", None],
}


@st.composite
def pattern_rules(draw: st.DrawFn) -> str:
    regex = draw(_regex(3))
    used = [s for s in ("A", "B", "C") if s in regex]
    defines = []
    for s in used:
        cond = draw(st.sampled_from(DEFINES[s]))
        if cond is not None:
            defines.append(f"{s} as {cond}")
    within = draw(st.sampled_from(["", " within 1s", " within 3s", " within 10s", " within 1m"]))
    group = draw(st.sampled_from(["", "group by g\n"]))
    where = draw(st.sampled_from(["", "where k is not null or v > 0\n"]))
    text = f"rule p\n from s\n {where}{group} pattern {regex}{within}\n"
    if defines:
        text += " define " + ",\n ".join(defines) + "\n"
    return STREAM + text


def _cuts(draw: st.DrawFn, n: int) -> list[int]:
    return draw(st.lists(st.integers(0, max(n, 1)), max_size=4))


def _check(source: str, frame: pl.DataFrame, cuts: list[int], snapshot_at: int | None, exact: bool = True) -> None:
    program, rule = rule_of(source)
    want = run(program, {"s": frame})[rule.id]
    got = run_batches(rule, frame, cuts, snapshot_at=snapshot_at)
    if exact:
        assert_frame_equal(got, want)
    else:
        assert_frame_equal(got, want, check_exact=False, rel_tol=1e-9, abs_tol=1e-9)


@given(source=pattern_rules(), frame=streams(), data=st.data())
def test_patterns_equal_interpreter(source: str, frame: pl.DataFrame, data: st.DataObject) -> None:
    cuts = _cuts(data.draw, frame.height)
    snap = data.draw(st.one_of(st.none(), st.integers(1, 3)))
    _check(source, frame, cuts, snap)


@given(
    frame=streams(),
    d=st.sampled_from(["1s", "2s", "5s", "1m"]),
    group=st.sampled_from(["", "group by g\n", "group by g, k\n"]),
    lateness=st.sampled_from(["", " lateness 3s"]),
    data=st.data(),
)
def test_absence_equal_interpreter(frame: pl.DataFrame, d: str, group: str, lateness: str, data: st.DataObject) -> None:
    source = STREAM.replace("\n", f"{lateness}\n") + f"rule q\n from s\n where k != \"z\"\n {group} absent for {d}\n"
    _check(source, frame, _cuts(data.draw, frame.height), data.draw(st.one_of(st.none(), st.integers(1, 3))))


@given(
    frame=streams(max_rows=60),
    # Thresholds are odd values: with small integer data a score can land exactly on a
    # round threshold, where the last bit decides (the oracle sums exactly, we do not).
    method=st.sampled_from(
        [
            "zscore(v, threshold = 1.07)",
            "zscore(n, threshold = 0.53)",
            "iqr(v, multiplier = 0.5)",
            "iqr(n)",
            "ema(v, alpha = 0.5, threshold = 1.07)",
            "ema(n, threshold = 0.83)",
        ]
    ),
    baseline=st.sampled_from(["", " baseline 3", " baseline 5"]),
    warmup=st.sampled_from([" warmup 1", " warmup 2", " warmup 3"]),
    group=st.sampled_from(["", "group by g\n"]),
    data=st.data(),
)
def test_anomaly_equal_interpreter(
    frame: pl.DataFrame, method: str, baseline: str, warmup: str, group: str, data: st.DataObject
) -> None:
    source = STREAM + f"rule r\n from s\n {group} anomaly {method}{baseline}{warmup}\n"
    _check(source, frame, _cuts(data.draw, frame.height), data.draw(st.one_of(st.none(), st.integers(1, 3))), exact=False)


#: Values at the ends of float64: subnormals (their squares and differences underflow to
#: 0), huge values (squares overflow to inf; ±1e308 differences too), with ordinary ones.
EXTREMES = [0.0, -0.0, 5e-324, -5e-324, 1e-310, -3e-310, 2.2250738585072014e-308, 1.0, -3.0,
            1e200, -1e200, 1e300, -1e300, 1e308, -1e308]  # fmt: skip


@given(
    frame=streams(max_rows=40, values=st.sampled_from(EXTREMES)),
    method=st.sampled_from(
        ["zscore(v, threshold = 1.07)", "iqr(v, multiplier = 0.5)", "iqr(v)", "ema(v, alpha = 0.5, threshold = 1.07)"]
    ),
    baseline=st.sampled_from(["", " baseline 3", " baseline 5"]),
    warmup=st.sampled_from([" warmup 1", " warmup 2"]),
    group=st.sampled_from(["", "group by g\n"]),
    data=st.data(),
)
def test_anomaly_on_subnormal_and_huge_values_equal_interpreter(
    frame: pl.DataFrame, method: str, baseline: str, warmup: str, group: str, data: st.DataObject
) -> None:
    """The variance is a float64 in both: 0 when it underflows (any value but the mean
    scores inf), inf when it overflows (every finite value scores 0); no division by a
    zero that was a subnormal, no NaN from overflowed sums."""
    source = STREAM + f"rule r\n from s\n {group} anomaly {method}{baseline}{warmup}\n"
    _check(source, frame, _cuts(data.draw, frame.height), data.draw(st.one_of(st.none(), st.integers(1, 3))), exact=False)
