"""Pattern rules on hand-made streams: expected matches written out by hand."""

from __future__ import annotations

import polars as pl
import pytest

from cepdsl.backends import executor_for
from cepdsl.backends.numba.pattern_compile import compile_pattern
from cepdsl.executor import Progress

from harness import at, released, rule_of, run_batches, us

AUTH = "stream auth (ts: timestamp, user: str, event_type: str, price: float)\n"


def frame(events: list[tuple[float, str, str]], prices: list[float] | None = None) -> pl.DataFrame:
    n = len(events)
    return pl.DataFrame(
        {
            "ts": [at(t) for t, _, _ in events],
            "user": [u for _, u, _ in events],
            "event_type": [e for _, _, e in events],
            "price": prices if prices is not None else [None] * n,
        },
        schema={"ts": pl.Datetime("us"), "user": pl.String, "event_type": pl.String, "price": pl.Float64},
    )


def matches(rule_text: str, df: pl.DataFrame, cuts: list[int] = ()) -> list[tuple]:  # type: ignore[assignment]
    _, rule = rule_of(AUTH + rule_text)
    out = run_batches(rule, df, cuts)
    steps = rule.pattern.steps  # type: ignore[union-attr]
    cols = ["user", "match_start", "ts", *(f"{s}_count" for s in steps)]
    return [(r[0], (r[1] - at(0)).total_seconds(), (r[2] - at(0)).total_seconds(), *r[3:]) for r in out.select(cols).iter_rows()]


def every_split(rule_text: str, df: pl.DataFrame) -> list[tuple]:
    """The matches, after checking that every single split point gives the same."""
    whole = matches(rule_text, df)
    for c in range(1, df.height):
        assert matches(rule_text, df, [c]) == whole, f"split before row {c}"
    assert matches(rule_text, df, list(range(df.height))) == whole, "one row per batch"
    return whole


BRUTE = """rule brute
  from auth
  where event_type in ["login_failed", "login_ok"]
  group by user
  pattern fail{3,} ok within 10m
  define fail as event_type == "login_failed", ok as event_type == "login_ok"
"""


def test_brute_force_login() -> None:
    ev = [
        (0, "u", "login_failed"),
        (60, "u", "login_failed"),
        (120, "u", "logout"),
        (180, "u", "login_failed"),
        (240, "u", "login_failed"),
        (300, "u", "login_ok"),
        # only two failures, then ok: no match
        (400, "v", "login_failed"),
        (410, "v", "login_failed"),
        (420, "v", "login_ok"),
        # three failures but the ok comes 10m + 1s after the first: too late
        (1000, "w", "login_failed"),
        (1001, "w", "login_failed"),
        (1002, "w", "login_failed"),
        (1601, "w", "login_ok"),
    ]
    # `where` drops the logout, so u's four failures are consecutive; greedy takes all four.
    assert every_split(BRUTE, frame(ev)) == [("u", 0, 300, 4, 1)]


def test_within_exactly_d_matches_and_one_microsecond_more_does_not() -> None:
    _, rule = rule_of(AUTH + BRUTE)
    base = [at(0), at(1), at(2)]
    for last, want in ((600_000_000, 1), (600_000_001, 0)):
        df = pl.DataFrame(
            {
                "ts": [*base, at(0) + (at(last / 1e6) - at(0))],
                "user": ["u"] * 4,
                "event_type": ["login_failed"] * 3 + ["login_ok"],
                "price": [None] * 4,
            },
            schema={"ts": pl.Datetime("us"), "user": pl.String, "event_type": pl.String, "price": pl.Float64},
        )
        assert run_batches(rule, df).height == want


def test_price_v_shape() -> None:
    rule = """rule v
  from auth
  pattern down+ up+ within 1h
  define down as price < 100, up as price >= 100
"""
    prices = [120, 99, 95, 90, 101, 105, 98, 97, 130]
    ev = [(i * 60, "s", "tick") for i in range(len(prices))]
    got = every_split(rule, frame(ev, [float(p) for p in prices]))
    # down+ takes 99 95 90, up+ takes 101 105 greedily; then 98 97 down, 130 up.
    assert got == [("s", 60, 300, 3, 2), ("s", 360, 480, 2, 1)]


def test_a_bstar_c_with_interleaved_groups() -> None:
    rule = """rule abc
  from auth
  group by user
  pattern a b* c
  define a as event_type == "a", b as event_type == "b", c as event_type == "c"
"""
    ev = [
        (0, "x", "a"),
        (1, "y", "a"),
        (2, "x", "b"),
        (3, "y", "c"),
        (4, "x", "b"),
        (5, "x", "c"),
        (6, "y", "a"),
        (7, "y", "b"),
        (8, "x", "a"),
        (9, "y", "d"),
        (10, "x", "c"),
    ]
    got = every_split(rule, frame(ev))
    assert got == [("y", 1, 3, 1, 0, 1), ("x", 0, 5, 1, 2, 1), ("x", 8, 10, 1, 0, 1)]


def test_backtracking_a_plus_a_b() -> None:
    rule = """rule bt
  from auth
  pattern a+ a b
  define a as event_type == "a", b as event_type == "b"
"""
    ev = [(i, "u", e) for i, e in enumerate(["a", "a", "a", "a", "b", "a", "b", "a", "a", "b"])]
    # a+ must give one row back to the second `a` (counted under the same step).
    assert every_split(rule, frame(ev)) == [("u", 0, 4, 4, 1), ("u", 7, 9, 2, 1)]


def test_alternation_prefers_the_left_option_and_steps_in_order() -> None:
    rule = """rule alt
  from auth
  pattern (p | q) r?
  define p as event_type != "z", q as event_type == "q", r as event_type == "r"
"""
    ev = [(0, "u", "q"), (1, "u", "r"), (2, "u", "z"), (3, "u", "q")]
    # A `q` row satisfies both p and q: it is taken as p, the left option.
    assert every_split(rule, frame(ev)) == [("u", 0, 1, 1, 0, 1), ("u", 3, 3, 1, 0, 0)]


def test_skip_past_last_row_and_zero_row_matches_do_not_count() -> None:
    rule = """rule sk
  from auth
  pattern a{2}
  define a as event_type == "a"
"""
    ev = [(i, "u", "a") for i in range(5)]
    assert every_split(rule, frame(ev)) == [("u", 0, 1, 2), ("u", 2, 3, 2)]
    star = """rule st
  from auth
  pattern a*
  define a as event_type == "a"
"""
    ev = [(0, "u", "b"), (1, "u", "a"), (2, "u", "a"), (3, "u", "b")]
    assert every_split(star, frame(ev)) == [("u", 1, 2, 2)]


def test_flink_stock_example_greedy() -> None:
    # Flink MATCH_RECOGNIZE docs: PATTERN (START_ROW PRICE_DOWN+ PRICE_UP), prices
    # 12 17 13 16 15 14 13 20 with DEFINE against a threshold instead of LAST().
    rule = """rule flink
  from auth
  pattern start down+ up
  define start as price >= 17, down as price < 17 and price > 12, up as price >= 20
"""
    prices = [12, 17, 13, 16, 15, 14, 13, 20, 17, 16, 21]
    ev = [(i, "ACME", "tick") for i in range(len(prices))]
    assert every_split(rule, frame(ev, [float(p) for p in prices])) == [("ACME", 1, 7, 1, 5, 1), ("ACME", 8, 10, 1, 1, 1)]


def test_undecided_start_waits_for_the_watermark() -> None:
    _, rule = rule_of(AUTH + BRUTE)
    ex = executor_for(rule)
    rows = released(rule, frame([(0, "u", "login_failed"), (1, "u", "login_failed"), (2, "u", "login_failed"), (3, "u", "login_ok")]))
    # fail{3,} could still take more failures before the ok? No: ok ends it — decided at once.
    out = ex.process(rows, Progress(us(3), us(0), us(3)))
    assert out.height == 1
    ex2 = executor_for(rule)
    tail = released(rule, frame([(0, "u", "login_failed"), (1, "u", "login_failed"), (2, "u", "login_failed")]))
    assert ex2.process(tail, Progress(us(2), us(0), us(2))).height == 0
    assert ex2.state()["buffer"] is not None  # the three failures wait for an ok
    assert ex2.advance(Progress(us(600), us(0), us(600))).height == 0
    assert ex2.state()["buffer"] is not None  # 600s after the start an ok could still join
    assert ex2.advance(Progress(us(600) + 1, us(0), us(600) + 1)).height == 0
    # The start at 0 is decided (no match); the one at 1s is still open.
    assert ex2._buffer is not None and ex2._buffer.height == 2
    assert ex2.advance(Progress(us(602) + 1, us(0), us(602) + 1)).height == 0
    assert ex2.state()["buffer"] is None  # every start decided: nothing kept


def test_snapshot_restore_mid_stream_gives_the_same_matches() -> None:
    _, rule = rule_of(AUTH + BRUTE)
    ev = [(i * 30, u, "login_failed" if i % 5 else "login_ok") for i in range(40) for u in ("a", "b")]
    df = frame(sorted(ev))
    whole = run_batches(rule, df)
    assert whole.height > 0
    for snap in (1, 2, 3):
        assert run_batches(rule, df, [13, 40, 61], snapshot_at=snap).equals(whole)


@pytest.mark.parametrize(
    ("regex", "listing"),
    [
        ("a b* c", ["STEP 0", "SPLIT 2 4", "STEP 1", "JMP 1", "STEP 2", "MATCH"]),
        ("a{2,3}", ["STEP 0", "STEP 0", "SPLIT 3 4", "STEP 0", "MATCH"]),
        ("(a?)*", ["SPLIT 1 6", "SAVE 0", "SPLIT 3 4", "STEP 0", "CHECK 0", "JMP 0", "MATCH"]),
    ],
)
def test_compiled_programs(regex: str, listing: list[str]) -> None:
    steps = sorted({c for c in regex if c.isalpha()})
    defines = ", ".join(f"{s} as event_type == \"{s}\"" for s in steps)
    _, rule = rule_of(AUTH + f"rule c\n from auth\n pattern {regex}\n define {defines}\n")
    prog = compile_pattern(rule.pattern)  # type: ignore[arg-type]
    got = [" ".join(line.split()[1:]).replace("  (no memo)", "").replace(" (no memo)", "") for line in prog.listing().splitlines()]
    assert got == listing
