"""Absence rules (§5.5): deadline t + D fires when no later row of the group is in (t, t + D]."""

from __future__ import annotations

from tests.interpret.interp_helpers import events, matches

RULE = "rule gone from m group by host absent for 1m\n"


def test_fires_after_silence_and_only_up_to_the_last_event_time() -> None:
    # D = 60s. a@0: next a@30 is within (0, 60] → nothing. a@30: next a@200 > 90 → fires at 90.
    # a@200: no later a; deadline 260 ≤ max ts 300 → fires. b@300: deadline 360 > 300 → never reached.
    frame = events({"ts": 0, "host": "a"}, {"ts": 30, "host": "a"}, {"ts": 200, "host": "a"}, {"ts": 300, "host": "b"})
    assert matches(RULE, frame, "ts", "host", "last_seen") == [
        {"ts": 90, "host": "a", "last_seen": 30},
        {"ts": 260, "host": "a", "last_seen": 200},
    ]


def test_record_has_group_keys_and_last_seen_only() -> None:
    frame = events({"ts": 0, "host": "a", "cpu": 1.0}, {"ts": 100, "host": "b"})
    (got,) = matches(RULE, frame)
    assert got == {"rule": "gone", "ts": 60, "severity": "medium", "host": "a", "last_seen": 0}


def test_a_row_exactly_d_later_keeps_the_group_alive() -> None:
    # a@0, a@60: 60 is in (0, 60] → no match; a@60's deadline 120 is past max ts 60.
    assert matches(RULE, events({"ts": 0, "host": "a"}, {"ts": 60, "host": "a"})) == []


def test_a_row_d_plus_one_microsecond_later_is_too_late() -> None:
    # a@0, a@60.000001: nothing in (0, 60] → fires at 60 (≤ max ts 60.000001).
    frame = events({"ts": 0, "host": "a"}, {"ts": 60.000001, "host": "a"})
    assert matches(RULE, frame, "ts", "last_seen") == [{"ts": 60, "last_seen": 0}]


def test_deadline_equal_to_the_last_event_time_fires() -> None:
    # a@0, b@60: a's deadline 60 == max ts 60 → the watermark reached it.
    frame = events({"ts": 0, "host": "a"}, {"ts": 60, "host": "b"})
    assert matches(RULE, frame, "ts", "host") == [{"ts": 60, "host": "a"}]


def test_one_match_per_group_and_deadline() -> None:
    # Two rows of a at the same time 0: both set deadline 60, one match. c@100 moves max ts.
    frame = events({"ts": 0, "host": "a"}, {"ts": 0, "host": "a"}, {"ts": 100, "host": "c"})
    assert matches(RULE, frame, "ts", "host", "last_seen") == [{"ts": 60, "host": "a", "last_seen": 0}]


def test_rows_filtered_by_where_still_advance_the_end_of_replay() -> None:
    # Only heartbeats count, but the last event (a metric at 500) sets max ts = 500,
    # so a's heartbeat deadline 10 + 60 = 70 fires.
    frame = events({"ts": 10, "host": "a", "status": "heartbeat"}, {"ts": 500, "host": "a", "status": "metric"})
    rule = 'rule hb from m where status == "heartbeat" group by host absent for 1m\n'
    assert matches(rule, frame, "ts", "last_seen") == [{"ts": 70, "last_seen": 10}]


def test_without_group_by_the_stream_is_one_group() -> None:
    # Rows at 0 (a), 50 (b), 200 (a): 50 is within (0, 60]; 200 > 110 → fires at 110.
    frame = events({"ts": 0, "host": "a"}, {"ts": 50, "host": "b"}, {"ts": 200, "host": "a"})
    assert matches("rule gone from m absent for 1m\n", frame, "ts", "last_seen") == [{"ts": 110, "last_seen": 50}]


def test_equal_deadlines_of_different_groups_keep_input_order() -> None:
    # b and a both last seen at 0 → both fire at 60; b's row came first.
    frame = events({"ts": 0, "host": "b"}, {"ts": 0, "host": "a"}, {"ts": 90, "host": "c"})
    assert matches(RULE, frame, "host") == [{"host": "b"}, {"host": "a"}]
