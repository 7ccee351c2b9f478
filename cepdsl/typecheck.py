"""Expression typing: AST expressions → typed plan expressions, or diagnostics.

One function, `Typer.expr`, walks an expression in a scope (the stream's fields,
and for `having` the group keys and aggregates) and returns the typed node, or
None after reporting why it cannot be typed.  Errors do not cascade: once a
sub-expression fails, its parents stay quiet.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field

from cepdsl import ast
from cepdsl.diagnostics import Diagnostic, did_you_mean
from cepdsl.functions import AGGREGATES, FUNCTIONS
from cepdsl.parser import has_bad_escape
from cepdsl.plan import (
    ARITH_OPS,
    COMPARE_OPS,
    STRING_OPS,
    StreamPlan,
    TAgg,
    TBinary,
    TCall,
    TExpr,
    TField,
    TIn,
    TIsNull,
    TLit,
    TUnary,
    aggregate_name,
    aggregate_type,
)
from cepdsl.types import Type, unify_numeric

T = Type

#: The names the checker knows (registries in cepdsl.functions; read at each call, so an
#: entry registered later is known too).
SCALAR_FUNCTIONS = FUNCTIONS

_LITERAL_TYPES = {"int": T.INT, "float": T.FLOAT, "str": T.STR, "bool": T.BOOL, "null": T.NULL, "duration": T.DURATION}


def _string_number_hints(text_side: ast.Expr, number_side: ast.Expr) -> tuple[str, ...]:
    """What to do about `str <op> number`, depending on which side was written as a literal:
    `cpu > "90"` wants the quotes gone, `cpu > "ninety"` a number, `status == 3` quotes."""
    if isinstance(text_side, ast.Literal) and text_side.kind == "str":
        value = str(text_side.value).strip()
        if re.fullmatch(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?", value):
            return (f"write the number without quotes: `{value}`",)
        return ("the other side is a number: compare it with a number (e.g. `90`), not with text",)
    if isinstance(number_side, ast.Literal) and number_side.kind in ("int", "float"):
        return (f"the other side is a string: quote the number, `\"{number_side.text}\"`",)
    return ("a string compares only with a string, a number only with a number",)


@dataclass
class Scope:
    """What names mean where an expression stands."""

    stream: StreamPlan
    context: str  # "where" | "having" | "define" | "message" | "join" | "silence"
    aggregates_allowed: bool = False
    group_keys: tuple[str, ...] = ()
    aggregates: dict[str, TAgg] = field(default_factory=dict)  # collected, by name


class Typer:
    def __init__(self, diags: list[Diagnostic]):
        self.diags = diags

    def error(self, span: ast.Span, message: str, hints: tuple[str, ...] = (), code: str = "") -> None:
        self.diags.append(Diagnostic(span, message, hints, code=code))

    def literal_ok(self, e: ast.Literal) -> bool:
        """Whether the engine can hold the number `e` (else it is reported)."""
        problem = literal_problem(e)
        if problem:
            self.error(e.span, problem[0], problem[1], code="literal")
        return problem is None

    # ------------------------------------------------------------------ entry points
    def condition(self, e: ast.Expr, scope: Scope, what: str) -> TExpr | None:
        """An expression that must be `bool` (where, having, define)."""
        t = self.expr(e, scope)
        if t is None:
            return None
        if t.type not in (T.BOOL, T.NULL):
            self.error(
                e.span,
                f"`{what}` needs a condition (bool), but this expression is `{t.type}`",
                ("compare it with something, e.g. `x > 0`",) if t.type.is_numeric else (),
                code="type",
            )
            return None
        return t

    def expr(self, e: ast.Expr, scope: Scope, in_aggregate: bool = False) -> TExpr | None:
        method = getattr(self, "_" + type(e).__name__)
        return method(e, scope, in_aggregate)

    # ------------------------------------------------------------------ leaves
    def _Literal(self, e: ast.Literal, scope: Scope, agg: bool) -> TExpr | None:
        return TLit(_LITERAL_TYPES[e.kind], e.value) if self.literal_ok(e) else None

    def _ListLit(self, e: ast.ListLit, scope: Scope, agg: bool) -> None:
        self.error(e.span, "a list is only allowed on the right of `in` / `not in`", code="type")
        return None

    def _MapLit(self, e: ast.MapLit, scope: Scope, agg: bool) -> None:
        self.error(e.span, "a map `{...}` is only allowed as a channel option value", code="type")
        return None

    def _FieldRef(self, e: ast.FieldRef, scope: Scope, agg: bool) -> TExpr | None:
        name = e.path.dotted
        first = e.path.parts[0]
        if first.value in ("rule", "severity") and not first.quoted and len(e.path.parts) == 1 and scope.context != "silence":
            # The grammar reads them as fields only for a silence's `match` (§9.1).
            self.error(
                e.span,
                f"`{name}` is a reserved keyword and cannot be used as a name here",
                (f"`rule` and `severity` name record fields only in a silence's `match`; for a field, write `` `{name}` ``",),
                code="keyword-as-name",
            )
            return None
        fp = scope.stream.field(name)
        if fp is None and scope.context == "silence":
            self.error(
                e.span,
                f"no rule's match record has a field `{name}`",
                did_you_mean(name, [f.name for f in scope.stream.fields]),
                code="unknown-field",
            )
            return None
        if fp is None:
            prefix = [f.name for f in scope.stream.fields if f.name.startswith(name + ".")]
            if prefix:
                self.error(
                    e.span,
                    f"`{name}` is a struct in stream `{scope.stream.name}`; name one of its declared fields",
                    (f"for example `{prefix[0]}`",),
                    code="unknown-field",
                )
            else:
                hints = did_you_mean(name, [f.name for f in scope.stream.fields])
                if not hints and scope.context == "join" and "." in name:
                    hints = ("a join's fields are known after it: a `join ... on` reads the stream and the joins before it",)
                self.error(e.span, f"unknown field `{name}` in stream `{scope.stream.name}`", hints, code="unknown-field")
            return None
        if scope.context == "having" and not agg and name not in scope.group_keys:
            self.error(
                e.span,
                f"field `{name}` is used in `having` outside an aggregate, but it is not a `group by` key",
                (f"aggregate it, e.g. `avg({name})`, or add it to `group by`",),
                code="having-field",
            )
            return None
        return TField(fp.type, name)

    # ------------------------------------------------------------------ operators
    def _Unary(self, e: ast.Unary, scope: Scope, agg: bool) -> TExpr | None:
        x = self.expr(e.operand, scope, agg)
        if x is None:
            return None
        if e.op == "not":
            if x.type not in (T.BOOL, T.NULL):
                self.error(e.operand.span, f"`not` takes a bool, not `{x.type}`", code="type")
                return None
            return TUnary(T.BOOL, "not", x)
        if x.type not in (T.INT, T.FLOAT, T.DURATION, T.NULL):
            self.error(e.operand.span, f"unary `-` takes a number, not `{x.type}`", code="type")
            return None
        return TUnary(x.type, "neg", x)

    def _Binary(self, e: ast.Binary, scope: Scope, agg: bool) -> TExpr | None:
        left = self.expr(e.left, scope, agg)
        right = self.expr(e.right, scope, agg)
        if left is None or right is None:
            return None
        op, lt, rt = e.op, left.type, right.type
        where = e.op_span if e.op_span.line else e.span
        if op in ("and", "or"):
            for side, t in ((e.left, lt), (e.right, rt)):
                if t not in (T.BOOL, T.NULL):
                    self.error(side.span, f"`{op}` takes bool operands, not `{t}`", code="type")
                    return None
            return TBinary(T.BOOL, op, left, right)
        if op in ARITH_OPS:
            result = _arith_type(op, lt, rt)
            if result is None:
                hints: tuple[str, ...] = ()
                if T.STR in (lt, rt):
                    hints = ("strings cannot be added; there is no string concatenation",)
                elif T.TIMESTAMP in (lt, rt) and (lt.is_numeric or rt.is_numeric):
                    hints = ("add or subtract a duration, e.g. `ts + 60s`",)
                self.error(where, f"`{op}` cannot combine `{lt}` and `{rt}`", hints, code="type")
                return None
            return TBinary(result, op, left, right)
        if op in COMPARE_OPS:
            if T.NULL in (lt, rt):
                # `x == null` is legal SQL and, as there, null (never true): the
                # spec does not make it an error, so it type-checks (see docs/diagnostics.md).
                return TBinary(T.BOOL, op, left, right)
            if not _comparable(op, lt, rt):
                hints = ()
                if T.STR in (lt, rt) and (lt.is_numeric or rt.is_numeric):
                    hints = _string_number_hints(e.left if lt is T.STR else e.right, e.right if lt is T.STR else e.left)
                self.error(where, f"cannot compare `{lt}` with `{rt}` using `{op}`", hints, code="type")
                return None
            return TBinary(T.BOOL, op, left, right)
        if op in STRING_OPS:
            for side, t in ((e.left, lt), (e.right, rt)):
                if t not in (T.STR, T.NULL):
                    self.error(side.span, f"`{op}` takes strings, not `{t}`", code="type")
                    return None
            if op == "matches":
                if not (isinstance(e.right, ast.Literal) and e.right.kind == "str"):
                    self.error(e.right.span, "`matches` needs a regular expression as a string literal", code="regex")
                    return None
                problem = None if has_bad_escape(e.right) else regex_problem(e.right.value)
                if problem:
                    self.error(e.right.span, problem[0], problem[1], code="regex")
                    return None
            return TBinary(T.BOOL, op, left, right)
        raise AssertionError(f"operator {op!r} has no typing rule")  # grammar and typer disagree: a bug

    def _InList(self, e: ast.InList, scope: Scope, agg: bool) -> TExpr | None:
        x = self.expr(e.operand, scope, agg)
        if x is None:
            return None
        values = []
        ok = True
        for item in e.items.items:
            if not isinstance(item, ast.Literal):
                self.error(
                    item.span, "the list after `in` holds literals only", ("compare computed values with `==` instead",), code="type"
                )
                ok = False
                continue
            if not self.literal_ok(item):
                ok = False
                continue
            it = _LITERAL_TYPES[item.kind]
            if it is not T.NULL and not _comparable("==", x.type, it):
                self.error(
                    item.span,
                    f"`{_short(item.text or str(item.value))}` is `{it}`, but the left side of `in` is `{x.type}`",
                    code="type",
                )
                return None  # the rest of the list is most likely the same mistake
            values.append(float(item.value) if x.type is T.FLOAT and it is T.INT else item.value)
        return TIn(T.BOOL, x, tuple(values), e.negated) if ok else None

    def _IsNull(self, e: ast.IsNull, scope: Scope, agg: bool) -> TExpr | None:
        x = self.expr(e.operand, scope, agg)
        return None if x is None else TIsNull(T.BOOL, x, e.negated)

    # ------------------------------------------------------------------ calls
    def _Call(self, e: ast.Call, scope: Scope, agg: bool) -> TExpr | None:
        fname = e.func.value
        if fname in AGGREGATES:
            return self._aggregate(e, scope, agg)
        if fname not in FUNCTIONS:
            if fname == "env":
                self.error(e.span, "`env(...)` is only allowed in channel options", code="unknown-function")
            else:
                self.error(
                    e.func.span,
                    f"unknown function `{fname}`",
                    did_you_mean(fname, FUNCTIONS.names() + (AGGREGATES.names() if scope.aggregates_allowed else ())),
                    code="unknown-function",
                )
            return None
        kw = [a for a in e.args if a.name is not None]
        if kw:
            self.error(kw[0].span, f"`{fname}` takes no named arguments", code="arguments")
            return None
        args = [self.expr(a.value, scope, agg) for a in e.args]
        if any(a is None for a in args):
            return None
        return self._scalar(e, fname, args)  # type: ignore[arg-type]

    def _scalar(self, e: ast.Call, fname: str, args: list[TExpr]) -> TExpr | None:
        def report(i: int | None, message: str) -> None:
            self.error(e.span if i is None else e.args[i].span, message, code="arguments" if i is None else "type")

        t = FUNCTIONS[fname].type_of([a.type for a in args], report)
        return None if t is None else TCall(t, fname, tuple(args))

    def _aggregate(self, e: ast.Call, scope: Scope, agg: bool) -> TExpr | None:
        fname = e.func.value
        if not scope.aggregates_allowed:
            if scope.context == "having":
                self.error(e.span, "aggregates need a `window` or `schedule` clause", code="aggregate-context")
            elif scope.context == "define":
                self.error(
                    e.span,
                    f"aggregate `{fname}(...)` is not allowed in `define`",
                    ("a pattern step tests one row at a time",),
                    code="aggregate-context",
                )
            else:
                self.error(
                    e.span,
                    f"aggregate `{fname}(...)` is only allowed in `having`",
                    ("move the condition into `having` (with a `window` or `schedule`)",),
                    code="aggregate-context",
                )
            return None
        if agg:
            self.error(e.span, "aggregates cannot be nested", code="aggregate-context")
            return None
        if any(a.name is not None for a in e.args):
            self.error(e.span, f"`{fname}` takes no named arguments", code="arguments")
            return None
        spec = AGGREGATES[fname]
        args = [a.value for a in e.args]
        if spec.counts_rows and not args:
            return self._register(scope, TAgg(T.INT, fname, None, None, spec.column(None)))
        want = 2 if spec.param is not None else 1
        if len(args) != want:
            sig = f"{fname}(field, {spec.param.name})" if spec.param is not None else f"{fname}(field)"
            if spec.counts_rows:
                sig = f"{fname}() or {fname}(field)"
            self.error(e.span, f"`{fname}` takes {want} argument{'s' if want > 1 else ''}: {sig}", code="arguments")
            return None
        if isinstance(args[0], ast.Call) and args[0].func.value in AGGREGATES:
            self.error(
                args[0].span, "aggregates cannot be nested", (f"`{fname}` takes a field of the stream",), code="aggregate-context"
            )
            return None
        if not isinstance(args[0], ast.FieldRef):
            self.error(
                args[0].span,
                f"the argument of `{fname}` must be a field of the stream",
                ("aggregates take a field, not an expression",),
                code="arguments",
            )
            return None
        f = self.expr(args[0], scope, True)
        if f is None:
            return None
        assert isinstance(f, TField)
        if not spec.takes(f.type):
            what = "a numeric" if spec.fields == "numeric" else "an ordered"
            self.error(args[0].span, f"`{fname}` needs {what} field, but `{f.name}` is `{f.type}`", code="type")
            return None
        q = None
        if spec.param is not None:
            p, qa = spec.param, args[1]
            if not (isinstance(qa, ast.Literal) and qa.kind in ("int", "float")):
                self.error(qa.span, f"the {fname} `{p.name}` must be a number literal", code=fname)
                return None
            q = float(qa.value)
            if not p.lo <= q <= p.hi:
                self.error(
                    qa.span,
                    f"{fname} `{p.name}` must be between {p.lo:g} and {p.hi:g}, got {_short(qa.text or str(qa.value))}",
                    code=fname,
                )
                return None
        name = aggregate_name(fname, f.name, q)
        return self._register(scope, TAgg(aggregate_type(fname, f.type), fname, f.name, q, name))

    @staticmethod
    def _register(scope: Scope, a: TAgg) -> TAgg:
        scope.aggregates.setdefault(a.name, a)
        return a


INT64_MAX = 2**63 - 1


def literal_problem(e: ast.Literal) -> tuple[str, tuple[str, ...]] | None:
    """Numbers the engine cannot hold: integers beyond int64, floats that overflow to inf."""
    if e.kind == "int" and not -INT64_MAX - 1 <= e.value <= INT64_MAX:
        return (f"integer `{_short(e.text)}` is out of range", ("integers are 64-bit: at most 9223372036854775807",))
    if e.kind == "float" and not math.isfinite(e.value):
        return (f"number `{_short(e.text)}` is too large", ("floats are 64-bit: at most about 1.8e308",))
    return None


def _short(text: str) -> str:
    return text if len(text) <= 30 else text[:27] + "..."


def _arith_type(op: str, lt: Type, rt: Type) -> Type | None:
    if lt is T.NULL and rt is T.NULL:
        return T.NULL
    if lt.is_numeric or rt.is_numeric:
        if (lt.is_numeric or lt is T.NULL) and (rt.is_numeric or rt is T.NULL):
            return T.FLOAT if op == "/" else unify_numeric(lt, rt)
        return None
    if op in ("+", "-"):
        if lt is T.TIMESTAMP and rt is T.DURATION:
            return T.TIMESTAMP
        if op == "+" and lt is T.DURATION and rt is T.TIMESTAMP:
            return T.TIMESTAMP
        if lt is T.DURATION and rt is T.DURATION:
            return T.DURATION
        if op == "-" and lt is T.TIMESTAMP and rt is T.TIMESTAMP:
            return T.DURATION
    return None


def _comparable(op: str, lt: Type, rt: Type) -> bool:
    if lt.is_numeric and rt.is_numeric:
        return True
    if lt is not rt:
        return False
    if lt is T.BOOL:
        return op in ("==", "!=")
    return lt in (T.STR, T.TIMESTAMP, T.DURATION)


def _unsafe_construct(pattern: str) -> str | None:
    """ "backreferences" or "look-around" when the pattern uses one, else None.

    Scans escapes pairwise and skips character classes, so `\\\\1` (a backslash,
    then 1) and `[(?=]` (literal characters) are not mistaken for them."""
    i, in_class = 0, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            nxt = pattern[i + 1 : i + 2]
            if not in_class and (nxt in "123456789" and nxt or nxt in ("k", "g")):
                return "backreferences"
            i += 2
            continue
        if in_class:
            if ch == "]":
                in_class = False
        elif ch == "[":
            in_class = True
            # `[]...]` and `[^]...]`: a leading `]` is a literal member
            if pattern[i + 1 : i + 2] == "^":
                i += 1
            if pattern[i + 1 : i + 2] == "]":
                i += 1
        elif pattern.startswith(("(?=", "(?!", "(?<=", "(?<!"), i):
            return "look-around"
        elif pattern.startswith("(?P=", i) or pattern.startswith("(?P>", i) or pattern.startswith("(?&", i):
            return "backreferences"
        i += 1
    return None


def _rust_regex_error(pattern: str) -> str | None:
    """The vectorised backend runs `matches` through Polars (Rust `regex`): a pattern
    RE2 accepts but Rust refuses (`\\C`, `\\Q...\\E`) would fail mid-stream."""
    import polars as pl

    try:
        pl.select(pl.lit("").str.contains(pattern))
    except Exception as exc:  # polars raises ComputeError with the parser's report
        text = str(exc)
        found = re.findall(r"^error: (.+)$", text, re.M)
        return found[-1].strip() if found else (text.splitlines() or ["rejected"])[0]
    return None


@functools.lru_cache(maxsize=4096)
def regex_problem(pattern: str) -> tuple[str, tuple[str, ...]] | None:
    """Why a `matches` pattern is refused, or None. Only linear-time regexes that both
    engines (RE2 for the interpreter, Rust `regex` for Polars) accept are allowed."""
    unsafe = _unsafe_construct(pattern)
    if unsafe:
        what = "backreferences are" if unsafe == "backreferences" else "look-around is"
        return (
            f"{what} not allowed in `matches`: it takes linear-time regular expressions only",
            ("rewrite the pattern without it, or split the test into several conditions",),
        )
    import re2

    options = re2.Options()
    options.log_errors = False  # RE2 would print its own report on stderr
    try:
        re2.compile(pattern, options)
    except Exception as exc:  # re2.error carries bytes
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        return (f"invalid regular expression: {reason}", ())
    rust = _rust_regex_error(pattern)
    if rust:
        return (f"invalid regular expression: {rust}", ("RE2 / Rust `regex` syntax is expected",))
    return None
