"""Joins (§9.2): the engine (any batching; String, Enum and Categorical keys; the lazy
filter path of big batches) ≡ the reference interpreter, on generated tables and streams."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

import cepdsl
from cepdsl import interpret
from cepdsl.backends.polars import rowsets
from cepdsl.engine import session as session_module
from tests.differential.test_windows_filters import pieces
from tests.support.frames import assert_frames_match
from tests.support.generators import STREAM_DECL, cuts, streams

TABLES = """table t (g: str, region: str, w: float, k: int) key g from "t.csv"
table nt (k: float, label: str) key k from "nt.csv"
"""

JOINS = [
    "join t on g",
    "join t as a on g",
    "join t on upper(g)",
    "join nt on n",
    "join t on g\n  join nt on t.k",
    "join nt on x\n  join t as a on g",
]
WHERES = [
    "",
    "t.region == \"eu\"",
    "t.w > 1 or t.w is null",
    "nt.label is not null",
    "a.k >= 1",
    "x > 1 and t.k != 2",
    "n > 0 and t.region == \"eu\" and x is not null",
    "a.w > 0.5 and g != \"b\"",
]
SHAPES = [
    "",
    "group by g\n  window tumbling 1m\n  having count() >= 1",
    "group by t.region\n  window sliding 1m every 20s",
    "group by g\n  anomaly zscore(n) baseline 5 warmup 2",
    "group by g\n  pattern a b within 1m\n  define a as n > 1, b as x > 1",
    "group by g\n  absent for 30s",
]


@st.composite
def join_rules(draw: st.DrawFn) -> str:
    join = draw(st.sampled_from(JOINS))
    prefixes = {w.split()[1] if " as " not in w else w.split()[3] for w in join.split("\n  ")}
    wheres = [w for w in WHERES if not w or w.split(".")[0].split()[-1] in prefixes]
    where = draw(st.sampled_from(wheres))
    shapes = [s for s in SHAPES if "t.region" not in s or "t" in prefixes]
    shape = draw(st.sampled_from(shapes))
    parts = ["rule r from s", join]
    if where:
        parts.append(f"where {where}")
    if shape:
        parts.append(shape)
    return STREAM_DECL + TABLES + "\n  ".join(parts) + "\n"


@st.composite
def tables(draw: st.DrawFn) -> dict[str, pl.DataFrame]:
    keys = draw(st.lists(st.sampled_from(["a", "b", "c", "d", "A", "B"]), unique=True, max_size=6))
    t = pl.DataFrame(
        {
            "g": keys,
            "region": draw(st.lists(st.sampled_from(["eu", "us", None]), min_size=len(keys), max_size=len(keys))),
            "w": draw(st.lists(st.one_of(st.none(), st.floats(0, 3)), min_size=len(keys), max_size=len(keys))),
            "k": draw(st.lists(st.one_of(st.none(), st.integers(0, 3)), min_size=len(keys), max_size=len(keys))),
        },
        schema={"g": pl.String, "region": pl.String, "w": pl.Float64, "k": pl.Int64},
    )
    nkeys = draw(st.lists(st.sampled_from([0.0, 1.0, 2.0, 2.5, 3.0, -1.0]), unique=True, max_size=5))
    nt = pl.DataFrame({"k": nkeys, "label": [f"l{i}" for i in range(len(nkeys))]}, schema={"k": pl.Float64, "label": pl.String})
    return {"t": t, "nt": nt}


def _encode(frame: pl.DataFrame, how: str) -> pl.DataFrame:
    if how == "enum":
        return frame.with_columns(pl.col("g").cast(pl.Enum(["a", "b", "c", "zz"])))
    if how == "categorical":
        return frame.with_columns(pl.col("g").cast(pl.Categorical))
    return frame


@given(st.data())
def test_joins_under_any_batching_equal_interpreter(data: st.DataObject) -> None:
    text = data.draw(join_rules(), label="rule")
    tabs = data.draw(tables(), label="tables")
    frame = data.draw(streams(), label="stream")
    bounds = data.draw(cuts(frame.height), label="cuts")
    how = data.draw(st.sampled_from(["string", "enum", "categorical"]), label="key encoding")
    rules = cepdsl.compile(text)
    expected = interpret.run(rules.program, {"s": frame}, tables=tabs)["r"]
    session = rules.session(tables=tabs)
    outs = [session.push("s", _encode(b, how))["r"] for b in pieces(frame, bounds)] + [session.flush()["r"]]
    assert_frames_match(pl.concat(outs), expected, ordered=True, label=f"{text} cuts={bounds} {how}")


@given(st.data())
def test_joins_big_batch_path_and_replay_equal_interpreter(data: st.DataObject) -> None:
    text = data.draw(join_rules(), label="rule")
    tabs = data.draw(tables(), label="tables")
    frame = data.draw(streams(), label="stream")
    rules = cepdsl.compile(text)
    expected = interpret.run(rules.program, {"s": frame}, tables=tabs)["r"]
    saved = rowsets._FILTER_ROWS, session_module.PREFILTER_ROWS
    rowsets._FILTER_ROWS = session_module.PREFILTER_ROWS = 0  # the big-batch paths, on small batches
    try:
        got = rules.replay({"s": frame}, tables=tabs)["r"]
    finally:
        rowsets._FILTER_ROWS, session_module.PREFILTER_ROWS = saved
    assert_frames_match(got, expected, ordered=True, label=text)


def test_late_rows_are_joined_too() -> None:
    text = (
        STREAM_DECL.replace("n: int)\n", "n: int)\n  lateness 0s\n")
        + TABLES
        + ("rule r from s\n  join t on g\n  where t.region == \"eu\"\n")
    )
    rules = cepdsl.compile(text)
    tabs = {"t": pl.DataFrame({"g": ["a"], "region": ["eu"], "w": [1.0], "k": [1]}), "nt": pl.DataFrame({"k": [1.0], "label": ["x"]})}
    session = rules.session(tables=tabs)
    import datetime as dt

    t0 = dt.datetime(2024, 1, 1)
    first = pl.DataFrame({"ts": [t0 + dt.timedelta(minutes=5)], "g": ["a"], "x": [1.0], "n": [1]})
    late = pl.DataFrame({"ts": [t0], "g": ["a"], "x": [2.0], "n": [1]})
    out1 = session.push("s", first)["r"]
    out2 = session.push("s", late)["r"]  # a filter rule still takes a late row
    assert out1["t.region"].to_list() == ["eu"] and out2["x"].to_list() == [2.0] and out2["t.region"].to_list() == ["eu"]


def test_set_table_replaces_rows_and_a_bad_frame_keeps_the_old_ones() -> None:
    from cepdsl.tables import TableError

    text = STREAM_DECL + TABLES + "rule r from s\n  join t on g\n"
    rules = cepdsl.compile(text)
    tabs = {"t": pl.DataFrame({"g": ["a"], "region": ["eu"], "w": [1.0], "k": [1]})}
    session = rules.session(tables=tabs)
    import datetime as dt

    row = pl.DataFrame({"ts": [dt.datetime(2024, 1, 1)], "g": ["a"], "x": [1.0], "n": [1]})
    assert session.push("s", row)["r"]["t.region"].to_list() == ["eu"]
    session.set_table("t", pl.DataFrame({"g": ["a"], "region": ["us"], "w": [1.0], "k": [1]}))
    assert session.push("s", row)["r"]["t.region"].to_list() == ["us"]
    with pytest.raises(TableError, match="appears more than once"):
        session.set_table("t", pl.DataFrame({"g": ["a", "a"], "region": ["x", "y"], "w": [1.0, 2.0], "k": [1, 2]}))
    assert session.push("s", row)["r"]["t.region"].to_list() == ["us"]


@given(st.data())
def test_rules_sharing_joins_equal_interpreter(data: st.DataObject) -> None:
    """Two rules with the same joins form one join group (the batch joined once, every
    row's joined columns gathered), unlike a rule alone (`JoinedFilter`): both ≡ the
    interpreter, under any batching and key encoding."""
    text = data.draw(join_rules(), label="rule")
    joins = "\n  ".join(line for line in text.split("\n  ") if line.startswith("join "))
    prefixes = {w.split()[1] if " as " not in w else w.split()[3] for w in joins.split("\n  ")}
    where = data.draw(st.sampled_from([w for w in WHERES if not w or w.split(".")[0].split()[-1] in prefixes]), label="where 2")
    text += "rule r2 from s\n  " + joins + (f"\n  where {where}" if where else "") + "\n"
    tabs = data.draw(tables(), label="tables")
    frame = data.draw(streams(), label="stream")
    bounds = data.draw(cuts(frame.height), label="cuts")
    how = data.draw(st.sampled_from(["string", "enum", "categorical"]), label="key encoding")
    rules = cepdsl.compile(text)
    expected = interpret.run(rules.program, {"s": frame}, tables=tabs)
    session = rules.session(tables=tabs)
    outs = [session.push("s", _encode(b, how)) for b in pieces(frame, bounds)] + [session.flush()]
    for rid in ("r", "r2"):
        assert_frames_match(pl.concat([o[rid] for o in outs]), expected[rid], ordered=True, label=f"{text} cuts={bounds} {how} {rid}")
