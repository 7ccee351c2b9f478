"""Pattern rules (§5.4): backtracking preference order, `within`, skip past last row."""

from __future__ import annotations

import re

from tests.interpret.interp_helpers import events, matches


def steps(pattern: str) -> str:
    """`pattern P define ...` with `a`/`b`/`c` meaning status "a"/"b"/"c", for the steps P uses."""
    used = [v for v in "abc" if re.search(rf"\b{v}\b", pattern)]
    return f"pattern {pattern} define " + ", ".join(f'{v} as status == "{v}"' for v in used) + "\n"


def seq(*items: tuple[float, str], host: str = "h") -> list[dict[str, object]]:
    """Rows (time in s, status) of one host."""
    return [{"ts": t, "status": s, "host": host} for t, s in items]


def test_greedy_run_gives_back_a_row_for_the_rest_of_the_pattern() -> None:
    # `a+ a b` on a a a b: a+ first takes all three a's, then `a` fails on b,
    # so a+ gives one back: a+ = rows 0-1, a = row 2, b = row 3. a_count = 2 + 1 = 3.
    frame = events(*seq((0, "a"), (1, "a"), (2, "a"), (3, "b")))
    got = matches("rule p from m " + steps("a+ a b"), frame, "ts", "match_start", "a_count", "b_count")
    assert got == [{"ts": 3, "match_start": 0, "a_count": 3, "b_count": 1}]


def test_greedy_backtracks_when_a_row_satisfies_both_steps() -> None:
    # a as cpu > 0, b as cpu > 5; cpu 1, 2, 9: a+ takes 1, 2, 9, b finds no row,
    # a+ gives 9 back and b takes it: a_count 2, b_count 1.
    frame = events({"ts": 0, "cpu": 1.0}, {"ts": 1, "cpu": 2.0}, {"ts": 2, "cpu": 9.0})
    rule = "rule p from m pattern a+ b define a as cpu > 0, b as cpu > 5\n"
    assert matches(rule, frame, "a_count", "b_count", "cpu") == [{"a_count": 2, "b_count": 1, "cpu": 9.0}]


def test_left_alternative_preferred_when_both_fit() -> None:
    # (a | b) c where the first row satisfies both a and b (a as cpu > 0, b as cpu > 1): a wins.
    frame = events({"ts": 0, "cpu": 5.0, "status": "x"}, {"ts": 1, "cpu": 0.0, "status": "c"})
    rule = 'rule p from m pattern (a | b) c define a as cpu > 0, b as cpu > 1, c as status == "c"\n'
    assert matches(rule, frame, "a_count", "b_count", "c_count") == [{"a_count": 1, "b_count": 0, "c_count": 1}]


def test_alternation_backtracks_into_the_right_option() -> None:
    # (a b | a c) on a c: the left option fails at the second row, the right one matches.
    frame = events(*seq((0, "a"), (1, "c")))
    rule = "rule p from m " + steps("(a b | a c)")
    assert matches(rule, frame, "a_count", "b_count", "c_count") == [{"a_count": 1, "b_count": 0, "c_count": 1}]


def test_longer_left_alternative_wins_over_shorter_right() -> None:
    # (a | a b) on a b: the left alternative (just `a`) is preferred even though
    # the right one would be longer: regex preference, not longest match.
    frame = events(*seq((0, "a"), (1, "b")))
    got = matches("rule p from m " + steps("(a | a b)"), frame, "ts", "a_count", "b_count")
    assert got == [{"ts": 0, "a_count": 1, "b_count": 0}]


def test_within_equal_to_d_matches_d_plus_one_microsecond_does_not() -> None:
    rule = "rule p from m " + steps("a b within 10s")
    assert matches(rule, events(*seq((0, "a"), (10, "b"))), "ts") == [{"ts": 10}]  # 10 - 0 = 10 ≤ 10
    assert matches(rule, events(*seq((0, "a"), (10.000001, "b"))), "ts") == []  # 10.000001 > 10


def test_within_takes_a_shorter_preferred_match_rather_than_none() -> None:
    # x+ b within 10s (x: any row). Rows: 0 x, 5 b, 8 x, 15 b.
    # From row 0, greedy x+ = [0, 5, 8] then b@15 spans 15 > 10: rejected;
    # next preferred: x+ = [0], b@5 (5 ≤ 10) → match ending at 5. Resume at row 2:
    # x+ = [8], b@15 spans 7 → match ending at 15.
    frame = events(*seq((0, "x"), (5, "b"), (8, "x"), (15, "b")))
    rule = 'rule p from m pattern x+ b within 10s define b as status == "b"\n'
    got = matches(rule, frame, "ts", "match_start", "x_count", "b_count")
    assert got == [
        {"ts": 5, "match_start": 0, "x_count": 1, "b_count": 1},
        {"ts": 15, "match_start": 8, "x_count": 1, "b_count": 1},
    ]


def test_within_too_wide_from_one_start_tries_the_next_start() -> None:
    # a b within 5s on a@0, a@3, b@7: from row 0, b@7 spans 7 > 5 → no match from row 0
    # (a a b is not `a b`); from row 1: a@3, b@7 spans 4 → match.
    frame = events(*seq((0, "a"), (3, "a"), (7, "b")))
    got = matches("rule p from m " + steps("a b within 5s"), frame, "ts", "match_start")
    assert got == [{"ts": 7, "match_start": 3}]


def test_skip_past_last_row_gives_non_overlapping_matches() -> None:
    # x{2} (x: any row) over 5 rows: rows 0-1, rows 2-3; row 4 alone cannot match.
    frame = events(*({"ts": i} for i in range(5)))
    got = matches("rule p from m pattern x{2}\n", frame, "ts", "match_start", "x_count")
    assert got == [{"ts": 1, "match_start": 0, "x_count": 2}, {"ts": 3, "match_start": 2, "x_count": 2}]


def test_bounded_repeat_is_greedy_up_to_its_maximum() -> None:
    # a{2,3} over 5 a's: rows 0-2 (3 is the max), then rows 3-4 (2 is enough).
    frame = events(*seq(*((i, "a") for i in range(5))))
    got = matches("rule p from m " + steps("a{2,3}"), frame, "ts", "a_count")
    assert got == [{"ts": 2, "a_count": 3}, {"ts": 4, "a_count": 2}]


def test_zero_row_match_is_not_a_match() -> None:
    # a* on a a b a: rows 0-1 (a_count 2); from b, a* only matches zero rows: no match,
    # try the next start; row 3 → a_count 1.
    frame = events(*seq((0, "a"), (1, "a"), (2, "b"), (3, "a")))
    got = matches("rule p from m " + steps("a*"), frame, "ts", "a_count")
    assert got == [{"ts": 1, "a_count": 2}, {"ts": 3, "a_count": 1}]


def test_optional_and_star_steps_may_take_no_row() -> None:
    # a* b? c on c: a* and b? take nothing, c takes the row.
    frame = events(*seq((0, "c")))
    got = matches("rule p from m " + steps("a* b? c"), frame, "a_count", "b_count", "c_count")
    assert got == [{"a_count": 0, "b_count": 0, "c_count": 1}]


def test_optional_step_at_the_end_is_greedy() -> None:
    frame = events(*seq((0, "a"), (1, "b")))
    got = matches("rule p from m " + steps("a b?"), frame, "ts", "b_count")
    assert got == [{"ts": 1, "b_count": 1}]


def test_immediately_followed_by_means_no_row_in_between() -> None:
    # a b on a c b: the c between breaks it.
    frame = events(*seq((0, "a"), (1, "c"), (2, "b")))
    assert matches("rule p from m " + steps("a b"), frame) == []


def test_patterns_run_per_group_and_output_is_ordered_by_ts() -> None:
    # Host g1: a@0, b@4. Host g2: a@1, b@3. Interleaved; each host matches on its own.
    frame = events(*seq((0, "a"), host="g1"), *seq((1, "a"), (3, "b"), host="g2"), *seq((4, "b"), host="g1"))
    got = matches("rule p from m group by host " + steps("a b"), frame, "ts", "host", "match_start")
    assert got == [{"ts": 3, "host": "g2", "match_start": 1}, {"ts": 4, "host": "g1", "match_start": 0}]


def test_where_filters_rows_before_the_pattern_sees_them() -> None:
    # The row with status "c" is dropped by `where`, so a and b become adjacent.
    frame = events(*seq((0, "a"), (1, "c"), (2, "b")))
    rule = 'rule p from m where status != "c" ' + steps("a b")
    assert matches(rule, frame, "ts") == [{"ts": 2}]


def test_brute_force_example_from_the_language_reference() -> None:
    # fail{3,} ok within 10m, per user. u1: 4 fails then ok within 10m → one match (fail_count 4).
    # u2: 2 fails then ok → no match (needs 3).
    rows = [
        (0, "u1", "login_failed"),
        (60, "u1", "login_failed"),
        (70, "u2", "login_failed"),
        (120, "u1", "login_failed"),
        (130, "u2", "login_failed"),
        (180, "u1", "login_failed"),
        (200, "u2", "login_ok"),
        (240, "u1", "login_ok"),
    ]
    frame = events(*({"ts": t, "host": u, "status": s} for t, u, s in rows))
    rule = (
        'rule bf from m where status in ["login_failed", "login_ok"] group by host '
        'pattern fail{3,} ok within 10m define fail as status == "login_failed", ok as status == "login_ok"\n'
    )
    got = matches(rule, frame, "ts", "host", "status", "match_start", "fail_count", "ok_count")
    assert got == [{"ts": 240, "host": "u1", "status": "login_ok", "match_start": 0, "fail_count": 4, "ok_count": 1}]


def test_record_carries_the_last_rows_fields() -> None:
    frame = events({"ts": 0, "status": "a", "cpu": 1.0, "n": 1}, {"ts": 2, "status": "b", "cpu": 2.0, "n": 2})
    (got,) = matches("rule p from m " + steps("a b"), frame)
    assert got == {
        "rule": "p",
        "ts": 2,
        "severity": "medium",
        "host": None,
        "cpu": 2.0,
        "n": 2,
        "status": "b",
        "match_start": 0,
        "a_count": 1,
        "b_count": 1,
    }


def test_long_greedy_run_does_not_overflow_the_stack() -> None:
    # 5,000 a's then b: one match covering all 5,001 rows.
    frame = events(*seq(*((i, "a") for i in range(5000)), (5000, "b")))
    got = matches("rule p from m " + steps("a+ b"), frame, "a_count", "b_count")
    assert got == [{"a_count": 5000, "b_count": 1}]


def test_preferred_empty_alternative_gives_way_to_a_non_empty_one() -> None:
    # (a? | b) on one b row: the preferred path is `a?` taking nothing, which is
    # not a match; the next path in preference order, `b`, is.
    frame = events(*seq((0, "b")))
    assert matches("rule p from m " + steps("(a? | b)"), frame, "a_count", "b_count") == [{"a_count": 0, "b_count": 1}]
