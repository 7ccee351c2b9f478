"""The expression compiler against hand-computed values, nulls included."""

from __future__ import annotations

import datetime as dt
import math

import polars as pl
import pytest

from cepdsl.backends.polars import (
    UnsupportedExpression,
    compile_expr,
    compile_many,
    compile_predicate,
    evaluate_many,
)
from cepdsl.plan import TAgg, TBinary, TCall, TExpr, TField, TIn, TIsNull, TLit, TUnary
from cepdsl.types import Type

T = Type
I = lambda n: TField(T.INT, n)  # noqa: E731
F = lambda n: TField(T.FLOAT, n)  # noqa: E731
S = lambda n: TField(T.STR, n)  # noqa: E731
B = lambda n: TField(T.BOOL, n)  # noqa: E731
lit = lambda t, v: TLit(t, v)  # noqa: E731
NULL = TLit(T.NULL, None)


def ts(*a: int) -> dt.datetime:
    return dt.datetime(*a)


FRAME = pl.DataFrame(
    {
        "a": [-7, 7, None, 0, 5],
        "b": [3, -3, 1, 0, 2],
        "x": [2.5, -2.5, 0.5, None, -0.5],
        "s": ["abc", None, "xbz", "Zä", "a.c"],
        "p": [True, False, None, True, None],
        "q": [None, None, None, False, True],
        "t": [ts(2024, 1, 1, 13, 45), ts(2024, 1, 7, 0, 1), None, ts(2024, 1, 8, 23, 59), ts(2023, 12, 31)],
        "data.avg": [1.0, 2.0, 3.0, None, 5.0],
    },
    schema_overrides={"t": pl.Datetime("us")},
)


def ev(e: TExpr) -> list[object]:
    return FRAME.select(compile_expr(e).alias("r"))["r"].to_list()


def bin_(op: str, l: TExpr, r: TExpr, t: Type = T.BOOL) -> TBinary:
    return TBinary(t, op, l, r)


# ------------------------------------------------------------------ comparisons and logic


@pytest.mark.parametrize(
    ("op", "expected"),
    [
        ("==", [False, False, None, True, False]),
        ("!=", [True, True, None, False, True]),
        ("<", [True, False, None, False, False]),
        ("<=", [True, False, None, True, False]),
        (">", [False, True, None, False, True]),
        (">=", [False, True, None, True, True]),
    ],
)
def test_comparisons_with_null_give_null(op: str, expected: list[object]) -> None:
    assert ev(bin_(op, I("a"), lit(T.INT, 0))) == expected


def test_comparison_with_null_literal_is_null() -> None:
    assert ev(bin_("==", I("a"), NULL)) == [None] * 5
    assert ev(bin_("!=", S("s"), NULL)) == [None] * 5


def test_int_float_comparison_mixes() -> None:
    assert ev(bin_(">", I("a"), lit(T.FLOAT, 4.5))) == [False, True, None, False, True]


def test_string_comparison() -> None:
    assert ev(bin_("==", S("s"), lit(T.STR, "abc"))) == [True, None, False, False, False]
    assert ev(bin_("<", S("s"), lit(T.STR, "b"))) == [True, None, False, True, True]


def test_kleene_and_or_not() -> None:
    # p: T F N T N ; q: N N N F T
    assert ev(bin_("and", B("p"), B("q"))) == [None, False, None, False, None]
    assert ev(bin_("or", B("p"), B("q"))) == [True, None, None, True, True]
    assert ev(TUnary(T.BOOL, "not", B("p"))) == [False, True, None, False, None]


def test_timestamp_comparison_with_literal() -> None:
    e = bin_(">=", TField(T.TIMESTAMP, "t"), lit(T.TIMESTAMP, ts(2024, 1, 7)))
    assert ev(e) == [False, True, None, True, False]
    # int µs literal means the same instant
    us = int((ts(2024, 1, 7) - dt.datetime(1970, 1, 1)).total_seconds() * 1_000_000)
    assert ev(bin_(">=", TField(T.TIMESTAMP, "t"), lit(T.TIMESTAMP, us))) == [False, True, None, True, False]


# ------------------------------------------------------------------ arithmetic


def test_add_sub_mul_neg() -> None:
    assert ev(bin_("+", I("a"), I("b"), T.INT)) == [-4, 4, None, 0, 7]
    assert ev(bin_("-", I("a"), I("b"), T.INT)) == [-10, 10, None, 0, 3]
    assert ev(bin_("*", I("a"), F("x"), T.FLOAT)) == [-17.5, -17.5, None, None, -2.5]
    assert ev(TUnary(T.INT, "neg", I("a"))) == [7, -7, None, 0, -5]


def test_division_is_float_and_null_by_zero() -> None:
    out = ev(bin_("/", I("a"), I("b"), T.FLOAT))
    assert out[0] == pytest.approx(-7 / 3) and out[1] == pytest.approx(-7 / 3)
    assert out[2:] == [None, None, 2.5]
    assert ev(bin_("/", F("x"), lit(T.FLOAT, 0.0), T.FLOAT)) == [None] * 5
    assert ev(bin_("/", I("b"), lit(T.INT, 2), T.FLOAT)) == [1.5, -1.5, 0.5, 0.0, 1.0]


def test_remainder_is_truncated_and_null_by_zero() -> None:
    # SQL / C: the sign follows the dividend
    assert ev(bin_("%", I("a"), I("b"), T.INT)) == [-1, 1, None, None, 1]
    assert ev(bin_("%", F("x"), lit(T.FLOAT, 2.0), T.FLOAT)) == [0.5, -0.5, 0.5, None, -0.5]
    assert ev(bin_("%", I("a"), lit(T.INT, 0), T.INT)) == [None] * 5


def test_timestamp_plus_minus_duration() -> None:
    tf = TField(T.TIMESTAMP, "t")
    d = lit(T.DURATION, 90 * 60 * 1_000_000)  # 90m
    assert ev(bin_("+", tf, d, T.TIMESTAMP))[0] == ts(2024, 1, 1, 15, 15)
    assert ev(bin_("-", tf, d, T.TIMESTAMP))[0] == ts(2024, 1, 1, 12, 15)
    assert ev(bin_("+", tf, d, T.TIMESTAMP))[2] is None
    cmp = bin_(">", bin_("+", tf, d, T.TIMESTAMP), lit(T.TIMESTAMP, ts(2024, 1, 1, 15)))
    assert ev(cmp) == [True, True, None, True, False]


# ------------------------------------------------------------------ in / is null


def test_in_without_null_members() -> None:
    assert ev(TIn(T.BOOL, I("a"), (7, 0), False)) == [False, True, None, True, False]
    assert ev(TIn(T.BOOL, I("a"), (7, 0), True)) == [True, False, None, False, True]
    assert ev(TIn(T.BOOL, S("s"), ("abc", "a.c"), False)) == [True, None, False, False, True]


def test_in_with_null_member_follows_sql() -> None:
    assert ev(TIn(T.BOOL, I("a"), (7, None), False)) == [None, True, None, None, None]
    assert ev(TIn(T.BOOL, I("a"), (7, None), True)) == [None, False, None, None, None]


def test_in_float_list_for_int_operand() -> None:
    assert ev(TIn(T.BOOL, I("a"), (7, 0.5), False)) == [False, True, None, False, False]


def test_is_null() -> None:
    assert ev(TIsNull(T.BOOL, I("a"), False)) == [False, False, True, False, False]
    assert ev(TIsNull(T.BOOL, S("s"), True)) == [True, False, True, True, True]


# ------------------------------------------------------------------ string predicates


def test_string_predicates() -> None:
    assert ev(bin_("contains", S("s"), lit(T.STR, "."))) == [False, None, False, False, True]
    assert ev(bin_("starts_with", S("s"), lit(T.STR, "a"))) == [True, None, False, False, True]
    assert ev(bin_("ends_with", S("s"), lit(T.STR, "c"))) == [True, None, False, False, True]
    # regex search, unanchored; `.` is a metacharacter here
    assert ev(bin_("matches", S("s"), lit(T.STR, "a.c"))) == [True, None, False, False, True]
    assert ev(bin_("matches", S("s"), lit(T.STR, "^b"))) == [False, None, False, False, False]
    assert ev(bin_("matches", S("s"), lit(T.STR, "b"))) == [True, None, True, False, False]
    assert ev(bin_("contains", S("s"), NULL)) == [None] * 5


# ------------------------------------------------------------------ functions


def call(func: str, t: Type, *args: TExpr) -> TCall:
    return TCall(t, func, tuple(args))


def test_abs_floor_ceil() -> None:
    assert ev(call("abs", T.INT, I("a"))) == [7, 7, None, 0, 5]
    assert ev(call("abs", T.FLOAT, F("x"))) == [2.5, 2.5, 0.5, None, 0.5]
    assert ev(call("floor", T.FLOAT, F("x"))) == [2.0, -3.0, 0.0, None, -1.0]
    assert ev(call("ceil", T.FLOAT, F("x"))) == [3.0, -2.0, 1.0, None, -0.0]
    assert ev(call("floor", T.INT, I("a"))) == [-7, 7, None, 0, 5]


def test_round_half_away_from_zero() -> None:
    assert ev(call("round", T.FLOAT, F("x"))) == [3.0, -3.0, 1.0, None, -1.0]
    assert ev(call("round", T.INT, I("a"))) == [-7, 7, None, 0, 5]
    assert ev(call("round", T.FLOAT, F("data.avg"), lit(T.INT, 1))) == [1.0, 2.0, 3.0, None, 5.0]


def test_lower_upper_len_counts_characters() -> None:
    assert ev(call("lower", T.STR, S("s"))) == ["abc", None, "xbz", "zä", "a.c"]
    assert ev(call("upper", T.STR, S("s"))) == ["ABC", None, "XBZ", "ZÄ", "A.C"]
    assert ev(call("len", T.INT, S("s"))) == [3, None, 3, 2, 3]  # "Zä" is 3 bytes, 2 chars


def test_coalesce_mixes_numeric() -> None:
    assert ev(call("coalesce", T.FLOAT, I("a"), F("x"), lit(T.FLOAT, 9.0))) == [-7.0, 7.0, 0.5, 0.0, 5.0]
    assert ev(call("coalesce", T.STR, S("s"), lit(T.STR, "-"))) == ["abc", "-", "xbz", "Zä", "a.c"]


def test_time_functions() -> None:
    tf = TField(T.TIMESTAMP, "t")
    assert ev(call("hour", T.INT, tf)) == [13, 0, None, 23, 0]
    assert ev(call("minute", T.INT, tf)) == [45, 1, None, 59, 0]
    # 2024-01-01 Monday, 01-07 Sunday, 01-08 Monday, 2023-12-31 Sunday
    assert ev(call("day_of_week", T.INT, tf)) == [1, 7, None, 1, 7]
    assert FRAME.select(compile_expr(call("hour", T.INT, tf)))["t"].dtype == pl.Int64


def test_dotted_field_is_a_plain_column() -> None:
    assert ev(bin_(">", F("data.avg"), lit(T.FLOAT, 2.0))) == [False, False, True, None, True]


def test_aggregate_reads_its_column() -> None:
    frame = pl.DataFrame({"avg_cpu": [80.0, 90.0], "count": [3, 12]})
    e = bin_(
        "and",
        bin_(">", TAgg(T.FLOAT, "avg", "cpu", None, "avg_cpu"), lit(T.INT, 85)),
        bin_(">=", TAgg(T.INT, "count", None, None, "count"), lit(T.INT, 10)),
    )
    assert frame.select(compile_expr(e))["avg_cpu"].to_list() == [False, True]


# ------------------------------------------------------------------ predicates, many, cache


def test_predicate_maps_null_to_false() -> None:
    e = bin_(">", I("a"), lit(T.INT, 0))
    assert FRAME.select(compile_predicate(e).alias("r"))["r"].to_list() == [False, True, False, False, True]


def test_compile_is_cached_structurally() -> None:
    e1 = bin_(">", I("a"), lit(T.INT, 0))
    e2 = bin_(">", I("a"), lit(T.INT, 0))
    assert e1 is not e2 and compile_expr(e1) is compile_expr(e2)


def test_many_in_one_select() -> None:
    common = bin_(">", I("a"), lit(T.INT, 0))
    exprs = [common, bin_("and", common, bin_("==", S("s"), lit(T.STR, "a.c"))), TIsNull(T.BOOL, F("x"), False)]
    out = evaluate_many(FRAME, exprs, ["r1", "r2", "r3"])
    assert out.columns == ["r1", "r2", "r3"]
    assert out["r1"].to_list() == [False, True, False, False, True]
    assert out["r2"].to_list() == [False, False, False, False, True]
    assert out["r3"].to_list() == [False, False, False, True, False]
    assert [e.meta.output_name() for e in compile_many(exprs)] == ["__p0", "__p1", "__p2"]


def test_unknown_node_fails_loudly() -> None:
    with pytest.raises(UnsupportedExpression):
        compile_expr(TExpr(T.INT))
    with pytest.raises(UnsupportedExpression):
        compile_expr(call("sqrt", T.FLOAT, F("x")))
    with pytest.raises(UnsupportedExpression):
        compile_expr(bin_("**", I("a"), I("b"), T.INT))


def test_nan_free_division_results() -> None:
    out = ev(bin_("/", F("x"), F("x"), T.FLOAT))
    assert all(v is None or not math.isnan(v) for v in out)


def test_many_with_constant_predicates_keeps_frame_length() -> None:
    out = evaluate_many(FRAME, [lit(T.BOOL, True), bin_("and", lit(T.BOOL, True), NULL)])
    assert out["__p0"].to_list() == [True] * 5 and out["__p1"].to_list() == [False] * 5
