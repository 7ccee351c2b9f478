"""Throttle (§5.7), snapshots and hot reload."""

from __future__ import annotations

import pickle

import polars as pl
import pytest

from cepdsl.engine import Session
from cepdsl.engine.session import ENGINE_STATE_VERSION
from cepdsl.plan import RuleKind
from cepdsl.state_format import decode_state, encode_state
from tests.support.fakes import echo_executors
from tests.support.frames import assert_frames_match
from tests.support.plans import S, at, cmp, field, lit, program, rule, stream


def frame(times: list[float], hosts: list[str] | None = None) -> pl.DataFrame:
    n = len(times)
    return pl.DataFrame(
        {"ts": [at(t) for t in times], "host": hosts or ["a"] * n, "cpu": [float(i) for i in range(n)]},
        schema={"ts": pl.Datetime("us"), "host": pl.String, "cpu": pl.Float64},
    )


def test_throttle_suppresses_repeats_within_the_period_per_group_key() -> None:
    s = stream()
    r = rule("t", s, group_by=("host",), throttle_us=10 * S)
    data = frame([0, 5, 10, 11, 25, 3], hosts=["a", "a", "a", "a", "a", "b"]).sort("ts")
    sess = Session(program(r))
    out = sess.push("s", data)["t"]
    # a: 0 emitted, 5 hidden by 0, 10 emitted (0 is not within (0, 10]), 11 hidden, 25 emitted; b: 3 emitted
    assert list(zip(out["host"], out["ts"], strict=True)) == [
        ("a", at(0)),
        ("b", at(3)),
        ("a", at(10)),
        ("a", at(25)),
    ]
    st = sess.stats()["t"]
    assert st["suppressed"] == 2 and st["matches"] == 4


def test_throttle_without_group_by_is_one_key_and_holds_across_batches() -> None:
    s = stream()
    r = rule("t", s, throttle_us=10 * S)
    sess = Session(program(r))
    got = [sess.push("s", frame([t], hosts=[h]))["t"].height for t, h in [(0, "a"), (4, "b"), (9, "c"), (10, "a")]]
    assert got == [1, 0, 0, 1]


def test_throttle_keys_with_nulls_are_keys_too() -> None:
    s = stream()
    r = rule("t", s, group_by=("host",), throttle_us=10 * S)
    data = pl.DataFrame(
        {"ts": [at(0), at(1), at(2)], "host": [None, None, "a"], "cpu": [1.0, 2.0, 3.0]},
        schema={"ts": pl.Datetime("us"), "host": pl.String, "cpu": pl.Float64},
    )
    out = Session(program(r)).push("s", data)["t"]
    assert out["host"].to_list() == [None, "a"]


def run_in_two_halves(make_session, data: pl.DataFrame, cut: int, via_snapshot: bool) -> dict[str, pl.DataFrame]:
    first = make_session()
    outs = [first.push("s", data[:cut])]
    second = make_session() if via_snapshot else first
    if via_snapshot:
        snap = first.snapshot()
        second.restore({k: bytes(v) for k, v in pickle.loads(pickle.dumps(snap)).items()})
    outs += [second.push("s", data[cut:]), second.flush()]
    return {rid: pl.concat([o[rid] for o in outs]) for rid in outs[0]}


def test_snapshot_and_restore_continue_exactly_where_the_session_stood() -> None:
    s = stream(lateness_us=5 * S)
    rules = (
        rule("thr", s, group_by=("host",), throttle_us=10 * S),
        rule("hot", s, where=cmp(">", field(s, "cpu"), lit(3.0))),
    )
    data = frame([0, 2, 1, 7, 12, 9, 15, 30, 22], hosts=list("ababababa"))
    for cut in range(1, data.height):
        whole = run_in_two_halves(lambda: Session(program(*rules)), data, cut, via_snapshot=False)
        resumed = run_in_two_halves(lambda: Session(program(*rules)), data, cut, via_snapshot=True)
        for rid in whole:
            assert_frames_match(resumed[rid], whole[rid], ordered=True, label=f"{rid} cut {cut}")


def test_snapshot_holds_executor_state_counters_and_buffered_rows() -> None:
    s = stream(lateness_us=100 * S)
    built, make = echo_executors()
    sess = Session(program(rule("p", s, RuleKind.PATTERN)), executors=make)
    rows = frame([0, 10])
    sess.push("s", rows)
    assert sess.progress("s").first_ts_us is None  # nothing released yet
    sess.advance("s", int(rows["ts"].dt.epoch("us").min()))  # release the row at 0 only
    assert sess.progress("s").first_ts_us == int(rows["ts"].dt.epoch("us").min())
    snap = sess.snapshot()
    assert set(snap) == {"p", "stream:s"}
    built2, make2 = echo_executors()
    fresh = Session(program(rule("p", s, RuleKind.PATTERN)), executors=make2)
    report = fresh.restore(snap)
    assert set(report.restored) == {"p", "stream:s"} and report.skipped == ()
    assert built2["p"].seen == 1
    assert fresh.stats()["p"]["events_in"] == 1
    assert fresh.flush()["p"]["ts"].to_list() == [at(10)]  # the buffered row survived


def test_restore_refuses_another_version_and_skips_changed_rules() -> None:
    s = stream()
    sess = Session(program(rule("f", s)))
    sess.push("s", frame([0]))
    snap = sess.snapshot()
    bad = dict(snap)
    data = decode_state(bad["f"])
    data["version"] = ENGINE_STATE_VERSION + 1
    bad["f"] = encode_state(data)
    with pytest.raises(ValueError, match="version"):
        Session(program(rule("f", s))).restore(bad)
    changed = Session(program(rule("f", s, severity="high"), rule("g", s)))
    report = changed.restore(snap)
    assert report.skipped == ("f",) and report.restored == ("stream:s",)
    assert changed.stats()["f"]["events_in"] == 0


def test_reload_keeps_unchanged_rules_restarts_changed_ones_and_drops_no_row() -> None:
    s = stream(lateness_us=10 * S)
    built, make = echo_executors()
    keep = rule("keep", s, RuleKind.PATTERN)
    change = rule("change", s, RuleKind.PATTERN)
    gone = rule("gone", s, RuleKind.PATTERN)
    sess = Session(program(keep, change, gone), executors=make)
    sess.push("s", frame([0, 5, 20]))  # watermark 10: 0 and 5 released, 20 held
    old_keep, old_change = built["keep"], built["change"]
    new_change = rule("change", s, RuleKind.PATTERN, severity="critical")
    added = rule("added", s, RuleKind.PATTERN)
    report = sess.reload(program(keep, new_change, added))
    assert report.kept == ("keep",) and report.changed == ("change",)
    assert report.added == ("added",) and report.removed == ("gone",)
    assert built["keep"] is old_keep and built["change"] is not old_change
    out = sess.flush()
    assert set(out) == {"keep", "change", "added"}
    for rid in ("keep", "change", "added"):
        assert out[rid]["ts"].to_list() == [at(20)], rid  # the held row reached every live rule
    assert out["change"]["severity"].to_list() == ["critical"]
    assert built["keep"].seen == 3


def test_reload_with_a_changed_stream_reshapes_held_rows() -> None:
    from cepdsl.types import Type

    s = stream(lateness_us=10 * S)
    sess = Session(program(rule("f", s)))
    sess.push("s", frame([0, 20]))
    s2 = stream(
        fields=(("ts", Type.TIMESTAMP), ("host", Type.STR), ("cpu", Type.FLOAT), ("zone", Type.STR)),
        lateness_us=10 * S,
    )
    sess.reload(program(rule("f", s2)))
    out = sess.flush()["f"]
    assert out["ts"].to_list() == [at(20)]
    assert out["zone"].to_list() == [None]
