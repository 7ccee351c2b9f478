"""The Session over micro-batches: ordering, watermark, late rows, dead letters, flush."""

from __future__ import annotations

import polars as pl
import pytest

import cepdsl
from cepdsl.engine import DEAD_LETTER_SCHEMA, NO_WATERMARK, Session
from cepdsl.plan import RuleKind
from cepdsl.types import Type
from tests.support.fakes import echo_executors
from tests.support.frames import assert_frames_match
from tests.support.plans import S, at, cmp, field, lit, program, rule, stream, us


def frame(times: list[float | None], hosts: list[str] | None = None, cpus: list[float | None] | None = None) -> pl.DataFrame:
    n = len(times)
    return pl.DataFrame(
        {
            "ts": [None if t is None else at(t) for t in times],
            "host": hosts or ["a"] * n,
            "cpu": cpus if cpus is not None else [float(i) for i in range(n)],
        },
        schema={"ts": pl.Datetime("us"), "host": pl.String, "cpu": pl.Float64},
    )


def concat(outs: list[dict[str, pl.DataFrame]], rid: str) -> pl.DataFrame:
    return pl.concat([o[rid] for o in outs])


def test_filter_rule_matches_each_passing_row_whatever_the_batches() -> None:
    s = stream()
    r = rule("hot", s, where=cmp(">", field(s, "cpu"), lit(2.0)))
    data = frame([0, 1, 1, 2, 5, 5, 9], cpus=[1.0, 3.0, None, 2.0, 2.5, 9.0, 0.0])
    whole = Session(program(r)).push("s", data)["hot"]
    assert whole["cpu"].to_list() == [3.0, 2.5, 9.0]
    assert whole["ts"].to_list() == [at(1), at(5), at(5)]
    assert whole.columns == ["rule", "ts", "severity", "host", "cpu"]
    assert whole["rule"].to_list() == ["hot"] * 3
    for cut in range(1, data.height):
        sess = Session(program(r))
        parts = [sess.push("s", data[:cut]), sess.push("s", data[cut:]), sess.flush()]
        assert_frames_match(concat(parts, "hot"), whole, ordered=True)


def test_push_returns_every_rule_with_empty_frames_of_the_right_columns() -> None:
    s = stream()
    a = rule("a", s, where=cmp(">", field(s, "cpu"), lit(100.0)))
    b = rule("b", s)
    out = Session(program(a, b)).push("s", frame([0, 1]))
    assert set(out) == {"a", "b"}
    assert out["a"].height == 0 and out["a"].schema == a.empty_output().schema
    assert out["b"].height == 2


def test_rows_without_time_go_to_the_dead_letter() -> None:
    s = stream()
    sess = Session(program(rule("all", s)))
    out = sess.push("s", frame([0, None, 2], hosts=["a", "b", "c"]))
    assert out["all"]["host"].to_list() == ["a", "c"]
    dead = sess.take_dead_letters()
    assert dead.schema == pl.Schema(DEAD_LETTER_SCHEMA)
    assert dead["reason"].to_list() == ["missing time"]
    assert dead["stream"].to_list() == ["s"]
    assert '"host":"b"' in dead["raw"][0]
    assert sess.take_dead_letters().height == 0


def test_reorder_buffer_releases_in_time_then_arrival_order_once_the_watermark_reaches() -> None:
    s = stream(lateness_us=10 * S)
    built, make = echo_executors()
    r = rule("p", s, RuleKind.PATTERN)
    sess = Session(program(r), executors=make)
    t0 = us(at(0))
    # watermark 20 − 10 = 10 s: only the row at 5 s is due
    assert sess.push("s", frame([20, 5, 12]))["p"]["ts"].to_list() == [at(5)]
    assert built["p"].released == [(t0 + 5 * S, 1)]
    sess.push("s", frame([12, 25]))  # watermark 15 s: 12 s (seq 2) then 12 s (seq 3)
    assert built["p"].released[1:] == [(t0 + 12 * S, 2), (t0 + 12 * S, 3)]
    assert sess.progress("s").watermark_us == t0 + 15 * S
    out = sess.flush()["p"]
    assert out["ts"].to_list() == [at(20), at(25)]
    assert built["p"].released[3:] == [(t0 + 20 * S, 0), (t0 + 25 * S, 4)]
    kind, _, _, progress = built["p"].calls[-1]
    assert kind == "finish" and progress.max_ts_us == t0 + 25 * S and progress.first_ts_us == t0 + 5 * S


def test_zero_lateness_releases_at_once_and_sorts_within_the_batch() -> None:
    s = stream()
    built, make = echo_executors()
    sess = Session(program(rule("p", s, RuleKind.PATTERN)), executors=make)
    out = sess.push("s", frame([3, 1, 2, 1]))["p"]
    assert out["ts"].to_list() == [at(1), at(1), at(2), at(3)]
    assert [seq for _, seq in built["p"].released] == [1, 3, 2, 0]


def test_late_rows_refused_by_order_sensitive_rules_are_counted_and_dead_lettered() -> None:
    s = stream()
    built, make = echo_executors()
    pat = rule("p", s, RuleKind.PATTERN)
    flt = rule("f", s)

    def factory(r):  # the filter runs on the real backend
        if r.kind is RuleKind.FILTER:
            from cepdsl.backends import executor_for

            return executor_for(r)
        return make(r)

    sess = Session(program(pat, flt), executors=factory)
    sess.push("s", frame([10, 20]))
    out = sess.push("s", frame([15, 20, 30], hosts=["late", "tie", "new"]))
    # The filter rule is never late; the pattern rule refuses 15 s but takes the tie at 20 s.
    assert out["f"]["host"].to_list() == ["late", "tie", "new"]
    assert out["p"]["host"].to_list() == ["tie", "new"]
    dead = sess.dead_letters()
    assert dead.height == 1
    assert dead["reason"][0].startswith("late for rule p:")
    assert '"host":"late"' in dead["raw"][0]
    stats = sess.stats()
    assert stats["p"]["late"] == 1 and stats["f"]["late"] == 0
    assert stats["p"]["events_in"] == 5 and stats["p"]["matches"] == 4


def test_late_rows_that_fail_where_are_not_late_for_that_rule() -> None:
    s = stream()
    built, make = echo_executors()
    r = rule("p", s, RuleKind.PATTERN, where=cmp("==", field(s, "host"), lit("x")))
    sess = Session(program(r), executors=make)
    sess.push("s", frame([10], hosts=["x"]))
    sess.push("s", frame([5], hosts=["y"]))
    assert sess.stats()["p"]["late"] == 0
    assert sess.dead_letters().height == 0


def test_late_rows_a_rule_accepts_are_processed() -> None:
    s = stream()
    built, make = echo_executors(accept_late=True)
    sess = Session(program(rule("w", s, RuleKind.PATTERN)), executors=make)
    sess.push("s", frame([10, 20]))
    out = sess.push("s", frame([15]))
    assert out["w"]["ts"].to_list() == [at(15)]
    assert sess.stats()["w"]["late"] == 0


def test_advance_moves_the_watermark_and_releases_held_rows() -> None:
    s = stream(lateness_us=60 * S)
    built, make = echo_executors()
    sess = Session(program(rule("p", s, RuleKind.PATTERN)), executors=make)
    assert sess.push("s", frame([0, 30]))["p"].height == 0
    assert sess.advance("s", us(at(10)))["p"]["ts"].to_list() == [at(0)]
    assert sess.advance(None, us(at(5)))["p"].height == 0  # never goes back
    assert sess.progress("s").watermark_us == us(at(10))
    assert sess.advance(None, us(at(40)))["p"]["ts"].to_list() == [at(30)]
    assert built["p"].calls[-1][0] == "process"


def test_advance_with_nothing_held_still_tells_executors() -> None:
    s = stream()
    built, make = echo_executors()
    sess = Session(program(rule("p", s, RuleKind.PATTERN)), executors=make)
    sess.advance("s", us(at(100)))
    kind, _, _, progress = built["p"].calls[-1]
    assert kind == "advance" and progress.watermark_us == us(at(100)) and progress.max_ts_us is None


def test_replay_mode_only_moves_the_watermark_on_advance() -> None:
    s = stream(lateness_us=60 * S)
    built, make = echo_executors()
    sess = Session(program(rule("p", s, RuleKind.PATTERN)), executors=make, replay=True)
    assert sess.progress("s").watermark_us == NO_WATERMARK
    assert sess.push("s", frame([5, 1]))["p"].height == 0
    assert sess.advance("s", us(at(3)))["p"]["ts"].to_list() == [at(1)]
    assert sess.flush()["p"]["ts"].to_list() == [at(5)]


def test_stream_without_time_runs_filters_in_arrival_order() -> None:
    s = stream("plain", fields=(("host", Type.STR), ("cpu", Type.FLOAT)), time=None)
    r = rule("f", s, where=cmp(">", field(s, "cpu"), lit(1.0)))
    sess = Session(program(r))
    out = sess.push("plain", pl.DataFrame({"host": ["a", "b", "c"], "cpu": [2.0, 0.0, 3.0]}))["f"]
    assert out["host"].to_list() == ["a", "c"]
    assert out["ts"].null_count() == 2


def test_where_of_all_rules_of_a_stream_and_rules_of_other_streams() -> None:
    s1, s2 = stream("m"), stream("n")
    r1 = rule("a", s1, where=cmp(">", field(s1, "cpu"), lit(1.0)))
    r2 = rule("b", s1, where=cmp("<=", field(s1, "cpu"), lit(1.0)))
    r3 = rule("c", s2)
    sess = Session(program(r1, r2, r3))
    out = sess.push("m", frame([0, 1, 2], cpus=[0.5, 1.5, None]))
    assert out["a"]["cpu"].to_list() == [1.5]
    assert out["b"]["cpu"].to_list() == [0.5]
    assert out["c"].height == 0
    assert sess.stats()["c"]["events_in"] == 0
    with pytest.raises(KeyError, match="unknown stream"):
        sess.push("nope", frame([0]))


def test_stats_report_counts_timings_and_state_size() -> None:
    s = stream()
    sess = Session(program(rule("f", s, where=cmp(">", field(s, "cpu"), lit(0.5)))))
    sess.push("s", frame([0, 1, 2]))
    sess.push("s", frame([3], cpus=[1.0]))
    st = sess.stats()["f"]
    assert (st["events_in"], st["passed"], st["matches"], st["batches"]) == (4, 3, 3, 2)
    assert st["mean_eval_ms"] > 0 and st["p99_eval_ms"] >= 0
    assert st["state_bytes"] > 0
    assert st["stream"] == "s" and st["kind"] == "filter"


def test_window_rules_take_late_rows_whose_window_is_still_open() -> None:
    rules = cepdsl.compile("stream s (ts: timestamp, host: str, cpu: float)\nrule w from s window tumbling 10s having count() >= 1\n")
    sess = rules.session()
    first = sess.push("s", frame([0, 15]))["w"]  # watermark 15 s: [0, 10) fires
    assert list(zip(first["window_start"], first["count"], strict=True)) == [(at(0), 1)]
    sess.push("s", frame([12, 5], hosts=["open", "closed"]))  # 12 s joins [10, 20); 5 s is late
    dead = sess.dead_letters()
    assert dead["reason"].str.starts_with("late for rule w").to_list() == [True]
    assert '"host":"closed"' in dead["raw"][0]
    last = sess.flush()["w"]
    assert list(zip(last["window_start"], last["count"], strict=True)) == [(at(10), 2)]
    assert sess.stats()["w"]["late"] == 1
