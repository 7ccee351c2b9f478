"""LANGUAGE.md §5–§7, scenario by scenario, with expectations worked out by hand.

Each scenario runs through both executors — the row-at-a-time interpreter and
the compiled engine (replay, and a session fed one row at a time) — so a
misreading of the contract shared by both is still caught here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timedelta

import polars as pl
import pytest

import cepdsl
from cepdsl import interpret

T0 = datetime(2026, 1, 5, 0, 0, 0)  # a Monday, on a minute boundary


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def frame(schema: dict[str, pl.DataType], rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=schema, orient="row")


def run_all(text: str, data: dict[str, pl.DataFrame]) -> list[dict[str, pl.DataFrame]]:
    """The same input through the interpreter, engine replay and a one-row-at-a-time session."""
    rules = cepdsl.compile(text)
    by_interpreter = interpret.run(rules.program, data)
    by_replay = rules.replay(data)
    session = rules.session()
    parts: dict[str, list[pl.DataFrame]] = {}
    merged = pl.concat(
        [f.with_columns(pl.lit(name).alias("__stream"), pl.int_range(pl.len()).alias("__i")) for name, f in data.items()],
        how="diagonal_relaxed",
    )
    time_cols = {name: rules.program.stream(name).time_field for name in data}
    order = merged.with_columns(
        pl.coalesce([pl.when(pl.col("__stream") == n).then(pl.col(t)) for n, t in time_cols.items()]).alias("__t")
    ).sort("__t", "__stream", "__i", maintain_order=True)
    for row in order.iter_rows(named=True):
        name = row["__stream"]
        one = data[name][row["__i"]]
        for rule, out in session.push(name, one).items():
            parts.setdefault(rule, []).append(out)
    for rule, out in session.flush().items():
        parts.setdefault(rule, []).append(out)
    by_rows = {r.id: pl.concat(parts[r.id]) if parts.get(r.id) else r.empty_output() for r in rules.program.rules}
    return [by_interpreter, by_replay, by_rows]


def check(text: str, data: dict[str, pl.DataFrame], rule: str, expect: Callable[[pl.DataFrame], None]) -> None:
    for name, result in zip(("interpreter", "replay", "row-by-row session"), run_all(text, data)):
        out = result[rule].sort("ts", maintain_order=True)
        try:
            expect(out)
        except AssertionError as e:
            raise AssertionError(f"{name}: {e}\n{out}") from None


METRICS = "stream m (ts: timestamp, host: str, cpu: float, status: str)\n"
M = {"ts": pl.Datetime("us"), "host": pl.String, "cpu": pl.Float64, "status": pl.String}


# ----------------------------------------------------------------------------- §4 / §5.1 filters


def test_filter_three_valued_logic_keeps_only_true() -> None:
    text = METRICS + 'rule r from m where cpu > 80 and not (status == "healthy")'
    rows = [
        (at(0), "a", 90.0, "down"),  # true and not false -> true
        (at(1), "a", 90.0, None),  # true and not null -> null: dropped
        (at(2), "a", 70.0, "down"),  # false
        (at(3), "a", None, "down"),  # null and true -> null
        (at(4), "a", 85.0, "healthy"),  # true and not true -> false
    ]
    check(
        text,
        {"m": frame(M, rows)},
        "r",
        lambda o: (
            assert_eq(o["ts"].to_list(), [at(0)]),
            assert_eq(o.columns, ["rule", "ts", "severity", "host", "cpu", "status"]),
            assert_eq(o["severity"].to_list(), ["medium"]),
        ),
    )


def test_filter_or_is_kleene() -> None:
    text = METRICS + 'rule r from m where cpu > 80 or status == "down"'
    rows = [
        (at(0), "a", None, "down"),  # null or true -> true
        (at(1), "a", None, None),  # null or null -> null
        (at(2), "a", 90.0, None),  # true or null -> true
        (at(3), "a", 10.0, None),  # false or null -> null
    ]
    check(text, {"m": frame(M, rows)}, "r", lambda o: assert_eq(o["ts"].to_list(), [at(0), at(2)]))


def test_in_list_with_null_and_string_predicates() -> None:
    text = METRICS + 'rule r from m where host in ["web-1", "db-1"] and status starts_with "de" and not (host contains "x")'
    rows = [
        (at(0), "web-1", 1.0, "degraded"),
        (at(1), "web-2", 1.0, "degraded"),
        (at(2), None, 1.0, "degraded"),
        (at(3), "db-1", 1.0, "down"),
        (at(4), "db-1", 1.0, "degraded"),
    ]
    check(text, {"m": frame(M, rows)}, "r", lambda o: assert_eq(o["ts"].to_list(), [at(0), at(4)]))


# ----------------------------------------------------------------------------- §5.2 windows


def test_tumbling_boundary_belongs_to_the_next_window() -> None:
    text = METRICS + "rule r from m group by host window tumbling 1m having count() >= 1"
    rows = [(at(0), "a", 1.0, "x"), (at(59.999), "a", 2.0, "x"), (at(60), "a", 3.0, "x")]
    check(
        text,
        {"m": frame(M, rows)},
        "r",
        lambda o: (
            assert_eq(o["window_start"].to_list(), [at(0), at(60)]),
            assert_eq(o["window_end"].to_list(), [at(60), at(120)]),
            assert_eq(o["ts"].to_list(), [at(60), at(120)]),
            assert_eq(o["count"].to_list(), [2, 1]),
        ),
    )


def test_sliding_windows_start_before_the_first_event() -> None:
    # One row at 00:01:30; windows [k·1m, k·1m + 2m) holding it: k=0 and k=1.
    text = METRICS + "rule r from m window sliding 2m every 1m having count() > 0 and avg(cpu) > 1"
    rows = [(at(90), "a", 5.0, "x")]
    check(
        text,
        {"m": frame(M, rows)},
        "r",
        lambda o: (
            assert_eq(o["window_start"].to_list(), [at(0), at(60)]),
            assert_eq(o["ts"].to_list(), [at(120), at(180)]),
            assert_eq(o["avg_cpu"].to_list(), [5.0, 5.0]),
        ),
    )


def test_session_gap_exactly_g_starts_a_new_session() -> None:
    text = METRICS + "rule r from m group by host window session gap 1m having count() >= 1"
    rows = [(at(0), "a", 1.0, "x"), (at(30), "a", 1.0, "x"), (at(90), "a", 1.0, "x"), (at(200), "a", 1.0, "x")]
    # 0 and 30 share a session [0, 90); 90 is exactly 60 s after 30: new session [90, 150); 200: [200, 260).
    check(
        text,
        {"m": frame(M, rows)},
        "r",
        lambda o: (
            assert_eq(o["window_start"].to_list(), [at(0), at(90), at(200)]),
            assert_eq(o["window_end"].to_list(), [at(90), at(150), at(260)]),
            assert_eq(o["count"].to_list(), [2, 1, 1]),
        ),
    )


def test_last_n_events_after_every_row() -> None:
    text = METRICS + "rule r from m window last 3 events having sum(cpu) > 5"
    rows = [(at(i), "a", float(i + 1), "x") for i in range(4)]  # cpu 1, 2, 3, 4
    # sums: [1]=1, [1,2]=3, [1,2,3]=6 ✓, [2,3,4]=9 ✓
    check(
        text,
        {"m": frame(M, rows)},
        "r",
        lambda o: (
            assert_eq(o["ts"].to_list(), [at(2), at(3)]),
            assert_eq(o["sum_cpu"].to_list(), [6.0, 9.0]),
            assert_eq(o["window_start"].to_list(), [at(0), at(1)]),
        ),
    )


def test_last_n_events_ties_come_in_input_order() -> None:
    """Rows of several groups at one time: their `last N` matches come in the order of the
    rows, not of the group keys, in replay as in a session fed one row at a time (whose
    earlier matches are out before a later row arrives)."""
    text = METRICS + "rule r from m group by host window last 2 events having count() >= 1"
    rows = [
        (at(0), "c", 1.0, "x"),
        (at(0), "a", 2.0, "x"),
        (at(0), None, 3.0, "x"),
        (at(0), "b", 4.0, "x"),
        (at(1), "a", 5.0, "x"),
        (at(1), "c", 6.0, "x"),
    ]
    check(
        text,
        {"m": frame(M, rows)},
        "r",
        lambda o: (
            assert_eq(o["host"].to_list(), ["c", "a", None, "b", "a", "c"]),
            assert_eq(o["window_start"].to_list(), [at(0)] * 6),
        ),
    )


def test_aggregate_names_and_values() -> None:
    text = (
        "stream m (ts: timestamp, host: str, cpu: float, data.avg: float)\n"
        "rule r from m window tumbling 1h having count(cpu) >= 0 and std(cpu) > 0 and percentile(cpu, 99.9) > 0"
        " and distinct(host) >= 1 and max(data.avg) > 0 and min(host) == \"a\""
    )
    schema = {"ts": pl.Datetime("us"), "host": pl.String, "cpu": pl.Float64, "data.avg": pl.Float64}
    rows = [(at(0), "a", 1.0, 2.0), (at(1), "b", 2.0, 3.0), (at(2), "a", None, 1.0), (at(3), "c", 4.0, None)]

    def expect(o: pl.DataFrame) -> None:
        assert o.columns == [
            "rule",
            "ts",
            "severity",
            "window_start",
            "window_end",
            "count_cpu",
            "std_cpu",
            "p99_9_cpu",
            "distinct_host",
            "max_data_avg",
            "min_host",
        ]
        row = o.row(0, named=True)
        assert row["count_cpu"] == 3  # the null is skipped
        assert math.isclose(row["std_cpu"], 1.5275252316519468)  # sample std of 1, 2, 4
        assert math.isclose(row["p99_9_cpu"], 3.996)  # numpy linear: 2 + (4-2)*0.998
        assert row["distinct_host"] == 3
        assert row["max_data_avg"] == 3.0
        assert row["min_host"] == "a"

    check(text, {"m": frame(schema, rows)}, "r", expect)


# ----------------------------------------------------------------------------- §5.3 schedule


def test_schedule_without_group_by_evaluates_empty_ticks() -> None:
    text = METRICS + 'rule r from m schedule "*/10 * * * *" over 10m having count() >= 0'
    rows = [(at(5 * 60), "a", 1.0, "x"), (at(27 * 60), "a", 1.0, "x")]
    # First event 00:05, last 00:27: ticks 00:10 ([00:00, 00:10): 1 row) and 00:20 ([00:10, 00:20): none).
    check(
        text,
        {"m": frame(M, rows)},
        "r",
        lambda o: (
            assert_eq(o["ts"].to_list(), [at(600), at(1200)]),
            assert_eq(o["count"].to_list(), [1, 0]),
            assert_eq(o["window_start"].to_list(), [at(0), at(600)]),
        ),
    )


def test_schedule_with_group_by_only_groups_with_rows() -> None:
    text = METRICS + 'rule r from m group by host schedule "*/10 * * * *" over 10m having count() >= 0'
    rows = [(at(5 * 60), "a", 1.0, "x"), (at(12 * 60), "b", 1.0, "x"), (at(27 * 60), "a", 1.0, "x")]
    check(
        text,
        {"m": frame(M, rows)},
        "r",
        lambda o: (
            assert_eq(
                list(zip(o["ts"].to_list(), o["host"].to_list(), o["count"].to_list())), [(at(600), "a", 1), (at(1200), "b", 1)]
            ),
        ),
    )


# ----------------------------------------------------------------------------- §5.4 patterns

AUTH = "stream auth (ts: timestamp, user: str, event_type: str)\n"
A = {"ts": pl.Datetime("us"), "user": pl.String, "event_type": pl.String}
BRUTE = AUTH + (
    "rule r from auth group by user pattern fail{3,} ok within 10m\n"
    '  define fail as event_type == "login_failed", ok as event_type == "login_ok"\n'
)


def test_pattern_brute_force_record() -> None:
    rows = [
        (at(0), "u", "login_failed"),
        (at(10), "v", "login_ok"),
        (at(20), "u", "login_failed"),
        (at(30), "u", "login_failed"),
        (at(40), "u", "login_failed"),
        (at(50), "u", "login_ok"),
    ]
    check(
        BRUTE,
        {"auth": frame(A, rows)},
        "r",
        lambda o: (
            assert_eq(o["ts"].to_list(), [at(50)]),
            assert_eq(o["match_start"].to_list(), [at(0)]),
            assert_eq(o["fail_count"].to_list(), [4]),
            assert_eq(o["ok_count"].to_list(), [1]),
            assert_eq(o["user"].to_list(), ["u"]),
            assert_eq(o["event_type"].to_list(), ["login_ok"]),
        ),
    )


@pytest.mark.parametrize(("last", "matched"), [(600.0, True), (600.001, False)])
def test_pattern_within_is_inclusive(last: float, matched: bool) -> None:
    rows = [(at(0), "u", "login_failed"), (at(60), "u", "login_failed"), (at(120), "u", "login_failed"), (at(last), "u", "login_ok")]
    check(BRUTE, {"auth": frame(A, rows)}, "r", lambda o: assert_eq(o.height, 1 if matched else 0))


def test_pattern_backtracks_and_skips_past_last_row() -> None:
    text = AUTH + 'rule r from auth pattern a+ a b define a as event_type == "x", b as event_type == "y"'
    rows = [(at(i), "u", e) for i, e in enumerate(["x", "x", "x", "y", "x", "x", "y"])]
    # a+ first takes x x x, must give one back for `a`, then b: rows 0-3 (a_count 3).
    # Resume at row 4: x x y -> a+ = x, a = x, b = y: rows 4-6.
    check(
        text,
        {"auth": frame(A, rows)},
        "r",
        lambda o: (
            assert_eq(o["match_start"].to_list(), [at(0), at(4)]),
            assert_eq(o["ts"].to_list(), [at(3), at(6)]),
            assert_eq(o["a_count"].to_list(), [3, 2]),
        ),
    )


def test_pattern_alternation_prefers_the_left_branch() -> None:
    # Every row satisfies both p and q; the left alternative is tried first.
    text = AUTH + "rule r from auth pattern (p | q) q define p as user == \"u\", q as user == \"u\""
    rows = [(at(0), "u", "x"), (at(1), "u", "x")]
    check(
        text,
        {"auth": frame(A, rows)},
        "r",
        lambda o: (
            assert_eq(o["p_count"].to_list(), [1]),
            assert_eq(o["q_count"].to_list(), [1]),
        ),
    )


# ----------------------------------------------------------------------------- §5.5 absence


def test_absence_fires_up_to_the_streams_last_event_time() -> None:
    text = METRICS + 'rule r from m where status == "hb" group by host absent for 2m'
    rows = [
        (at(0), "h1", None, "hb"),
        (at(60), "h1", None, "hb"),
        (at(300), "h1", None, "hb"),
        (at(0), "h2", None, "hb"),
        (at(600), "h3", None, "other"),  # filtered out by `where`, but moves the stream's time to 10:00
    ]
    # h2: deadline 0+2m = 2m; h1 row at 1m: next row 5m > 3m -> deadline 3m; h1 row at 5m: deadline 7m ≤ 10m.
    check(
        text,
        {"m": frame(M, rows)},
        "r",
        lambda o: (
            assert_eq(
                list(zip(o["ts"].to_list(), o["host"].to_list(), o["last_seen"].to_list())),
                [(at(120), "h2", at(0)), (at(180), "h1", at(60)), (at(420), "h1", at(300))],
            ),
            assert_eq(o.columns, ["rule", "ts", "severity", "host", "last_seen"]),
        ),
    )


# ----------------------------------------------------------------------------- §5.6 anomaly


def test_zscore_uses_population_std_and_a_sliding_baseline() -> None:
    text = METRICS + "rule r from m group by host anomaly zscore(cpu, threshold = 1.0) baseline 3 warmup 3"
    values = [1.0, 2.0, 3.0, 10.0, 2.0]
    rows = [(at(i), "a", v, "x") for i, v in enumerate(values)]

    # x=10: baseline [1,2,3], mean 2, pop std sqrt(2/3) -> score 8/0.8165 = 9.798 > 1.
    # x=2: baseline [2,3,10], mean 5, pop std sqrt(38/3) = 3.559 -> 0.843: not an anomaly.
    def expect(o: pl.DataFrame) -> None:
        assert o["ts"].to_list() == [at(3)]
        assert math.isclose(o["score"][0], 8 / math.sqrt(2 / 3))
        assert o["method"].to_list() == ["zscore"]
        assert math.isclose(o["baseline_mean"][0], 2.0)
        assert math.isclose(o["baseline_std"][0], math.sqrt(2 / 3))
        assert o["baseline_n"].to_list() == [3]

    check(text, {"m": frame(M, rows)}, "r", expect)


def test_zscore_with_zero_std() -> None:
    text = METRICS + "rule r from m anomaly zscore(cpu) baseline 4 warmup 3"
    rows = [(at(i), "a", v, "x") for i, v in enumerate([5.0, 5.0, 5.0, 5.0, 6.0])]
    check(
        text,
        {"m": frame(M, rows)},
        "r",
        lambda o: (
            assert_eq(o["ts"].to_list(), [at(4)]),
            assert_eq(o["score"].to_list(), [math.inf]),
        ),
    )


def test_ema_scores_before_updating() -> None:
    text = METRICS + "rule r from m anomaly ema(cpu, alpha = 0.5, threshold = 1.5) warmup 2"
    rows = [(at(i), "a", v, "x") for i, v in enumerate([10.0, 12.0, 11.0, 20.0])]

    # m0=10 v0=0; x=12: d=2, m=11, v=0.5*(0+0.5*4)=1; x=11 (2 earlier values): score |11-11|/1 = 0;
    # d=0 -> m=11, v=0.5*(1+0)=0.5; x=20: score 9/sqrt(0.5) = 12.73 > 1.5.
    def expect(o: pl.DataFrame) -> None:
        assert o["ts"].to_list() == [at(3)]
        assert math.isclose(o["score"][0], 9 / math.sqrt(0.5))
        assert math.isclose(o["baseline_mean"][0], 11.0)

    check(text, {"m": frame(M, rows)}, "r", expect)


# ----------------------------------------------------------------------------- §5.7 throttle


def test_throttle_interval_is_open_on_the_left() -> None:
    text = METRICS + "rule r from m where cpu > 0 group by host throttle 5m"
    rows = [(at(s), "a", 1.0, "x") for s in (0, 120, 300, 360, 660)] + [(at(130), "b", 1.0, "x")]
    # a: 0 emitted; 2m suppressed (0 in (−3m, 2m]); 5m emitted (0 not in (0, 5m]); 6m suppressed; 11m emitted.
    check(
        text,
        {"m": frame(M, rows)},
        "r",
        lambda o: (
            assert_eq(
                list(zip(o["ts"].to_list(), o["host"].to_list())), [(at(0), "a"), (at(130), "b"), (at(300), "a"), (at(660), "a")]
            ),
        ),
    )


# ----------------------------------------------------------------------------- §6 streaming


def test_late_row_whose_window_fired_goes_to_dead_letter() -> None:
    rules = cepdsl.compile(METRICS + "rule r from m window tumbling 1m having count() >= 1")
    s = rules.session()
    out1 = s.push("m", frame(M, [(at(0), "a", 1.0, "x"), (at(70), "a", 1.0, "x")]))
    assert out1["r"]["count"].to_list() == [1]  # [0, 1m) fired: watermark 70 s ≥ 60 s
    s.push("m", frame(M, [(at(30), "a", 1.0, "x")]))  # its window already fired: late
    s.push("m", frame(M, [(at(65), "a", 1.0, "x")]))  # older than the watermark, window still open: counted
    final = s.flush()
    assert final["r"]["count"].to_list() == [2]
    dead = s.dead_letters()
    assert dead.height == 1
    assert "late" in dead["reason"][0]
    assert s.stats()["r"]["late"] == 1


def assert_eq(actual: object, expected: object) -> None:
    assert actual == expected, f"{actual!r} != {expected!r}"
