"""The language's aggregates and scalar functions (LANGUAGE.md §4), one registry each.

An entry holds what the language knows of a name: its typing (which fields or
arguments it takes, what it returns), its output column, its docs line, the names
`cep import` reads it by.  The checker types calls from it, `explain`, the editor
and the docs tables read it.  The parts that *run* it attach from their own layers:

* aggregates: `polars` (cepdsl/backends/polars/aggregates.py: from rows, and as
  mergeable partials), `interpret` (cepdsl/interpret/aggregates.py), and optionally
  `numba` (cepdsl/backends/numba/window_kernels.py: pane kernels; an aggregate without one
  runs on the Polars path);
* functions: `polars` (cepdsl/kernels/polars_expressions.py) and `interpret`
  (cepdsl/interpret/values.py).

docs/extending.md walks through adding one of each.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cepdsl.registry import Registry
from cepdsl.types import Type, unify_numeric

T = Type
NUMERIC = (T.INT, T.FLOAT)

# --------------------------------------------------------------------------- aggregates


@dataclass(frozen=True)
class Param:
    """A number literal after the field, as `q` in `percentile(f, q)`."""

    name: str
    lo: float
    hi: float


def _same_type(t: Type) -> Type:
    return t


def _float(t: Type) -> Type:
    return T.FLOAT


def _int(t: Type) -> Type:
    return T.INT


@dataclass(frozen=True)
class Aggregate:
    name: str
    signature: str  # as the editor and the docs show it
    doc: str
    #: which fields it takes: "any", "numeric" (int/float) or "ordered" (anything but bool)
    fields: str = "any"
    #: the result type, from the field's type
    result: Callable[[Type], Type] = _float
    param: Param | None = None
    #: `name()` with no field counts rows (only `count`)
    counts_rows: bool = False
    #: the value over no rows (SQL: counts are 0, the rest null)
    empty: Any = None
    #: the output column for a field (dots already `_`) and the parameter; None: `NAME_FIELD`
    column_name: Callable[[str, float | None], str] | None = None
    #: the names the seed's JSON rules give it (`cep import`); empty: not importable
    import_names: tuple[str, ...] = ()

    def column(self, field_name: str | None, q: float | None = None) -> str:
        """The match record's column: `count`, `avg_cpu`, `p95_latency_ms`, dots as `_`."""
        if field_name is None:
            return self.name
        f = field_name.replace(".", "_")
        return self.column_name(f, q) if self.column_name else f"{self.name}_{f}"

    def takes(self, t: Type) -> bool:
        if self.fields == "numeric":
            return t.is_numeric
        if self.fields == "ordered":
            return t is not T.BOOL
        return True


AGGREGATES: Registry[Aggregate] = Registry("aggregate", parts=("polars", "interpret"), optional=("numba",))


def _percentile_column(f: str, q: float | None) -> str:
    assert q is not None
    qs = str(int(q)) if float(q).is_integer() else repr(float(q)).replace(".", "_")
    return f"p{qs}_{f}"


def _sum_type(t: Type) -> Type:
    return T.INT if t is T.INT else T.FLOAT


for _a in (
    Aggregate("count", "count() -> int  |  count(f) -> int",
              "rows; with a field, its non-null values (column `count` / `count_f`)",
              result=_int, counts_rows=True, empty=0, import_names=("count",)),
    Aggregate("sum", "sum(f: number) -> number", "sum of non-null values (column `sum_f`)",
              fields="numeric", result=_sum_type, import_names=("sum",)),
    Aggregate("avg", "avg(f: number) -> float", "mean of non-null values (column `avg_f`)",
              fields="numeric", import_names=("avg", "mean", "average")),
    Aggregate("min", "min(f) -> type of f", "smallest value (column `min_f`)",
              fields="ordered", result=_same_type, import_names=("min",)),
    Aggregate("max", "max(f) -> type of f", "largest value (column `max_f`)",
              fields="ordered", result=_same_type, import_names=("max",)),
    Aggregate("std", "std(f: number) -> float", "sample standard deviation, ddof 1 (column `std_f`)",
              fields="numeric", import_names=("std", "stddev", "stdev")),
    Aggregate("percentile", "percentile(f: number, q: literal 0..100) -> float",
              "linear interpolation (column `p95_f` for q = 95)",
              fields="numeric", param=Param("q", 0, 100), column_name=_percentile_column,
              import_names=("percentile",)),
    Aggregate("distinct", "distinct(f) -> int", "count of distinct non-null values (column `distinct_f`)",
              result=_int, empty=0),
):  # fmt: skip
    AGGREGATES.add(_a)


def aggregate_by_import_name(name: str) -> Aggregate | None:
    """The aggregate the seed's JSON calls `name` (`mean` → avg), or None."""
    return next((a for a in AGGREGATES if name in a.import_names), None)


# --------------------------------------------------------------------------- scalar functions


@dataclass(frozen=True)
class Arg:
    """One positional argument: the types it takes, and how a message names them."""

    types: tuple[Type, ...]
    what: str  # "a number"


#: Reports a problem at argument `i` (None: the whole call); the typer's error sink.
Report = Callable[[int | None, str], None]


@dataclass(frozen=True)
class Function:
    name: str
    signature: str
    doc: str
    args: tuple[Arg, ...] = ()
    #: fewer arguments allowed (the rest optional); None: all of `args` are required
    min_args: int | None = None
    #: the result type from the argument types (a null argument's type is `null`)
    result: Callable[[Sequence[Type]], Type] = lambda ts: T.FLOAT
    #: null in any argument → null out (SQL's RETURNS NULL ON NULL INPUT); the
    #: interpreter applies it, so implementations only see non-null arguments
    strict: bool = True
    #: typing beyond `args`/`result` (variadic functions): (args' types, report) → type or None
    typer: Callable[[Sequence[Type], Report], Type | None] | None = None
    max_args: int | None = None  # with `typer`: the most arguments taken

    @property
    def arity(self) -> tuple[int, int]:
        hi = self.max_args if self.max_args is not None else len(self.args)
        return (self.min_args if self.min_args is not None else len(self.args)), hi

    def type_of(self, types: Sequence[Type], report: Report) -> Type | None:
        """The call's type, or None after reporting why it has none."""
        lo, hi = self.arity
        if not lo <= len(types) <= hi:
            want = str(lo) if lo == hi else f"{lo} to {hi}"
            report(None, f"`{self.name}` takes {want} argument{'s' if hi != 1 else ''}, got {len(types)}")
            return None
        for i, (a, t) in enumerate(zip(self.args, types)):
            if t not in a.types and t is not T.NULL:
                report(i, f"`{self.name}` takes {a.what}, not `{t}`")
                return None
        if self.typer is not None:
            return self.typer(types, report)
        return self.result(types)


#: `round(x, digits)` beyond ± this many digits is the value itself / a signed zero in every
#: path (10.0 ** 309 overflows a float64).
MAX_ROUND_DIGITS = 308

FUNCTIONS: Registry[Function] = Registry("function", parts=("polars", "interpret"))

_NUMBER = Arg(NUMERIC, "a number")
_STRING = Arg((T.STR,), "a string")
_TIMESTAMP = Arg((T.TIMESTAMP,), "a timestamp")


def _like_first(ts: Sequence[Type]) -> Type:
    return ts[0] if ts[0] is not T.NULL else T.FLOAT


def _coalesce_type(ts: Sequence[Type], report: Report) -> Type | None:
    result = T.NULL
    for i, t in enumerate(ts):
        if t is T.NULL:
            continue
        if result is T.NULL:
            result = t
        elif result.is_numeric and t.is_numeric:
            result = unify_numeric(result, t)
        elif result is not t:
            report(i, f"`coalesce` arguments must share a type: `{result}` and `{t}`")
            return None
    return result


for _f in (
    Function("abs", "abs(x: number) -> number", "absolute value", (_NUMBER,), result=_like_first),
    Function("round", "round(x: number, digits: int = 0) -> number", "rounded half away from zero",
             (_NUMBER, Arg((T.INT,), "an integer number of digits")), min_args=1, result=_like_first),
    Function("floor", "floor(x: number) -> number", "largest integer not above x", (_NUMBER,), result=_like_first),
    Function("ceil", "ceil(x: number) -> number", "smallest integer not below x", (_NUMBER,), result=_like_first),
    Function("lower", "lower(s: str) -> str", "lower case", (_STRING,), result=lambda ts: T.STR),
    Function("upper", "upper(s: str) -> str", "upper case", (_STRING,), result=lambda ts: T.STR),
    Function("len", "len(s: str) -> int", "length in characters", (_STRING,), result=lambda ts: T.INT),
    Function("coalesce", "coalesce(a, b, ...) -> same type", "the first argument that is not null",
             min_args=1, max_args=64, strict=False, typer=_coalesce_type),
    Function("hour", "hour(t: timestamp) -> int", "hour of day, UTC (0-23)", (_TIMESTAMP,), result=lambda ts: T.INT),
    Function("minute", "minute(t: timestamp) -> int", "minute of the hour (0-59)", (_TIMESTAMP,),
             result=lambda ts: T.INT),
    Function("day_of_week", "day_of_week(t: timestamp) -> int", "day of week, UTC, ISO (Monday = 1)", (_TIMESTAMP,),
             result=lambda ts: T.INT),
):  # fmt: skip
    FUNCTIONS.add(_f)


# --------------------------------------------------------------------------- docs tables


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def aggregates_table() -> str:
    """The markdown table of aggregates docs/functions.md holds (tests/test_registries.py
    checks it is current; `python -m cepdsl.functions` prints it)."""
    rows = ["| aggregate | signature | meaning | over no rows |", "|---|---|---|---|"]
    for a in AGGREGATES:
        empty = "null" if a.empty is None else repr(a.empty)
        rows.append(f"| `{a.name}` | `{_cell(a.signature)}` | {_cell(a.doc)} | {empty} |")
    return "\n".join(rows)


def functions_table() -> str:
    rows = ["| function | signature | meaning |", "|---|---|---|"]
    for f in FUNCTIONS:
        rows.append(f"| `{f.name}` | `{_cell(f.signature)}` | {_cell(f.doc)} |")
    return "\n".join(rows)


@dataclass
class _Marked:
    """A generated block in a docs page, between `<!-- generated: NAME -->` and `<!-- end: NAME -->`."""

    name: str
    text: str = field(default="")

    def replace_in(self, page: str) -> str:
        start, end = f"<!-- generated: {self.name} -->", f"<!-- end: {self.name} -->"
        head, sep, rest = page.partition(start)
        if not sep:
            raise ValueError(f"no `{start}` marker")
        _, sep2, tail = rest.partition(end)
        if not sep2:
            raise ValueError(f"no `{end}` marker")
        return f"{head}{start}\n{self.text}\n{end}{tail}"


def generated_blocks() -> list[_Marked]:
    return [_Marked("aggregates", aggregates_table()), _Marked("functions", functions_table())]


def regenerate(page: str) -> str:
    """`page` with its generated tables brought up to date."""
    for block in generated_blocks():
        if f"<!-- generated: {block.name} -->" in page:
            page = block.replace_in(page)
    return page


if __name__ == "__main__":  # python -m cepdsl.functions docs/functions.md: rewrite its tables in place
    import sys
    from pathlib import Path

    for p in sys.argv[1:]:
        path = Path(p)
        path.write_text(regenerate(path.read_text(encoding="utf-8")), encoding="utf-8")
