"""The §4 aggregates as Polars expressions, in three shapes.

* `raw_exprs`: aggregates straight from rows (group_by / rolling `agg` context) —
  count windows and schedule ticks, whose row sets overlap too irregularly to
  pre-aggregate.
* partials: what a pane or an open session remembers instead of its rows.
  `row_partials` turns each row into a one-row partial, `partial_exprs` builds
  partials from rows in an `agg`, `merge_exprs` merges partials in an `agg`, and
  `final_exprs` turns merged partials into the aggregate columns (row-wise).
  Decomposable aggregates keep O(1) numbers per field (count, sum, min, max, and
  (count, mean, M2) for std — Chan et al.'s pairwise merge, stable); only
  `percentile` keeps the values and `distinct` the distinct values.

Semantics (LANGUAGE.md §4 and SQL where it is silent): aggregates skip nulls,
`count()` counts rows; `sum`/`avg`/`min`/`max` of no values are null; `std` is the
sample std (ddof 1), null under 2 values; `percentile` interpolates linearly
(numpy's default); `distinct` counts distinct non-null values (0 when none).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from cepdsl.functions import AGGREGATES
from cepdsl.plan import TAgg

N = "__n"  # rows in the partial

Col = Callable[[str], pl.Expr]  # a partial kind -> that field's partial column


@dataclass(frozen=True)
class Partial:
    """One column a pane or session keeps per field instead of its rows."""

    rows: Callable[[pl.Expr], pl.Expr]  # from the rows of a group (agg context)
    row: Callable[[pl.Expr], pl.Expr]  # one row as a one-row partial (row-wise)
    merge: Callable[[Col], pl.Expr]  # partials merged (agg context)


def _merged_mean(col: Col) -> pl.Expr:
    c = col("c").cast(pl.Float64)
    return (c * col("mean")).sum() / c.sum()


#: In the order their columns are laid out (snapshots hold them so: keep the order).
PARTIALS: dict[str, Partial] = {
    "c": Partial(lambda x: x.count(), lambda x: x.is_not_null().cast(pl.UInt32), lambda col: col("c").sum()),
    "s": Partial(lambda x: x.sum(), lambda x: x, lambda col: col("s").sum()),
    "min": Partial(lambda x: x.min(), lambda x: x, lambda col: col("min").min()),
    "max": Partial(lambda x: x.max(), lambda x: x, lambda col: col("max").max()),
    # (count, mean, M2) for std: Chan's merge, M2 = Σ M2_i + Σ n_i (mean_i − mean)²; empty
    # partials (n_i = 0, mean_i null) drop out because null terms are skipped by sum.
    "mean": Partial(
        lambda x: x.cast(pl.Float64).mean(),
        lambda x: x.cast(pl.Float64),
        lambda col: pl.when(col("c").sum() > 0).then(_merged_mean(col)),
    ),
    "m2": Partial(
        lambda x: ((x.cast(pl.Float64) - x.cast(pl.Float64).mean()) ** 2).sum(),
        lambda x: pl.when(x.is_not_null()).then(pl.lit(0.0)),
        lambda col: col("m2").sum() + (col("c").cast(pl.Float64) * (col("mean") - _merged_mean(col)) ** 2).sum(),
    ),
    "v": Partial(  # all values, for percentile
        lambda x: x.drop_nulls(),
        lambda x: pl.concat_list([x]).list.drop_nulls(),
        lambda col: col("v").explode().drop_nulls(),
    ),
    "d": Partial(  # distinct values, for distinct
        lambda x: x.drop_nulls().unique(),
        lambda x: pl.concat_list([x]).list.drop_nulls(),
        lambda col: col("d").explode().drop_nulls().unique(),
    ),
}


@dataclass(frozen=True)
class PolarsAggregate:
    """An aggregate's Polars part (registered as `AGGREGATES` part "polars")."""

    #: from the rows of a group: (the field's column, the aggregate, from_scratch)
    raw: Callable[[pl.Expr, TAgg, bool], pl.Expr]
    #: the partial kinds (keys of PARTIALS) it is computed from
    partials: tuple[str, ...]
    #: from merged partials (row-wise)
    final: Callable[[Col, TAgg], pl.Expr]


def polars_aggregate(name: str, part: PolarsAggregate) -> None:
    unknown = set(part.partials) - PARTIALS.keys()
    if unknown:
        raise ValueError(f"aggregate {name!r}: unknown partial kinds {sorted(unknown)}")
    AGGREGATES.set_part("polars", name, part)


def _values(x: pl.Expr) -> pl.expr.list.ExprListNameSpace:
    return x.implode().list


def _pct(a: TAgg) -> float:
    assert a.q is not None
    return float(a.q) / 100.0


# `from_scratch` (count windows): in a `rolling` context Polars slides sums along (adds the
# new value, subtracts the old), so rounding error builds up over a long stream and an
# average that is exactly 2.0 comes out 2.0000000000000004 — then `having avg(x) > 2`
# fires where the reference does not. Summing each window's values afresh avoids that.
for _name, _builtin in {
    "count": PolarsAggregate(lambda x, a, fs: x.count(), ("c",), lambda col, a: col("c")),
    "sum": PolarsAggregate(
        lambda x, a, fs: pl.when(x.count() > 0).then(_values(x).sum() if fs else x.sum()),
        ("c", "s"),
        lambda col, a: pl.when(col("c") > 0).then(col("s")),
    ),
    "avg": PolarsAggregate(
        lambda x, a, fs: _values(x).mean() if fs else x.mean(),
        ("c", "s"),
        lambda col, a: pl.when(col("c") > 0).then(col("s").cast(pl.Float64) / col("c")),
    ),
    "min": PolarsAggregate(lambda x, a, fs: x.min(), ("min",), lambda col, a: col("min")),
    "max": PolarsAggregate(lambda x, a, fs: x.max(), ("max",), lambda col, a: col("max")),
    "std": PolarsAggregate(
        lambda x, a, fs: _values(x).std(ddof=1) if fs else x.std(ddof=1),
        ("c", "mean", "m2"),
        lambda col, a: pl.when(col("c") >= 2).then((col("m2") / (col("c") - 1)).sqrt()),
    ),
    "percentile": PolarsAggregate(
        lambda x, a, fs: x.quantile(_pct(a), interpolation="linear"),
        ("v",),
        lambda col, a: col("v").list.eval(pl.element().quantile(_pct(a), interpolation="linear")).list.first(),
    ),
    "distinct": PolarsAggregate(lambda x, a, fs: x.drop_nulls().n_unique(), ("d",), lambda col, a: col("d").list.len()),
}.items():
    polars_aggregate(_name, _builtin)


def _part(a: TAgg) -> PolarsAggregate:
    return AGGREGATES.part("polars", a.func)


@dataclass(frozen=True)
class Needs:
    """Which partial columns one field needs, from the rule's aggregates (in PARTIALS order)."""

    field: str
    kinds: tuple[str, ...]


def _col(kind: str, field: str) -> str:
    return f"__{kind}:{field}"


def needs_of(aggs: tuple[TAgg, ...]) -> list[Needs]:
    by_field: dict[str, set[str]] = {}
    for a in aggs:
        if a.field is not None:
            by_field.setdefault(a.field, set()).update(_part(a).partials)
    return [Needs(f, tuple(k for k in PARTIALS if k in kinds)) for f, kinds in by_field.items()]


def needs_values(aggs: tuple[TAgg, ...]) -> bool:
    """Whether any aggregate keeps raw values (percentile, distinct)."""
    return any({"v", "d"} & set(_part(a).partials) for a in aggs if a.field is not None)


# --------------------------------------------------------------------------- from rows


def raw_exprs(aggs: tuple[TAgg, ...], *, from_scratch: bool = False) -> list[pl.Expr]:
    """Each aggregate computed from the rows of a group (agg / rolling context);
    `from_scratch`: see the note above the built-in parts."""
    return [(pl.len() if a.field is None else _part(a).raw(pl.col(a.field), a, from_scratch)).alias(a.name) for a in aggs]


# --------------------------------------------------------------------------- partials


def partial_exprs(needs: list[Needs]) -> list[pl.Expr]:
    """Partials of a group of rows (agg context)."""
    return [pl.len().alias(N)] + [PARTIALS[k].rows(pl.col(n.field)).alias(_col(k, n.field)) for n in needs for k in n.kinds]


def row_partials(needs: list[Needs]) -> list[pl.Expr]:
    """Each row as its own one-row partial (row-wise context)."""
    return [pl.lit(1, pl.UInt32).alias(N)] + [PARTIALS[k].row(pl.col(n.field)).alias(_col(k, n.field)) for n in needs for k in n.kinds]


def _partial_cols(field: str) -> Col:
    return lambda kind: pl.col(_col(kind, field))


def merge_exprs(needs: list[Needs]) -> list[pl.Expr]:
    """Partials merged over a group of partials (agg context)."""
    return [pl.col(N).sum().alias(N)] + [
        PARTIALS[k].merge(_partial_cols(n.field)).alias(_col(k, n.field)) for n in needs for k in n.kinds
    ]


def final_exprs(aggs: tuple[TAgg, ...]) -> list[pl.Expr]:
    """Aggregate columns from merged partials (row-wise)."""
    return [(pl.col(N) if a.field is None else _part(a).final(_partial_cols(a.field), a)).alias(a.name) for a in aggs]


def empty_values(aggs: tuple[TAgg, ...]) -> dict[str, object]:
    """Aggregates over no rows (a schedule tick without rows): counts 0, the rest null."""
    return {a.name: AGGREGATES[a.func].empty for a in aggs}
