"""Row expression evaluation: one typed expression, one row, one Python value.

Values are plain Python: `int`, `float`, `str`, `bool`, or `None` for null.
Timestamps are `int` microseconds since the Unix epoch (UTC) and durations are
`int` microseconds, exactly as the engine carries them, so `ts + 5m` is integer
addition and no timezone can creep in. (A `datetime` in a row is accepted and
read as int µs, naive = UTC; results are always int µs.)

The rules followed here are the ones in LANGUAGE.md §4 plus the team's
conventions (see docs/semantics.md): SQL three-valued logic, `/` always float,
division or `%` by zero is null, `%` truncates like SQL, `round` is half away
from zero, `day_of_week` is ISO, `len` counts characters, int arithmetic wraps
at 64 bits like the Int64 columns it mirrors, and NaN is one value that equals
itself and sorts above every number (as in PostgreSQL and Polars).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import re2

from cepdsl.functions import FUNCTIONS, MAX_ROUND_DIGITS
from cepdsl.plan import (
    ARITH_OPS,
    COMPARE_OPS,
    STRING_OPS,
    TAgg,
    TBinary,
    TCall,
    TExpr,
    TField,
    TIn,
    TIsNull,
    TLit,
    TUnary,
)
from cepdsl.types import US_PER, Type

_INT64_MOD = 1 << 64
_INT64_MAX = (1 << 63) - 1


def wrap_int64(v: int) -> int:
    """Two's-complement wrap, because the Int64 columns this mirrors wrap too."""
    if -_INT64_MAX - 1 <= v <= _INT64_MAX:
        return v
    v %= _INT64_MOD
    return v - _INT64_MOD if v > _INT64_MAX else v


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def datetime_to_us(v: datetime) -> int:
    """Microseconds since the epoch; a naive datetime is taken as UTC."""
    if v.tzinfo is None:
        v = v.replace(tzinfo=timezone.utc)
    return (v - _EPOCH) // timedelta(microseconds=1)


def is_nan(v: Any) -> bool:
    return isinstance(v, float) and math.isnan(v)


def is_true(v: Any) -> bool:
    """`where`, `having` and `define` keep a row only when the value is exactly true."""
    return v is True


# --------------------------------------------------------------------------- entry point


def eval_expr(expr: TExpr, row: Mapping[str, Any], aggregates: Mapping[str, Any] | None = None) -> Any:
    """Evaluate `expr` on `row` (field name → value; timestamps as int µs).

    `aggregates` maps an aggregate's record name (`avg_cpu`) to its value for the
    window being judged; only `having` needs it.
    """
    return _eval(expr, row, aggregates or {})


Evaluator = Callable[[Any, Mapping[str, Any], Mapping[str, Any]], Any]
# One evaluator per node class: a plain dict lookup (cheaper than functools.singledispatch,
# and the interpreter visits every node once per row).
_EVALUATORS: dict[type, Evaluator] = {}


def _eval(expr: TExpr, row: Mapping[str, Any], aggs: Mapping[str, Any]) -> Any:
    evaluator = _EVALUATORS.get(type(expr))
    if evaluator is None:
        # Every node either evaluates or fails loudly: never a silent false.
        raise NotImplementedError(f"interpreter cannot evaluate {type(expr).__name__}")
    return evaluator(expr, row, aggs)


def _evaluates(node: type) -> Callable[[Evaluator], Evaluator]:
    def register(fn: Evaluator) -> Evaluator:
        _EVALUATORS[node] = fn
        return fn

    return register


@_evaluates(TLit)
def _eval_lit(expr: TLit, row: Mapping[str, Any], aggs: Mapping[str, Any]) -> Any:
    return expr.value


@_evaluates(TField)
def _eval_field(expr: TField, row: Mapping[str, Any], aggs: Mapping[str, Any]) -> Any:
    v = row[expr.name]
    # Rows built by hand (unit tests) may hold datetimes; the engine's unit is int µs.
    return datetime_to_us(v) if isinstance(v, datetime) else v


@_evaluates(TAgg)
def _eval_agg(expr: TAgg, row: Mapping[str, Any], aggs: Mapping[str, Any]) -> Any:
    if expr.name not in aggs:
        raise KeyError(f"aggregate {expr.name} used outside a window or schedule")
    return aggs[expr.name]


@_evaluates(TUnary)
def _eval_unary(expr: TUnary, row: Mapping[str, Any], aggs: Mapping[str, Any]) -> Any:
    v = _eval(expr.operand, row, aggs)
    if expr.op == "not":
        return kleene_not(v)
    if expr.op == "neg":
        if v is None:
            return None
        return wrap_int64(-v) if isinstance(v, int) and not isinstance(v, bool) else -v
    raise NotImplementedError(f"unary operator {expr.op!r}")


@_evaluates(TBinary)
def _eval_binary(expr: TBinary, row: Mapping[str, Any], aggs: Mapping[str, Any]) -> Any:
    op = expr.op
    left = _eval(expr.left, row, aggs)
    right = _eval(expr.right, row, aggs)
    if op == "and":
        return kleene_and(left, right)
    if op == "or":
        return kleene_or(left, right)
    if left is None or right is None:
        return None
    if op in ARITH_OPS:
        return arithmetic(op, left, right, expr.type)
    if op in COMPARE_OPS:
        return compare(op, left, right)
    if op in STRING_OPS:
        return string_test(op, left, right)
    raise NotImplementedError(f"binary operator {op!r}")


@_evaluates(TIn)
def _eval_in(expr: TIn, row: Mapping[str, Any], aggs: Mapping[str, Any]) -> Any:
    found = membership(_eval(expr.operand, row, aggs), expr.values)
    return kleene_not(found) if expr.negated else found


@_evaluates(TIsNull)
def _eval_isnull(expr: TIsNull, row: Mapping[str, Any], aggs: Mapping[str, Any]) -> Any:
    # NaN is a value, not a null (as in Polars and Arrow).
    missing = _eval(expr.operand, row, aggs) is None
    return not missing if expr.negated else missing


@_evaluates(TCall)
def _eval_call(expr: TCall, row: Mapping[str, Any], aggs: Mapping[str, Any]) -> Any:
    args = [_eval(a, row, aggs) for a in expr.args]
    return call(expr.func, args, expr.type)


# --------------------------------------------------------------------------- logic


def kleene_not(v: Any) -> Any:
    return None if v is None else not v


def _kleene(a: Any, b: Any, decisive: bool) -> Any:
    """SQL's `and` (decisive False) and `or` (decisive True): a decisive operand decides,
    else a null makes the result null."""
    if a is decisive or b is decisive:
        return decisive
    if a is None or b is None:
        return None
    return not decisive


def kleene_and(a: Any, b: Any) -> Any:
    return _kleene(a, b, False)


def kleene_or(a: Any, b: Any) -> Any:
    return _kleene(a, b, True)


# --------------------------------------------------------------------------- arithmetic


def arithmetic(op: str, a: Any, b: Any, result: Type) -> Any:
    """`a op b` for non-null operands; `result` is the checker's type of the node."""
    if op == "/":
        if b == 0:
            return None
        return float(a) / float(b)
    if op == "%":
        if b == 0:
            return None
        return _remainder(a, b, result)
    if op == "+":
        v = a + b
    elif op == "-":
        v = a - b
    elif op == "*":
        v = a * b
    else:
        raise NotImplementedError(f"arithmetic operator {op!r}")
    if result is Type.FLOAT:
        return float(v)
    return wrap_int64(v) if isinstance(v, int) else v


def _remainder(a: Any, b: Any, result: Type) -> Any:
    # SQL, Java (Esper) and Go (Prometheus) truncate: the remainder takes the
    # dividend's sign, so -7 % 3 is -1, not Python's 2.
    if result is Type.FLOAT or isinstance(a, float) or isinstance(b, float):
        try:
            return math.fmod(float(a), float(b))
        except ValueError:  # fmod(inf, y)
            return math.nan
    r = abs(a) % abs(b)
    return wrap_int64(-r if a < 0 else r)


# --------------------------------------------------------------------------- comparison


def compare(op: str, a: Any, b: Any) -> bool:
    """Non-null comparison. NaN equals NaN and is greater than every number."""
    a_nan, b_nan = is_nan(a), is_nan(b)
    if a_nan or b_nan:
        a, b = int(a_nan), int(b_nan)
    if op == "==":
        return a == b
    if op == "!=":
        return a != b
    if op == "<":
        return a < b
    if op == "<=":
        return a <= b
    if op == ">":
        return a > b
    if op == ">=":
        return a >= b
    raise NotImplementedError(f"comparison {op!r}")


def membership(v: Any, values: tuple[Any, ...]) -> Any:
    """SQL `v IN (...)`: null operand → null; not found but a null in the list → null."""
    if v is None:
        return None
    if any(x is not None and compare("==", v, x) for x in values):
        return True
    return None if any(x is None for x in values) else False


@functools.lru_cache(maxsize=256)
def _regex(pattern: str) -> Any:
    return re2.compile(pattern)


def string_test(op: str, s: str, arg: str) -> bool:
    if op == "contains":
        return arg in s
    if op == "starts_with":
        return s.startswith(arg)
    if op == "ends_with":
        return s.endswith(arg)
    if op == "matches":
        # Unanchored search, RE2 syntax: linear time whatever the input.
        return _regex(arg).search(s) is not None
    raise NotImplementedError(f"string operator {op!r}")


# --------------------------------------------------------------------------- functions


def round_half_away(x: float, digits: int = 0) -> float:
    """Round to `digits` decimals, halves away from zero (2.5 → 3, -2.5 → -3)."""
    if math.isnan(x) or math.isinf(x) or digits > MAX_ROUND_DIGITS:
        return x
    if digits < -MAX_ROUND_DIGITS:  # coarser than any float64
        return math.copysign(0.0, x)
    scale = 10.0 ** abs(digits)
    y = x * scale if digits >= 0 else x / scale
    r = float(math.trunc(y))
    if abs(y - r) >= 0.5:  # y - trunc(y) is exact in binary floating point
        r += math.copysign(1.0, y)
    return r / scale if digits >= 0 else r * scale


def _to_type(v: Any, t: Type) -> Any:
    if v is None:
        return None
    if t is Type.FLOAT and not isinstance(v, float):
        return float(v)
    return v


def _utc_field(ts_us: int, unit_us: int, modulo: int) -> int:
    return (ts_us // unit_us) % modulo


def _round(x: Any, digits: int = 0, *, result: Type) -> Any:
    if isinstance(x, int):
        if digits >= 0:
            return x
        return wrap_int64(int(round_half_away(float(x), digits)))  # round(1250, -2) = 1300
    return _to_type(round_half_away(x, digits), result)


def _floor_ceil(name: str) -> Callable[..., Any]:
    def f(x: Any, *, result: Type) -> Any:
        if isinstance(x, int) or math.isnan(x) or math.isinf(x):
            return x
        v = math.floor(x) if name == "floor" else math.ceil(x)
        return float(v) if result is Type.FLOAT else wrap_int64(v)

    return f


# Each part takes the evaluated arguments (never null for a `strict` function: `call`
# answers null first) and the call's result type.
for _name, _fn in {
    "coalesce": lambda *args, result: _to_type(next((a for a in args if a is not None), None), result),
    "abs": lambda x, *, result: wrap_int64(abs(x)) if isinstance(x, int) else abs(x),
    "round": _round,
    "floor": _floor_ceil("floor"),
    "ceil": _floor_ceil("ceil"),
    "lower": lambda x, *, result: x.lower(),
    "upper": lambda x, *, result: x.upper(),
    "len": lambda x, *, result: len(x),  # characters (code points), not bytes
    "hour": lambda x, *, result: _utc_field(x, US_PER["h"], 24),
    "minute": lambda x, *, result: _utc_field(x, US_PER["m"], 60),
    # 1970-01-01 was a Thursday (ISO 4); Monday = 1 … Sunday = 7.
    "day_of_week": lambda x, *, result: (x // US_PER["d"] + 3) % 7 + 1,
}.items():
    FUNCTIONS.set_part("interpret", _name, _fn)


def call(func: str, args: list[Any], result: Type) -> Any:
    """A scalar function on evaluated arguments; null in → null out for `strict` functions
    (all but `coalesce`)."""
    if FUNCTIONS[func].strict and any(a is None for a in args):
        return None
    return FUNCTIONS.part("interpret", func)(*args, result=result)
