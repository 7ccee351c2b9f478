"""Schedule rules (§5.3): ticks after the first event, up to the last; [T − D, T)."""

from __future__ import annotations

from tests.interpret.interp_helpers import events, matches

W = ("ts", "window_start", "window_end")


def test_ticks_strictly_after_first_event_and_up_to_the_last() -> None:
    # Every 10 minutes, over 10m; events at 0s (a tick time itself: not later, so no tick at 0),
    # 5m and 20m. Ticks: 10m and 20m (20m == max ts: included). Rows in [0,10m): 2, [10m,20m): 0.
    frame = events({"ts": 0}, {"ts": 300}, {"ts": 1200})
    got = matches('rule s from m schedule "*/10 * * * *" over 10m having count() >= 0\n', frame, *W, "count")
    assert got == [
        {"ts": 600, "window_start": 0, "window_end": 600, "count": 2},
        {"ts": 1200, "window_start": 600, "window_end": 1200, "count": 0},  # empty tick, still evaluated
    ]


def test_empty_tick_without_group_by_has_null_aggregates() -> None:
    # Ticks each minute; rows at 0s and 150s. Tick 60s: [0,60) {cpu 1}; 120s: [60,120) empty.
    frame = events({"ts": 0, "cpu": 1.0}, {"ts": 150, "cpu": 2.0})
    got = matches('rule s from m schedule "* * * * *" over 1m having count() >= 0\n', frame, "ts", "count")
    assert got == [{"ts": 60, "count": 1}, {"ts": 120, "count": 0}]
    got = matches('rule s from m schedule "* * * * *" over 1m having avg(cpu) is null\n', frame, "ts", "avg_cpu")
    assert got == [{"ts": 120, "avg_cpu": None}]  # avg of no rows is null


def test_without_having_every_tick_emits() -> None:
    frame = events({"ts": 30}, {"ts": 200})
    # Ticks each minute after 30s, up to 200s: 60, 120, 180.
    got = matches('rule s from m schedule "* * * * *" over 1m\n', frame, "ts")
    assert got == [{"ts": 60}, {"ts": 120}, {"ts": 180}]


def test_with_group_by_only_groups_with_rows_are_evaluated() -> None:
    # Ticks each minute over 2m. a at 10s and 100s, b at 70s; last event 130s (host c, starts the tick at 120s).
    frame = events({"ts": 10, "host": "a"}, {"ts": 70, "host": "b"}, {"ts": 100, "host": "a"}, {"ts": 130, "host": "c"})
    got = matches('rule s from m group by host schedule "* * * * *" over 2m having count() > 0\n', frame, "ts", "host", "count")
    assert got == [
        {"ts": 60, "host": "a", "count": 1},  # [-60, 60): a@10
        {"ts": 120, "host": "a", "count": 2},  # [0, 120): a@10, a@100
        {"ts": 120, "host": "b", "count": 1},  # [0, 120): b@70 (groups ordered by key)
    ]


def test_window_is_closed_left_open_right() -> None:
    # over 1m at tick 120s: [60, 120). A row at exactly 60 is in; at exactly 120 it is not.
    frame = events({"ts": 0}, {"ts": 60}, {"ts": 120})
    got = matches('rule s from m schedule "* * * * *" over 1m having count() > 0\n', frame, "ts", "count")
    assert got == [{"ts": 60, "count": 1}, {"ts": 120, "count": 1}]


def test_where_does_not_move_the_first_and_last_tick() -> None:
    # Ticks are bounded by all events on the stream (before `where`): first 0s, last 180s.
    frame = events({"ts": 0, "status": "up"}, {"ts": 90, "status": "down"}, {"ts": 180, "status": "up"})
    got = matches('rule s from m where status == "down" schedule "* * * * *" over 1m having count() >= 0\n', frame, "ts", "count")
    assert got == [{"ts": 60, "count": 0}, {"ts": 120, "count": 1}, {"ts": 180, "count": 0}]


def test_daily_cron_in_utc() -> None:
    # "0 9 * * *" over 24h; events 2024-01-01 08:00 and 2024-01-02 10:00 → one tick, 2024-01-01 09:00.
    frame = events({"ts": 8 * 3600, "cpu": 5.0}, {"ts": 34 * 3600, "cpu": 7.0})
    got = matches('rule s from m schedule "0 9 * * *" over 24h having max(cpu) > 0\n', frame, *W, "max_cpu")
    assert got == [{"ts": 9 * 3600, "window_start": -15 * 3600, "window_end": 9 * 3600, "max_cpu": 5.0}]


def test_no_events_no_ticks() -> None:
    assert matches('rule s from m schedule "* * * * *" over 1m\n', events()) == []


def test_day_of_month_and_day_of_week_combine_with_or() -> None:
    # "0 0 13 * 5": midnight on the 13th OR on Fridays (Vixie cron). January 2024:
    # Fridays 5, 12, 19, 26; the 13th is a Saturday → ticks on the 5th, 12th, 13th, 19th, 26th.
    day = 86400
    frame = events({"ts": 0}, {"ts": 30 * day})
    got = matches('rule s from m schedule "0 0 13 * 5" over 1d\n', frame, "ts")
    assert [g["ts"] // day + 1 for g in got] == [5, 12, 13, 19, 26]  # day of month of each tick
