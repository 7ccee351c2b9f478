"""Row expressions: SQL three-valued logic, arithmetic, comparisons, functions."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from cepdsl.interpret import eval_expr
from cepdsl.plan import TBinary, TField, TUnary
from cepdsl.types import Type
from tests.interpret.interp_helpers import T0_US, H, M, S, value

P, Q = TField(Type.BOOL, "p"), TField(Type.BOOL, "q")
T, F, N = True, False, None

# Kleene's tables, exactly as SQL defines them.
AND = [(T, T, T), (T, F, F), (T, N, N), (F, T, F), (F, F, F), (F, N, F), (N, T, N), (N, F, F), (N, N, N)]
OR = [(T, T, T), (T, F, T), (T, N, T), (F, T, T), (F, F, F), (F, N, N), (N, T, T), (N, F, N), (N, N, N)]


@pytest.mark.parametrize(("p", "q", "expected"), AND)
def test_and_is_kleene(p: bool | None, q: bool | None, expected: bool | None) -> None:
    assert eval_expr(TBinary(Type.BOOL, "and", P, Q), {"p": p, "q": q}) is expected


@pytest.mark.parametrize(("p", "q", "expected"), OR)
def test_or_is_kleene(p: bool | None, q: bool | None, expected: bool | None) -> None:
    assert eval_expr(TBinary(Type.BOOL, "or", P, Q), {"p": p, "q": q}) is expected


@pytest.mark.parametrize(("p", "expected"), [(T, F), (F, T), (N, N)])
def test_not_of_null_is_null(p: bool | None, expected: bool | None) -> None:
    assert eval_expr(TUnary(Type.BOOL, "not", P), {"p": p}) is expected


def test_comparisons_with_null_are_null() -> None:
    assert value("cpu > 1") is None  # cpu null
    assert value("host != \"a\"") is None
    assert value("cpu is null") is True
    assert value("cpu is not null", cpu=1.0) is True


def test_not_of_null_comparison_keeps_row_out() -> None:
    # not (null > 1) = not null = null: a where clause would drop the row either way.
    assert value("not (cpu > 1)") is None


@pytest.mark.parametrize(
    ("text", "n", "expected"),
    [
        ("n in [1, 2]", 2, True),
        ("n in [1, 2]", 3, False),
        ("n in [1, 2]", None, None),  # null operand → null
        ("n in [1, null]", 1, True),  # found: true even with a null in the list
        ("n in [1, null]", 3, None),  # not found, list has null → null (SQL)
        ("n not in [1, null]", 3, None),  # not (null) = null
        ("n not in [1, 2]", 3, True),
        ("n not in [1, 2]", None, None),
    ],
)
def test_in_follows_sql(text: str, n: int | None, expected: bool | None) -> None:
    assert value(text, n=n) is expected


def test_int_in_float_list_compares_numerically() -> None:
    assert value("n in [1.0, 2.5]", n=1) is True


def test_division_is_float_and_by_zero_null() -> None:
    assert value("n / 2", n=7) == 3.5  # 7 / 2 = 3.5, not 3
    assert isinstance(value("n / 1", n=4), float)
    assert value("n / 0", n=7) is None
    assert value("cpu / 0", cpu=1.5) is None  # float division by zero: null too, not inf
    assert value("cpu / 0.0", cpu=0.0) is None  # not NaN


@pytest.mark.parametrize(("n", "expected"), [(7, 1), (-7, -1), (6, 0)])
def test_remainder_truncates_like_sql(n: int, expected: int) -> None:
    # 7 % 3 = 1; -7 % 3 = -1 (sign of the dividend, as in SQL), not Python's 2
    assert value("n % 3", n=n) == expected


def test_remainder_by_zero_and_of_floats() -> None:
    assert value("n % 0", n=7) is None
    assert value("cpu % 2", cpu=-7.5) == -1.5  # fmod: -7.5 = -3*2 - 1.5


def test_int_arithmetic_stays_int_and_mixes_to_float() -> None:
    assert value("n * 3 - 1", n=4) == 11 and isinstance(value("n * 3 - 1", n=4), int)
    assert value("n + cpu", n=1, cpu=0.5) == 1.5
    assert value("-n", n=5) == -5
    assert value("n + 1") is None  # null propagates


def test_int_arithmetic_wraps_at_64_bits_like_int64() -> None:
    big = 2**63 - 1
    assert value("n + 1", n=big) == -(2**63)


@pytest.mark.parametrize(
    ("x", "expected"),
    [(2.5, 3.0), (-2.5, -3.0), (0.5, 1.0), (1.49, 1.0), (-0.4, -0.0), (0.49999999999999994, 0.0)],
)
def test_round_half_away_from_zero(x: float, expected: float) -> None:
    assert value("round(cpu)", cpu=x) == expected


def test_round_with_digits_and_of_ints() -> None:
    assert value("round(cpu, 1)", cpu=0.25) == 0.3  # 0.25 * 10 = 2.5 → 3 → 0.3
    assert value("round(cpu, 1)", cpu=-0.25) == -0.3
    assert value("round(n)", n=7) == 7
    assert value("round(n, -1)", n=15) == 20  # 1.5 tens → 2 tens


def test_floor_ceil_abs_keep_the_type() -> None:
    assert value("floor(cpu)", cpu=-1.5) == -2.0
    assert value("ceil(cpu)", cpu=-1.5) == -1.0
    assert value("abs(n)", n=-3) == 3
    assert value("abs(cpu)", cpu=-0.5) == 0.5
    assert value("floor(n)", n=3) == 3


def test_string_functions() -> None:
    assert value("len(host)", host="héllo") == 5  # characters, not UTF-8 bytes (6)
    assert value("lower(host)", host="AbC") == "abc"
    assert value("upper(host)", host="AbC") == "ABC"
    assert value("len(host)") is None


def test_coalesce_takes_first_non_null_and_widens() -> None:
    assert value("coalesce(cpu, n)", cpu=None, n=3) == 3.0
    assert isinstance(value("coalesce(cpu, n)", cpu=None, n=3), float)
    assert value("coalesce(cpu, n)", cpu=1.5, n=3) == 1.5
    assert value("coalesce(cpu, n)") is None


def test_time_functions_in_utc() -> None:
    # T0 = 2024-01-01 00:00 UTC, a Monday. +3d 13h 7m = Thursday 13:07.
    t = T0_US + 3 * 24 * H + 13 * H + 7 * M
    assert value("hour(ts)", ts=t) == 13
    assert value("minute(ts)", ts=t) == 7
    assert value("day_of_week(ts)", ts=t) == 4  # ISO: Thursday = 4
    assert value("day_of_week(ts)", ts=T0_US + 6 * 24 * H) == 7  # Sunday = 7
    assert value("day_of_week(ts)", ts=T0_US) == 1  # Monday = 1


def test_time_functions_before_the_epoch() -> None:
    # 1969-12-31 23:30 UTC, a Wednesday: floor division, not truncation toward zero.
    t = -30 * M
    assert value("hour(ts)", ts=t) == 23
    assert value("minute(ts)", ts=t) == 30
    assert value("day_of_week(ts)", ts=t) == 3


def test_timestamp_plus_duration_is_microseconds() -> None:
    assert value("ts + 5m", ts=T0_US) == T0_US + 5 * M
    assert value("ts - 500ms > ts - 1s", ts=T0_US) is True
    assert value("ts + 1s") is None


def test_string_predicates() -> None:
    assert value('host contains "b"', host="abc") is True
    assert value('host contains "a.c"', host="abc") is False  # literal, not a regex
    assert value('host starts_with "ab"', host="abc") is True
    assert value('host ends_with "bc"', host="abc") is True
    assert value('host ends_with "ab"', host="abc") is False
    assert value('host contains "x"') is None


def test_matches_is_an_unanchored_re2_search() -> None:
    assert value('host matches "b+"', host="abbbc") is True  # found in the middle
    assert value('host matches "^b"', host="abc") is False
    assert value('host matches "^a.c$"', host="abc") is True
    assert value('host matches "x"') is None


def test_string_comparison_is_by_code_point() -> None:
    assert value('host < "b"', host="a") is True
    assert value('host < "b"', host="B") is True  # "B" (66) < "b" (98)


def test_nan_equals_itself_and_sorts_above_numbers() -> None:
    nan = math.nan
    assert value("cpu == cpu", cpu=nan) is True
    assert value("cpu > 1e308", cpu=nan) is True
    assert value("cpu < 0", cpu=nan) is False
    assert value("cpu is null", cpu=nan) is False  # NaN is a value, not a null


def test_boolean_literals_and_time_literals() -> None:
    assert value("true and not false") is True
    assert value("ts + 1s - 1000ms == ts", ts=T0_US + S) is True


def test_datetimes_in_a_row_are_read_as_utc_microseconds() -> None:
    naive = dt.datetime(2024, 1, 1, 13, 7)
    aware = dt.datetime(2024, 1, 1, 15, 7, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert value("hour(ts)", ts=naive) == 13
    assert value("hour(ts)", ts=aware) == 13  # 15:07 at UTC+2 is 13:07 UTC
    assert value("ts + 1s", ts=naive) == T0_US + 13 * H + 7 * M + S
