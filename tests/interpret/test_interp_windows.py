"""Window rules (§5.2): epoch-aligned `[start, end)` windows, sessions, last N events."""

from __future__ import annotations

import math

from tests.interpret.interp_helpers import events, matches, records, replay

W = ("ts", "window_start", "window_end")


def test_tumbling_window_boundary_belongs_to_the_next_window() -> None:
    # 1m windows: 0s and 59.999999s → [0, 60); 60s exactly → [60, 120).
    frame = events({"ts": 0, "cpu": 1.0}, {"ts": 59.999999, "cpu": 2.0}, {"ts": 60, "cpu": 4.0})
    got = matches("rule t from m window tumbling 1m having sum(cpu) > 0\n", frame, *W, "sum_cpu")
    assert got == [
        {"ts": 60, "window_start": 0, "window_end": 60, "sum_cpu": 3.0},  # 1 + 2
        {"ts": 120, "window_start": 60, "window_end": 120, "sum_cpu": 4.0},
    ]


def test_tumbling_without_having_emits_every_non_empty_window_only() -> None:
    # Rows at 10s and 130s: windows [0,60) and [120,180); [60,120) is empty and never emits.
    frame = events({"ts": 10}, {"ts": 130})
    got = matches("rule t from m window tumbling 1m\n", frame, "window_start")
    assert got == [{"window_start": 0}, {"window_start": 120}]


def test_tumbling_is_aligned_to_the_epoch_not_the_first_event() -> None:
    # T0 is a multiple of 1h, so a 1h window holding T0 + 30m starts at T0.
    got = matches("rule t from m window tumbling 1h\n", events({"ts": 1800}), *W)
    assert got == [{"ts": 3600, "window_start": 0, "window_end": 3600}]


def test_sliding_windows_include_those_starting_before_the_data() -> None:
    # sliding 3m every 1m, one row at 0s: windows [-2m,1m), [-1m,2m), [0,3m) all hold it.
    got = matches("rule s from m window sliding 3m every 1m having count() >= 1\n", events({"ts": 0}), *W, "count")
    assert got == [
        {"ts": 60, "window_start": -120, "window_end": 60, "count": 1},
        {"ts": 120, "window_start": -60, "window_end": 120, "count": 1},
        {"ts": 180, "window_start": 0, "window_end": 180, "count": 1},
    ]


def test_sliding_counts_per_window() -> None:
    # sliding 2m every 1m; rows at 30s, 90s, 150s.
    # [-60,60): {30} → 1; [0,120): {30,90} → 2; [60,180): {90,150} → 2; [120,240): {150} → 1
    frame = events({"ts": 30}, {"ts": 90}, {"ts": 150})
    got = matches("rule s from m window sliding 2m every 1m having count() >= 2\n", frame, "window_start", "count")
    assert got == [{"window_start": 0, "count": 2}, {"window_start": 60, "count": 2}]


def test_sliding_with_every_equal_to_size_is_tumbling() -> None:
    frame = events({"ts": 0}, {"ts": 60})
    got = matches("rule s from m window sliding 1m every 1m\n", frame, "window_start")
    assert got == [{"window_start": 0}, {"window_start": 60}]


def test_session_gap_exactly_g_starts_a_new_session() -> None:
    # gap 10s; rows at 0, 5 (5 < 10: same), 15 (gap exactly 10: new), 24.999999 (< 10: same).
    frame = events({"ts": 0}, {"ts": 5}, {"ts": 15}, {"ts": 24.999999})
    got = matches("rule s from m window session gap 10s having count() > 0\n", frame, *W, "count")
    assert got == [
        {"ts": 15, "window_start": 0, "window_end": 15, "count": 2},  # [0, 5 + 10)
        {"ts": 34.999999, "window_start": 15, "window_end": 34.999999, "count": 2},  # [15, 24.999999 + 10)
    ]


def test_sessions_are_per_group() -> None:
    # host a: 0, 8 (one session); host b: 4, 20 (two sessions, gap 16 ≥ 10).
    frame = events({"ts": 0, "host": "a"}, {"ts": 4, "host": "b"}, {"ts": 8, "host": "a"}, {"ts": 20, "host": "b"})
    got = matches("rule s from m group by host window session gap 10s\n", frame, "host", *W)
    assert got == [
        {"host": "b", "ts": 14, "window_start": 4, "window_end": 14},
        {"host": "a", "ts": 18, "window_start": 0, "window_end": 18},
        {"host": "b", "ts": 30, "window_start": 20, "window_end": 30},
    ]


def test_last_n_events_after_every_row() -> None:
    # last 3 events of cpu 1, 2, 3, 4 at 10s, 20s, 30s, 40s:
    # sums 1, 1+2=3, 1+2+3=6, 2+3+4=9; window_start = oldest of the (up to) 3 rows.
    frame = events(*({"ts": 10 * i, "cpu": float(i)} for i in range(1, 5)))
    got = matches("rule l from m window last 3 events having count() > 0\n", frame, *W, "count")
    got_sum = matches("rule l from m window last 3 events having sum(cpu) > 0\n", frame, "sum_cpu")
    assert got == [
        {"ts": 10, "window_start": 10, "window_end": 10, "count": 1},
        {"ts": 20, "window_start": 10, "window_end": 20, "count": 2},
        {"ts": 30, "window_start": 10, "window_end": 30, "count": 3},
        {"ts": 40, "window_start": 20, "window_end": 40, "count": 3},
    ]
    assert [r["sum_cpu"] for r in got_sum] == [1.0, 3.0, 6.0, 9.0]


def test_last_n_ties_keep_input_order_within_a_group() -> None:
    # Two rows at the same time: two windows, the second one holds both.
    frame = events({"ts": 5, "cpu": 1.0}, {"ts": 5, "cpu": 2.0})
    got = matches("rule l from m window last 2 events having sum(cpu) > 0\n", frame, "ts", "sum_cpu")
    assert got == [{"ts": 5, "sum_cpu": 1.0}, {"ts": 5, "sum_cpu": 3.0}]


def test_having_with_group_key_and_aggregate() -> None:
    # tumbling 1m by host; a: avg(10, 30) = 20; b: avg(50) = 50. `host == "a"` is the group key.
    frame = events({"ts": 1, "host": "a", "cpu": 10.0}, {"ts": 2, "host": "b", "cpu": 50.0}, {"ts": 3, "host": "a", "cpu": 30.0})
    rule = 'rule g from m group by host window tumbling 1m having host == "a" and avg(cpu) >= 20\n'
    assert matches(rule, frame, "host", "avg_cpu") == [{"host": "a", "avg_cpu": 20.0}]


def test_having_null_is_no_match() -> None:
    # Every cpu is null: avg is null, `avg(cpu) > 0` is null → no match; count() is 2.
    frame = events({"ts": 1}, {"ts": 2})
    assert matches("rule g from m window tumbling 1m having avg(cpu) > 0\n", frame) == []
    assert matches("rule g from m window tumbling 1m having count() == 2\n", frame, "count") == [{"count": 2}]


def test_window_record_carries_every_aggregate() -> None:
    # cpu 1, 2, 4, null, 4 in one window:
    # count() 5, count(cpu) 4, sum 11, avg 11/4 = 2.75, min 1, max 4, distinct {1,2,4} = 3,
    # std: mean 2.75, squares 3.0625 + 0.5625 + 1.5625 + 1.5625 = 6.75, /(4-1) = 2.25 → 1.5,
    # p50: sorted [1,2,4,4], index 0.5*3 = 1.5 → 2 + 0.5*(4-2) = 3.
    cpus = [1.0, 2.0, 4.0, None, 4.0]
    frame = events(*({"ts": i, "cpu": c} for i, c in enumerate(cpus)))
    rule = (
        "rule g from m window tumbling 1m having count() > 0 and count(cpu) > 0 and sum(cpu) > 0 and "
        "avg(cpu) > 0 and min(cpu) > 0 and max(cpu) > 0 and distinct(cpu) > 0 and std(cpu) > 0 and "
        "percentile(cpu, 50) > 0\n"
    )
    (got,) = matches(rule, frame)
    assert {k: got[k] for k in ("count", "count_cpu", "sum_cpu", "avg_cpu", "min_cpu", "max_cpu", "distinct_cpu")} == {
        "count": 5,
        "count_cpu": 4,
        "sum_cpu": 11.0,
        "avg_cpu": 2.75,
        "min_cpu": 1.0,
        "max_cpu": 4.0,
        "distinct_cpu": 3,
    }
    assert math.isclose(got["std_cpu"], 1.5) and got["p50_cpu"] == 3.0


def test_windows_with_equal_ts_are_ordered_by_start_then_group_key() -> None:
    # tumbling 1m by host; both hosts' windows end at 60s. Order: host "a" before "b";
    # a null host sorts first.
    frame = events({"ts": 1, "host": "b"}, {"ts": 2, "host": "a"}, {"ts": 3, "host": None})
    got = matches("rule g from m group by host window tumbling 1m having count() > 0\n", frame, "host", "count")
    assert got == [{"host": None, "count": 1}, {"host": "a", "count": 1}, {"host": "b", "count": 1}]


def test_window_matches_are_ordered_by_ts_across_windows() -> None:
    # sliding 2m every 1m: all windows of host b end before the later ones of host a.
    frame = events({"ts": 0, "host": "a"}, {"ts": 200, "host": "b"})
    got = matches("rule g from m group by host window sliding 2m every 1m\n", frame, "ts", "host")
    assert got == [{"ts": 60, "host": "a"}, {"ts": 120, "host": "a"}, {"ts": 240, "host": "b"}, {"ts": 300, "host": "b"}]


def test_where_runs_before_the_window() -> None:
    frame = events({"ts": 1, "status": "up"}, {"ts": 2, "status": "down"}, {"ts": 3, "status": "down"})
    got = matches('rule g from m where status == "down" window tumbling 1m\n', frame, "window_start")
    assert got == [{"window_start": 0}]  # no aggregates used: the record has none
    got = matches('rule g from m where status == "down" window tumbling 1m having count() > 0\n', frame, "count")
    assert got == [{"count": 2}]


def test_int_sum_stays_int_and_all_null_sum_is_null() -> None:
    frame = events({"ts": 1, "n": 2}, {"ts": 2, "n": 3}, {"ts": 61})
    result = replay("rule g from m window tumbling 1m having count() > 0 and sum(n) is null or sum(n) > 0\n", frame)
    out = result.matches["g"]
    assert str(out["sum_n"].dtype) == "Int64"
    assert records(out, "window_start", "sum_n") == [
        {"window_start": 0, "sum_n": 5},  # 2 + 3
        {"window_start": 60, "sum_n": None},  # the only n is null: sum is null (SQL), not 0
    ]


def test_null_group_keys_form_one_group_and_nan_keys_another() -> None:
    # group by cpu (a float key): null, null → one group of 2; NaN, NaN → one group of 2; 1.0 → 1.
    frame = events({"ts": 1}, {"ts": 2, "cpu": math.nan}, {"ts": 3}, {"ts": 4, "cpu": 1.0}, {"ts": 5, "cpu": math.nan})
    got = matches("rule g from m group by cpu window tumbling 1m having count() > 0\n", frame, "cpu", "count")
    assert got[0] == {"cpu": None, "count": 2}  # nulls sort first
    assert got[1] == {"cpu": 1.0, "count": 1}
    assert math.isnan(got[2]["cpu"]) and got[2]["count"] == 2  # NaN sorts last
