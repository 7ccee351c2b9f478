"""The in-order fast path of the engine (one time scan, sorted flag, no SEQ on
filter-only streams, shared predicates and gathers) gives exactly what the general
path gives: the same matches as one sorted batch, whatever the batching."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

import cepdsl
from cepdsl.engine.ordering import TimeScan
from cepdsl.executor import SEQ, TIME

T0 = dt.datetime(2024, 1, 1)
HEAD = "stream s (ts: timestamp, host: str, cpu: float) lateness {lat}\n"
FILTERS = (
    'rule hot from s where cpu > 2 and host != "b"\nrule hot2 from s where cpu > 2 and host != "b" severity high\nrule any from s\n'
)
LAST = "rule last3 from s window last 3 events having sum(cpu) > 5\n"


def frame(secs: list[int], cpus: list[float] | None = None, hosts: list[str] | None = None, enum: bool = False) -> pl.DataFrame:
    n = len(secs)
    df = pl.DataFrame(
        {
            "ts": [T0 + dt.timedelta(seconds=s) for s in secs],
            "host": hosts or ["a"] * n,
            "cpu": cpus if cpus is not None else [float(i) for i in range(n)],
        },
        schema={"ts": pl.Datetime("us"), "host": pl.String, "cpu": pl.Float64},
    )
    return df.with_columns(pl.col("host").cast(pl.Enum(["a", "b", "c"]))) if enum else df


def run(text: str, batches: list[pl.DataFrame]) -> tuple[dict[str, pl.DataFrame], list[dict[str, pl.DataFrame]]]:
    sess = cepdsl.compile(text).session()
    pushes = [sess.push("s", b) for b in batches]
    outs = pushes + [sess.flush()]
    rids = outs[0].keys()
    return {r: pl.concat([o[r] for o in outs]) for r in rids}, pushes


def reference(text: str, whole: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """One batch in (time, arrival) order: no buffer, no late rows."""
    return run(text, [whole.sort("ts", maintain_order=True)])[0]


def same(a: dict[str, pl.DataFrame], b: dict[str, pl.DataFrame]) -> None:
    assert a.keys() == b.keys()
    for rid in a:
        assert a[rid].schema == b[rid].schema, rid
        assert a[rid].to_dicts() == b[rid].to_dicts(), rid


def test_time_scan_one_pass_min_max_sortedness() -> None:
    s = pl.Series([3, 3, 5, 9], dtype=pl.Int64)
    assert TimeScan.of(s) == TimeScan(3, 9, True)
    assert TimeScan.of(pl.Series([4, 1, 7], dtype=pl.Int64)) == TimeScan(1, 7, False)
    assert TimeScan.of(pl.Series([5], dtype=pl.Int64)) == TimeScan(5, 5, True)
    assert TimeScan.of(s.set_sorted()) == TimeScan(3, 9, True)


@pytest.mark.parametrize("lat", ["0s", "10s"])
@pytest.mark.parametrize("rules", [FILTERS, FILTERS + LAST])
def test_sorted_and_unsorted_batches_equal_one_sorted_batch(lat: str, rules: str) -> None:
    text = HEAD.format(lat=lat) + rules
    rng = np.random.default_rng(3)
    secs = [int(x) for x in np.sort(rng.integers(0, 30, 60))]
    # Local disorder within 5 s (less than the 10 s lateness), many ties.
    jitter = [int(s) + int(j) for s, j in zip(secs, rng.integers(-5, 1, 60))]
    cpus = [float(x) for x in rng.integers(0, 6, 60)]
    hosts = [["a", "b", "c"][int(h)] for h in rng.integers(0, 3, 60)]
    for times in (secs, jitter):
        whole = frame(times, cpus, hosts)
        ref = reference(text, whole)
        for cut in (1, 7, 20, 59):
            got, _ = run(text, [whole[:cut], whole[cut:]])
            if times is jitter and lat == "0s":
                # Disorder beyond lateness: filter rules still see every row; only their
                # order may differ (late rows come first in their batch).
                for rid in ("hot", "hot2", "any"):
                    assert sorted(got[rid]["cpu"].to_list()) == sorted(ref[rid]["cpu"].to_list())
                continue
            same(got, ref)


def test_ties_at_the_watermark_are_not_late_and_keep_arrival_order() -> None:
    text = HEAD.format(lat="0s") + FILTERS + LAST
    a = frame([0, 1, 2], [1.0, 2.0, 3.0])
    b = frame([2, 2, 3], [4.0, 5.0, 6.0])  # time 2 == watermark after `a`
    got, pushes = run(text, [a, b])
    assert pushes[1]["any"]["cpu"].to_list() == [4.0, 5.0, 6.0]
    assert got["any"]["cpu"].to_list() == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    same(got, reference(text, pl.concat([a, b])))
    sess = cepdsl.compile(text).session()
    sess.push("s", a), sess.push("s", b), sess.flush()
    assert sess.dead_letters().height == 0


def test_lateness_releases_only_rows_up_to_max_minus_lateness() -> None:
    text = HEAD.format(lat="10s") + FILTERS
    sess = cepdsl.compile(text).session()
    out = sess.push("s", frame([0, 5, 10, 15, 20], [1.0, 2.0, 3.0, 4.0, 5.0]))
    assert out["any"]["cpu"].to_list() == [1.0, 2.0, 3.0]  # ≤ 20 − 10
    out = sess.push("s", frame([25], [6.0]))
    assert out["any"]["cpu"].to_list() == [4.0]  # ≤ 15
    # An in-order batch whose start is below the buffered rows' end must still be merged
    # in time order (not appended as if the buffer stayed sorted).
    out = sess.push("s", frame([17, 40], [7.0, 8.0]))
    assert out["any"]["cpu"].to_list() == [7.0, 5.0, 6.0]  # times 17, 20, 25 (≤ 40 − 10)


def test_late_rows_filters_take_them_order_sensitive_rules_refuse() -> None:
    text = HEAD.format(lat="0s") + FILTERS + LAST
    sess = cepdsl.compile(text).session()
    sess.push("s", frame([10, 20], [1.0, 2.0]))
    out = sess.push("s", frame([5, 30], [9.0, 3.0]))  # 5 is behind the watermark (20)
    assert out["any"]["cpu"].to_list() == [9.0, 3.0]
    assert out["hot"]["cpu"].to_list() == [9.0, 3.0]
    dead = sess.dead_letters()
    assert dead.height == 1 and "late for rule last3" in dead["reason"][0]


def test_mixed_enum_and_string_batches_in_the_buffer() -> None:
    text = HEAD.format(lat="10s") + FILTERS + LAST
    hosts = ["a", "b", "c", "a", "c", "b"]
    whole = frame([0, 3, 6, 9, 12, 30], [3.0, 4.0, 5.0, 6.0, 7.0, 1.0], hosts)
    ref = reference(text, whole)
    for first_enum in (True, False):
        a = frame([0, 3, 6], [3.0, 4.0, 5.0], hosts[:3], enum=first_enum)
        b = frame([9, 12, 30], [6.0, 7.0, 1.0], hosts[3:], enum=not first_enum)
        got, _ = run(text, [a, b])
        same(got, ref)
        assert got["hot"].schema["host"] == pl.String
    got, _ = run(text, [whole.with_columns(pl.col("host").cast(pl.Enum(["a", "b", "c"])))])
    same(got, ref)


def test_filter_only_streams_skip_seq_others_keep_it() -> None:
    filters = cepdsl.compile(HEAD.format(lat="0s") + FILTERS).session()
    mixed = cepdsl.compile(HEAD.format(lat="0s") + FILTERS + LAST).session()
    assert not filters._streams["s"].state.need_seq
    assert mixed._streams["s"].state.need_seq


def test_reload_and_restore_fit_seq_of_held_rows() -> None:
    only = cepdsl.compile(HEAD.format(lat="10s") + FILTERS)
    both = cepdsl.compile(HEAD.format(lat="10s") + FILTERS + LAST)
    a = frame([0, 4, 4, 8, 12], [3.0, 4.0, 2.0, 5.0, 6.0])
    b = frame([20, 30], [7.0, 8.0])
    ref, _ = run(HEAD.format(lat="10s") + FILTERS + LAST, [a, b])
    sess = only.session()
    first = sess.push("s", a)
    assert sess._streams["s"].state.buffer is not None and SEQ not in sess._streams["s"].state.buffer.columns
    sess.reload(both.program)
    held = sess._streams["s"].state.buffer
    assert held[SEQ].to_list() == list(range(5 - held.height, 5))
    rest = [sess.push("s", b), sess.flush()]
    # last3 starts with the reload: it sees the held rows (time ≥ 2) and `b`.
    got_last = pl.concat([o["last3"] for o in rest])
    fresh, _ = run(HEAD.format(lat="10s") + LAST, [a.filter(pl.col("ts") > T0 + dt.timedelta(seconds=2)), b])
    assert got_last.to_dicts() == fresh["last3"].to_dicts()
    assert pl.concat([first["any"], *(o["any"] for o in rest)]).to_dicts() == ref["any"].to_dicts()
    # A snapshot taken with SEQ restores into a filter-only session without it, and back.
    s2 = both.session()
    s2.push("s", a)
    s3 = only.session()
    s3.restore(s2.snapshot())
    assert SEQ not in s3._streams["s"].state.buffer.columns and TIME in s3._streams["s"].state.buffer.columns
    tail = [s3.push("s", b), s3.flush()]
    assert pl.concat([o["any"] for o in tail])["cpu"].to_list() == [
        4.0,
        2.0,
        5.0,
        6.0,
        7.0,
        8.0,
    ]  # time 0 was released before the snapshot
