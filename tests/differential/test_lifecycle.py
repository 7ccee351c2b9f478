"""Alert lifecycle (§9.3): the engine (replay, any batching, snapshot/restore mid-stream)
≡ the reference interpreter, for generated `for`/`resolve` rules of every kind that takes them."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cepdsl
from cepdsl import interpret
from tests.differential.test_windows_filters import pieces
from tests.support.frames import assert_frames_match
from tests.support.generators import STREAM_DECL, cuts, streams

KINDS = [
    ("window tumbling 10s", "having count() >= 2"),
    ("window tumbling 1m", "having avg(x) > 2"),
    ("window sliding 30s every 10s", "having sum(n) >= 3"),
    ("window sliding 1m every 20s", ""),
    ("window sliding 20s every 15s", "having max(x) > 3"),
    # Not decomposable: the Polars window executors, not the pane kernel.
    ("window tumbling 30s", "having percentile(x, 90) > 3"),
    ("window sliding 1m every 30s", "having distinct(n) >= 2"),
    ('schedule "* * * * *" over 30s', "having count() >= 2"),
    ('schedule "*/2 * * * *" over 5m', "having count() < 3"),
    # Thresholds off the values integer data can score exactly (as in the anomaly tests):
    # the interpreter decides in exact arithmetic, the kernels in floats.
    ("anomaly zscore(x, threshold = 0.53) baseline 5 warmup 2", ""),
    ("anomaly iqr(x, multiplier = 0.5) baseline 6 warmup 3", ""),
    ("anomaly ema(x, alpha = 0.5, threshold = 1.07) warmup 2", ""),
    ("absent for 30s", ""),
    ("absent for 2m", ""),
]
FORS = ["", "for 10s", "for 30s", "for 2m"]
RESOLVES = ["", "resolve", "resolve after 10s", "resolve after 1m", 'resolve after 20s "{{ rule }} is back"']


@st.composite
def lifecycle_rules(draw: st.DrawFn) -> str:
    kind, having = draw(st.sampled_from(KINDS))
    parts = ["rule r from s"]
    if draw(st.booleans()):
        parts.append(draw(st.sampled_from(["where x > 0", 'where g != "c"', "where n is not null"])))
    if draw(st.booleans()):
        parts.append("group by g")
    parts.append(kind)
    if having:
        parts.append(having)
    f = "" if kind.startswith("absent") else draw(st.sampled_from(FORS))
    r = draw(st.sampled_from(RESOLVES if f else RESOLVES[1:]))
    parts += [p for p in (f, r) if p]
    throttle = draw(st.sampled_from(["", "", "throttle 30s", "throttle 5m"]))
    if throttle:
        parts.append(throttle)
    # Streaming with lateness must give what replay gives for in-order input (§6).
    decl = STREAM_DECL.replace("\n", draw(st.sampled_from(["", " lateness 10s", " lateness 1m"])) + "\n", 1)
    return decl + "\n  ".join(parts) + "\n"


def session_output(rules: cepdsl.Rules, batches: list[pl.DataFrame], snapshot_at: int | None) -> pl.DataFrame:
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


# Bounded in time on a loaded machine: a pytest-timeout signal inside an example would be
# taken by Hypothesis for a failure and shrunk for minutes.
@pytest.mark.timeout(900)
@settings(max_examples=80, deadline=None)
@given(st.data())
def test_lifecycle_any_batching_equals_interpreter(data: st.DataObject) -> None:
    text = data.draw(lifecycle_rules(), label="rule")
    frame = data.draw(streams(null_times=False), label="stream")
    bounds = data.draw(cuts(frame.height), label="cuts")
    snap = data.draw(st.one_of(st.none(), st.integers(0, len(bounds))), label="snapshot at batch")
    if "anomaly" in text:
        # Integer values: subnormal floats (which Hypothesis likes) make float and exact
        # scores part ways, and whether the CPU flushes them to zero depends on the process.
        frame = frame.with_columns(pl.col("x").floor())
    rules = cepdsl.compile(text)
    expected = interpret.run(rules.program, {"s": frame})["r"]
    assert_frames_match(rules.replay({"s": frame})["r"], expected, label=f"replay {text}")
    got = session_output(rules, pieces(frame, bounds), snap)
    assert_frames_match(got, expected, label=f"{text} cuts={bounds} snapshot={snap}")
