"""LANGUAGE.md §9.3 (`for` and `resolve`), scenario by scenario, expectations worked out by
hand from the text; each runs through the interpreter, engine replay and a one-row-at-a-time
session (tests/conformance/test_language_semantics.py's `check`)."""

from __future__ import annotations

import polars as pl

import cepdsl
from tests.conformance.test_language_semantics import METRICS, M, assert_eq, at, check, frame


def minute_rows(host: str, cpus: list[float | None], second: int = 10) -> list[tuple]:
    """One row per minute (at mm:10) with these cpu values; None leaves the minute empty."""
    return [(at(60 * i + second), host, c, "x") for i, c in enumerate(cpus) if c is not None]


def states(o: pl.DataFrame) -> list[tuple]:
    return list(zip(o["state"].to_list(), o["ts"].to_list(), o["firing_since"].to_list(), strict=True))


HOT = METRICS + "rule r from m group by host window tumbling 1m having avg(cpu) > 80\n  "


def test_for_then_resolve_after_one_record_per_transition() -> None:
    # Windows end at 1m..11m; avg > 80 at ends 1-4m and 7m. T0 = 1m; firing at the first
    # T with T − T0 ≥ 2m: 3m. Not holding from 5m (T1), holding again at 7m, then not from
    # 8m: resolved at the first T' with T' − 8m ≥ 2m: 10m, carrying that window's avg (50).
    text = HOT + 'for 2m\n  resolve after 2m "{{ host }} is back"'
    rows = minute_rows("a", [90, 90, 90, 90, 50, 50, 90, 50, 50, 50, 50])
    check(
        text,
        {"m": frame(M, rows)},
        "r",
        lambda o: (
            assert_eq(states(o), [("firing", at(180), at(60)), ("resolved", at(600), at(60))]),
            assert_eq(o["avg_cpu"].to_list(), [90.0, 50.0]),
            assert_eq(o["resolved_at"].to_list(), [None, at(600)]),
            assert_eq(o["window_end"].to_list(), [at(180), at(600)]),
            assert_eq(o["suppressed"].to_list(), [False, False]),
            assert_eq(o.columns[-4:], ["state", "firing_since", "resolved_at", "suppressed"]),
        ),
    )


def test_a_window_without_rows_of_the_group_does_not_hold() -> None:
    # Host a stops after minute 2; host b keeps the watermark moving. a's window ending at
    # 4m has no rows: the first non-holding evaluation, so (no `after`) resolved there with
    # null aggregates.
    text = HOT + "resolve"
    rows = sorted(minute_rows("a", [90, 90, 90]) + minute_rows("b", [1] * 8, second=20))
    check(
        text,
        {"m": frame(M, rows)},
        "r",
        lambda o: (
            assert_eq([s for s in states(o)], [("firing", at(60), at(60)), ("resolved", at(240), at(60))]),
            assert_eq(o["host"].to_list(), ["a", "a"]),
            assert_eq(o["avg_cpu"].to_list(), [90.0, None]),
            assert_eq(o["window_start"].to_list(), [at(0), at(180)]),
        ),
    )


def test_a_pending_episode_emits_nothing_and_must_hold_at_every_evaluation() -> None:
    # Holds at 1m, 2m (pending, < 3m), not at 3m: that episode is over. Holds again 4m..7m:
    # firing at 7m (7m − 4m ≥ 3m) with firing_since 4m.
    text = HOT + "for 3m\n  resolve"
    rows = minute_rows("a", [90, 90, 50, 90, 90, 90, 90, 90])
    check(text, {"m": frame(M, rows)}, "r", lambda o: assert_eq(states(o), [("firing", at(420), at(240))]))


def test_for_without_resolve_one_firing_per_episode_never_resolved() -> None:
    text = HOT + "for 1m"
    rows = minute_rows("a", [90, 90, 90, 50, 90, 90, 50])
    check(
        text,
        {"m": frame(M, rows)},
        "r",
        lambda o: (
            assert_eq(states(o), [("firing", at(120), at(60)), ("firing", at(360), at(300))]),
            assert_eq(o["resolved_at"].to_list(), [None, None]),
        ),
    )


def test_an_episode_firing_at_the_end_of_input_gets_no_resolved_record() -> None:
    text = HOT + "resolve"
    rows = minute_rows("a", [50, 90, 90])
    check(text, {"m": frame(M, rows)}, "r", lambda o: assert_eq(states(o), [("firing", at(120), at(120))]))


def test_resolving_is_interrupted_by_a_holding_evaluation() -> None:
    # Firing at 1m; not at 2m (T1 = 2m); holds at 3m (episode goes on); not from 4m:
    # resolved at 6m (6m − 4m ≥ 2m), still the episode that fired at 1m.
    text = HOT + "resolve after 2m"
    rows = minute_rows("a", [90, 50, 90, 50, 50, 50, 50])
    check(
        text, {"m": frame(M, rows)}, "r", lambda o: assert_eq(states(o), [("firing", at(60), at(60)), ("resolved", at(360), at(60))])
    )


def test_throttle_applies_to_firing_only_and_resolved_follows_its_firing() -> None:
    # Episodes fire at 1m and 3m; the second firing is within 10m of the first emitted one:
    # throttled, but it stays in the output (suppressed), and so does its resolved record.
    text = HOT + "resolve\n  throttle 10m"
    rows = minute_rows("a", [90, 50, 90, 50])
    check(
        text,
        {"m": frame(M, rows)},
        "r",
        lambda o: (
            assert_eq(
                states(o),
                [
                    ("firing", at(60), at(60)),
                    ("resolved", at(120), at(60)),
                    ("firing", at(180), at(180)),
                    ("resolved", at(240), at(180)),
                ],
            ),
            assert_eq(o["suppressed"].to_list(), [False, False, True, True]),
        ),
    )


def test_sliding_window_evaluations_are_every_window_end() -> None:
    # sliding 2m every 1m; one hot row at 0:10 is in the windows ending 1m and 2m, both
    # holding (T0 = 1m); the window ending at 3m has no rows: resolved there.
    text = METRICS + "rule r from m group by host window sliding 2m every 1m having max(cpu) > 80\n  resolve"
    rows = [(at(10), "a", 90.0, "x"), (at(290), "b", 1.0, "x")]
    check(
        text, {"m": frame(M, rows)}, "r", lambda o: assert_eq(states(o), [("firing", at(60), at(60)), ("resolved", at(180), at(60))])
    )


def test_an_empty_ungrouped_tick_is_an_evaluation() -> None:
    # Ticks every minute over the last minute; 2 rows before 1m: holds at 1m (firing);
    # the tick at 2m has no rows (count() 0): it is evaluated, does not hold: resolved.
    text = METRICS + 'rule r from m schedule "* * * * *" over 1m having count() >= 2\n  resolve'
    rows = [(at(10), "a", 1.0, "x"), (at(20), "a", 1.0, "x"), (at(210), "a", 1.0, "x")]
    check(
        text,
        {"m": frame(M, rows)},
        "r",
        lambda o: (
            assert_eq(states(o), [("firing", at(60), at(60)), ("resolved", at(120), at(60))]),
            assert_eq(o["count"].to_list(), [2, 0]),
        ),
    )


def test_anomaly_each_scored_row_is_an_evaluation() -> None:
    # Baseline of 2 after warm-up: 50 against [10, 10] (std 0) is an anomaly: firing.
    # 10 against [10, 10, 50] scores 0.707 (not an anomaly): resolved, with that row's fields.
    text = METRICS + "rule r from m group by host anomaly zscore(cpu, threshold = 3.0) baseline 10 warmup 2\n  resolve"
    rows = [(at(i), "a", v, "x") for i, v in enumerate([10.0, 10.0, 50.0, 10.0])]
    check(
        text,
        {"m": frame(M, rows)},
        "r",
        lambda o: (
            assert_eq(states(o), [("firing", at(2), at(2)), ("resolved", at(3), at(2))]),
            assert_eq(o["cpu"].to_list(), [50.0, 10.0]),
            assert_eq([round(s, 3) for s in o["score"].to_list()], [float("inf"), 0.707]),
        ),
    )


def test_absence_deadline_holds_and_the_next_row_resolves() -> None:
    # a is silent from 0s: its deadline 2m fires (firing, firing_since 2m); its next row at
    # 5m is a non-holding evaluation: resolved at 5m (last_seen 5m). The deadline of the 5m
    # row (7m) is past the last event time (6m): it never fires in replay.
    text = METRICS + "rule r from m group by host absent for 2m\n  resolve"
    rows = [(at(0), "a", 1.0, "x"), (at(300), "a", 1.0, "x"), (at(360), "b", 1.0, "x")]
    check(
        text,
        {"m": frame(M, rows)},
        "r",
        lambda o: (
            assert_eq(states(o), [("firing", at(120), at(120)), ("resolved", at(300), at(120))]),
            assert_eq(o["last_seen"].to_list(), [at(0), at(300)]),
            assert_eq(o["host"].to_list(), ["a", "a"]),
        ),
    )


def test_changing_or_removing_a_rule_resolves_its_firing_episodes() -> None:
    text = HOT + "resolve"
    rules = cepdsl.compile(text)
    session = rules.session()
    out = session.push("m", frame(M, minute_rows("a", [90, 90]) + [(at(150), "b", 90.0, "x")]))["r"]
    assert_eq(states(out), [("firing", at(60), at(60))])
    changed = cepdsl.compile(HOT.replace("> 80", "> 95") + "resolve")
    report = session.reload(changed.program)
    assert report.changed == ("r",)
    got = report.resolved["r"]
    assert_eq(got["state"].to_list(), ["resolved"])
    assert_eq(got["host"].to_list(), ["a"])
    assert_eq(got["firing_since"].to_list(), [at(60)])
    assert_eq(got["resolved_at"].to_list(), got["ts"].to_list())
    # Removing the (new, not firing) rule resolves nothing.
    assert session.reload(cepdsl.compile(METRICS).program).resolved == {}


def test_editing_only_the_resolved_message_keeps_the_episodes() -> None:
    rules = cepdsl.compile(HOT + 'resolve "{{ host }} ok"')
    session = rules.session()
    session.push("m", frame(M, minute_rows("a", [90, 90]) + [(at(150), "b", 1.0, "x")]))
    report = session.reload(cepdsl.compile(HOT + 'resolve "{{ host }} is fine again"').program)
    assert report.kept == ("r",) and report.resolved == {}
    out = session.push("m", frame(M, [(at(200), "a", 10.0, "x"), (at(300), "b", 1.0, "x")]))["r"]
    assert_eq(states(out), [("resolved", at(180), at(60))])  # a has no rows in [2m, 3m)


def test_a_resolved_record_follows_its_firing_records_silence() -> None:
    # The silence covers the firing record's time only: the firing record is silenced and so
    # is its resolved record. A second silence covers only the second episode's resolved
    # time: that resolved record is notified, as its firing record was.
    silences = (
        'silence early "maintenance"\n  match rule == "r"\n'
        '  from "2026-01-05T00:00:30Z" until "2026-01-05T00:01:30Z"\n'
        'silence late "too late to matter"\n  match host == "a"\n'
        '  from "2026-01-05T00:03:30Z" until "2026-01-05T00:04:30Z"\n'
    )
    text = METRICS + silences + "rule r from m group by host window tumbling 1m having avg(cpu) > 80\n  resolve"
    rows = minute_rows("a", [90, 50, 90, 50, 1])
    check(
        text,
        {"m": frame(M, rows)},
        "r",
        lambda o: (
            assert_eq(
                states(o),
                [
                    ("firing", at(60), at(60)),
                    ("resolved", at(120), at(60)),
                    ("firing", at(180), at(180)),
                    ("resolved", at(240), at(180)),
                ],
            ),
            assert_eq(o["silenced"].to_list(), ["early", "early", None, None]),
        ),
    )
