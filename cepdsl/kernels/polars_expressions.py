"""Typed plan expressions (`cepdsl.plan.TExpr`) → Polars expressions.

One `functools.singledispatch` translator per node class; the fallback raises, so a
node the plan can hold either compiles or fails loudly, never silently.  The
semantics are the language's (LANGUAGE.md §4), not Polars' defaults, where the two
differ:

* comparisons, arithmetic and string predicates with a null operand give null, and
  `and`/`or`/`not` are Kleene — Polars' own behaviour, so those map one-to-one;
* `/` always gives float and `/` or `%` by zero gives null (Polars gives inf/NaN);
* `%` is the truncated remainder (sign of the dividend) as in SQL, Flink and
  Prometheus — Polars' `%` is floored like Python's;
* `x in [.., null]` is null when `x` is not found (SQL), Polars says false;
* `round` is half away from zero; `day_of_week` is ISO (Monday = 1).

Compiled expressions are cached by the (frozen, hashable) plan node, so rules that
share sub-expressions share the Polars objects, and `compile_many` hands Polars one
`select` whose common sub-expressions its CSE pass evaluates once.
"""

from __future__ import annotations

import datetime as _dt
import functools
from collections.abc import Iterable, Sequence

import polars as pl

from cepdsl.functions import FUNCTIONS, MAX_ROUND_DIGITS
from cepdsl.plan import TAgg, TBinary, TCall, TExpr, TField, TIn, TIsNull, TLit, TUnary
from cepdsl.types import Type, polars_dtype

_EPOCH = _dt.datetime(1970, 1, 1)
_DURATION = pl.Duration("us")
_DATETIME = pl.Datetime("us")


class UnsupportedExpression(TypeError):
    """A plan node this backend cannot translate (a bug in the plan or the backend)."""


# --------------------------------------------------------------------------- entry points


@functools.lru_cache(maxsize=1 << 16)
def compile_expr(expr: TExpr) -> pl.Expr:
    """The Polars expression computing `expr` with the language's null semantics."""
    if _null_in_null_out(expr):
        # `-null`, `not null`, `abs(null)`, `null % 2`: null, as in SQL. Polars has no
        # negate/abs/str/dt kernels for its Null dtype, so the result is written directly.
        t = expr.type
        return pl.lit(None, dtype=polars_dtype(t) if t in _CONCRETE else pl.Null)
    return _translate(expr)


_CONCRETE = (Type.INT, Type.FLOAT, Type.STR, Type.BOOL, Type.TIMESTAMP)
_NULL_PROPAGATING_BINARY = ("+", "-", "*", "/", "%")


def _null_in_null_out(expr: TExpr) -> bool:
    """True when `expr` is null whatever the row (found by bench/fuzz_frontend.py, seed 4000)."""
    if isinstance(expr, TUnary):
        return expr.operand.type is Type.NULL
    if isinstance(expr, TCall):
        return expr.func != "coalesce" and any(a.type is Type.NULL for a in expr.args)
    if isinstance(expr, TBinary) and expr.op in _NULL_PROPAGATING_BINARY:
        return Type.NULL in (expr.left.type, expr.right.type)
    return False


def compile_condition(expr: TExpr) -> pl.Expr:
    """`expr` as a Boolean column (null stays null). `where null` checks clean (null fits
    any type) and Polars' `filter`/`arg_true` refuse its Null dtype."""
    out = compile_expr(expr)
    return out.cast(pl.Boolean) if expr.type is Type.NULL else out


@functools.lru_cache(maxsize=1 << 16)
def compile_predicate(expr: TExpr) -> pl.Expr:
    """`expr` as a row filter: true keeps the row, false *and null* drop it."""
    return compile_condition(expr).fill_null(False)


def compile_many(exprs: Sequence[TExpr], names: Sequence[str] | None = None) -> list[pl.Expr]:
    """Predicates for many rules, aliased (`__p0`, `__p1`, ... unless `names` is given)
    so they can all be evaluated by ONE `select`; see `evaluate_many`."""
    if names is None:
        names = [f"__p{i}" for i in range(len(exprs))]
    if len(names) != len(exprs):
        raise ValueError("compile_many: one name per expression")
    return [full_length(compile_predicate(e)).alias(n) for e, n in zip(exprs, names, strict=True)]


def full_length(e: pl.Expr) -> pl.Expr:
    """`e` as a column as long as the frame: a predicate reading no column (`where true`,
    `where "a" in ["a", "b"]`) is a scalar, and a select of scalars alone gives one row.
    `first()` makes it a scalar Polars can repeat: `is_in` over a list literal is not one."""
    return e if e.meta.root_names() else pl.repeat(e.first(), pl.len())


#: Optimisations for the many-rules `select`: common sub-expression elimination is the
#: point (two rules testing `cpu > 80` evaluate it once).
MANY_OPTS = pl.QueryOptFlags(comm_subexpr_elim=True)


def evaluate_many(frame: pl.DataFrame, exprs: Sequence[TExpr], names: Sequence[str] | None = None) -> pl.DataFrame:
    """One boolean column per expression (null → false), evaluated in a single pass."""
    if not exprs:
        return pl.DataFrame()
    return frame.lazy().select(compile_many(exprs, names)).collect(optimizations=MANY_OPTS)


# --------------------------------------------------------------------------- translation


@functools.singledispatch
def _translate(expr: TExpr) -> pl.Expr:
    raise UnsupportedExpression(f"no Polars translation for {type(expr).__name__}: {expr!r}")


def _lit_value(value: object, t: Type) -> pl.Expr:
    if value is None or t is Type.NULL:
        return pl.lit(None, dtype=None if t is Type.NULL else polars_dtype(t))
    if t is Type.DURATION:
        # Durations are int microseconds; timestamp ± duration casts where needed.
        return pl.lit(int(value), dtype=pl.Int64)
    if t is Type.TIMESTAMP:
        return pl.lit(_to_datetime(value), dtype=_DATETIME)
    if t is Type.FLOAT:
        return pl.lit(float(value), dtype=pl.Float64)
    if t is Type.INT:
        return pl.lit(int(value), dtype=pl.Int64)
    if t is Type.BOOL:
        return pl.lit(bool(value), dtype=pl.Boolean)
    if t is Type.STR:
        return pl.lit(str(value), dtype=pl.String)
    raise UnsupportedExpression(f"literal of type {t}: {value!r}")


def _to_datetime(value: object) -> _dt.datetime:
    """Timestamp literals may come as int µs since the epoch or as (naive UTC) datetimes."""
    if isinstance(value, _dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(_dt.UTC).replace(tzinfo=None)
        return value
    return _EPOCH + _dt.timedelta(microseconds=int(value))  # type: ignore[arg-type]


@_translate.register
def _(expr: TLit) -> pl.Expr:
    return _lit_value(expr.value, expr.type)


@_translate.register
def _(expr: TField) -> pl.Expr:
    if expr.type is Type.STR:
        # A str field may arrive dictionary-encoded (Categorical/Enum, see
        # cepdsl.engine.frames): string functions, ordering and `coalesce` need the text.
        # A no-op on String.  Equality and `in` against literals use `_raw` instead.
        return pl.col(expr.name).cast(pl.String)
    return pl.col(expr.name)


def _raw(expr: TExpr) -> pl.Expr:
    """`expr` without the String decode of a str field: for `==`, `!=` and `in` against
    literals, which Polars evaluates on Categorical/Enum codes (same results as on the
    text, ~40x faster)."""
    if isinstance(expr, TField):
        return pl.col(expr.name)
    return compile_expr(expr)


def _str_literal(expr: TExpr) -> bool:
    return isinstance(expr, TLit) and isinstance(expr.value, str)


@_translate.register
def _(expr: TAgg) -> pl.Expr:
    # In `having`, aggregates are columns of the aggregated frame (named as in §7).
    return pl.col(expr.name)


@_translate.register
def _(expr: TUnary) -> pl.Expr:
    inner = compile_expr(expr.operand)
    if expr.op == "not":
        return ~inner  # Kleene: not null = null
    if expr.op == "neg":
        # In the engine's dtype first: `count()` columns are UInt32, which Polars cannot negate
        # (found by the fuzz run, seed 10001: `having -count(status) > 0`).
        t = expr.operand.type
        return -(inner.cast(polars_dtype(t)) if t in (Type.INT, Type.FLOAT) else inner)
    raise UnsupportedExpression(f"unary operator {expr.op!r}")


def _is_zero_safe(right: pl.Expr, op: str, left: pl.Expr) -> pl.Expr:
    # Division or remainder by zero is null, never inf/NaN.
    return pl.when(right == 0).then(None).otherwise(op_result(op, left, right))


def op_result(op: str, left: pl.Expr, right: pl.Expr) -> pl.Expr:
    if op == "/":
        return left.cast(pl.Float64) / right
    # Truncated remainder: |a| mod |b| carries a's sign (SQL / C / Go semantics).
    return (left.abs() % right.abs()) * left.sign()


_COMPARE = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}
_ARITH = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
}
_STRING = {
    "contains": lambda s, p: s.str.contains(p, literal=True),
    "starts_with": lambda s, p: s.str.starts_with(p),
    "ends_with": lambda s, p: s.str.ends_with(p),
    # Rust regex: linear time, unanchored search, like RE2.
    "matches": lambda s, p: s.str.contains(p, literal=False),
}


def _string_arg(expr: TExpr) -> str | pl.Expr:
    """A literal pattern stays a Python str (Polars compiles it once); else an expression."""
    if isinstance(expr, TLit) and isinstance(expr.value, str):
        return expr.value
    return compile_expr(expr)


@_translate.register
def _(expr: TBinary) -> pl.Expr:
    op, lt, rt = expr.op, expr.left.type, expr.right.type
    if op == "and":
        return compile_expr(expr.left) & compile_expr(expr.right)
    if op == "or":
        return compile_expr(expr.left) | compile_expr(expr.right)
    if op in _STRING:
        subject = compile_expr(expr.left)
        if lt is Type.NULL:
            # `null matches "x"`: Polars' string methods refuse the Null dtype; null in, null out (SQL).
            subject = subject.cast(pl.String)
        if isinstance(expr.right, TLit) and expr.right.value is None:
            return _STRING[op](subject, pl.lit(None, dtype=pl.String))
        return _STRING[op](subject, _string_arg(expr.right))
    if op in ("==", "!=") and (_str_literal(expr.left) or _str_literal(expr.right)):
        return _COMPARE[op](_raw(expr.left), _raw(expr.right))
    left, right = compile_expr(expr.left), compile_expr(expr.right)
    if op in _COMPARE:
        return _COMPARE[op](left, right)
    if op in ("+", "-") and Type.TIMESTAMP in (lt, rt):
        return _timestamp_arith(op, expr, left, right)
    if op in _ARITH:
        return _ARITH[op](left, right)
    if op in ("/", "%"):
        return _is_zero_safe(right, op, left)
    raise UnsupportedExpression(f"binary operator {op!r}")


def _timestamp_arith(op: str, expr: TBinary, left: pl.Expr, right: pl.Expr) -> pl.Expr:
    lt, rt = expr.left.type, expr.right.type
    if lt is Type.TIMESTAMP and rt is Type.TIMESTAMP and op == "-":
        # Not in the v1 grammar's typing, but well defined: a duration in µs.
        return (left - right).dt.total_microseconds()
    if lt is Type.TIMESTAMP and rt in (Type.DURATION, Type.INT, Type.NULL):
        d = right.cast(_DURATION)
        return left + d if op == "+" else left - d
    if rt is Type.TIMESTAMP and lt in (Type.DURATION, Type.INT, Type.NULL) and op == "+":
        return right + left.cast(_DURATION)
    raise UnsupportedExpression(f"{lt} {op} {rt}")


@_translate.register
def _(expr: TIn) -> pl.Expr:
    operand = _raw(expr.operand) if expr.operand.type is Type.STR else compile_expr(expr.operand)
    present = [v for v in expr.values if v is not None]
    has_null = len(present) != len(expr.values)
    t = expr.operand.type
    if t is Type.TIMESTAMP:
        present = [_to_datetime(v) for v in present]
    dtype = _in_dtype(t, present)
    if dtype is pl.Float64 and t is Type.INT:
        operand = operand.cast(pl.Float64)
    if present:
        found = operand.is_in(pl.Series(present, dtype=dtype).implode())  # null operand → null
    else:
        found = pl.when(operand.is_null()).then(None).otherwise(False)
    if has_null:
        # SQL: not found in a list holding null is unknown.
        found = pl.when(found).then(True).otherwise(None)
    return ~found if expr.negated else found


def _in_dtype(t: Type, values: list[object]) -> pl.DataType:
    if t is Type.INT and any(isinstance(v, float) and not float(v).is_integer() for v in values):
        return pl.Float64
    if t in (Type.INT, Type.FLOAT, Type.STR, Type.BOOL, Type.TIMESTAMP):
        return polars_dtype(t)
    if t is Type.NULL:
        return pl.Null
    raise UnsupportedExpression(f"`in` over {t}")


@_translate.register
def _(expr: TIsNull) -> pl.Expr:
    inner = compile_expr(expr.operand)
    return inner.is_not_null() if expr.negated else inner.is_null()


# --------------------------------------------------------------------------- functions


def _round(args: list[pl.Expr], expr: TCall) -> pl.Expr:
    decimals = 0
    if len(expr.args) > 1:
        d = expr.args[1]
        if not isinstance(d, TLit):
            raise UnsupportedExpression("round: the number of decimals must be a literal")
        decimals = int(d.value)
    if expr.args[0].type is Type.INT and decimals >= 0:
        return args[0]
    x = args[0].cast(pl.Float64)
    if decimals > MAX_ROUND_DIGITS:  # finer than any float64: the value itself
        return x
    if decimals < -MAX_ROUND_DIGITS:  # coarser than any float64: a signed zero (inf, NaN kept)
        return pl.when(x.is_finite()).then(x.sign() * 0.0).otherwise(x)
    if decimals < 0:
        # round(1250, -2) = 1300: Polars' `round` takes no negative decimals (found by the
        # fuzz run, seed 8001: OverflowError); the interpreter's round_half_away does this.
        scale = 10.0**-decimals
        return (x / scale).round(0, mode="half_away_from_zero") * scale
    return x.round(decimals, mode="half_away_from_zero")


def _floor_ceil(name: str) -> object:
    def f(args: list[pl.Expr], expr: TCall) -> pl.Expr:
        if expr.args[0].type is Type.INT:
            return args[0]
        return getattr(args[0], name)()

    return f


def _coalesce(args: list[pl.Expr], expr: TCall) -> pl.Expr:
    if expr.type is not Type.NULL:  # one type for Polars' supertype rules: the checker's
        args = [a.cast(polars_dtype(expr.type)) for a in args]
    return pl.coalesce(args)


# Each part: (the compiled arguments, the call node) → the expression; `_translate` casts
# the result to the call's type.
for _name, _fn in {
    "abs": lambda a, e: a[0].abs(),
    "round": _round,
    "floor": _floor_ceil("floor"),
    "ceil": _floor_ceil("ceil"),
    "lower": lambda a, e: a[0].str.to_lowercase(),
    "upper": lambda a, e: a[0].str.to_uppercase(),
    "len": lambda a, e: a[0].str.len_chars(),
    "coalesce": _coalesce,
    "hour": lambda a, e: a[0].dt.hour(),
    "minute": lambda a, e: a[0].dt.minute(),
    "day_of_week": lambda a, e: a[0].dt.weekday(),  # ISO: Monday = 1 ... Sunday = 7
}.items():
    FUNCTIONS.set_part("polars", _name, _fn)


@_translate.register
def _(expr: TCall) -> pl.Expr:
    if not FUNCTIONS.has_part("polars", expr.func):
        raise UnsupportedExpression(f"function {expr.func!r}")
    fn = FUNCTIONS.part("polars", expr.func)
    out = fn([compile_expr(a) for a in expr.args], expr)
    if expr.type in (Type.INT, Type.FLOAT, Type.STR, Type.BOOL, Type.TIMESTAMP):
        out = out.cast(polars_dtype(expr.type))
    return out


def fields_of(exprs: Iterable[TExpr | None]) -> set[str]:
    """Every column the expressions read (for projection before evaluation)."""
    out: set[str] = set()

    def walk(e: TExpr | None) -> None:
        if e is None:
            return
        if isinstance(e, TField):
            out.add(e.name)
        elif isinstance(e, TAgg):
            out.add(e.name)
        elif isinstance(e, TUnary):
            walk(e.operand)
        elif isinstance(e, TBinary):
            walk(e.left)
            walk(e.right)
        elif isinstance(e, (TIn, TIsNull)):
            walk(e.operand)
        elif isinstance(e, TCall):
            for a in e.args:
                walk(a)

    for e in exprs:
        walk(e)
    return out
