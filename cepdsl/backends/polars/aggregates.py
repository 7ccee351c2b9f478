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

from dataclasses import dataclass

import polars as pl

from cepdsl.plan import TAgg

N = "__n"  # rows in the partial


@dataclass(frozen=True)
class Needs:
    """Which partial columns one field needs, from the rule's aggregates."""

    field: str
    count: bool = False
    sum: bool = False
    min: bool = False
    max: bool = False
    moments: bool = False  # (count, mean, M2) for std
    values: bool = False  # all values, for percentile
    distinct: bool = False  # distinct values, for distinct


def _col(kind: str, field: str) -> str:
    return f"__{kind}:{field}"


def needs_of(aggs: tuple[TAgg, ...]) -> list[Needs]:
    by_field: dict[str, dict[str, bool]] = {}
    for a in aggs:
        if a.field is None:
            continue
        n = by_field.setdefault(a.field, {})
        if a.func in ("count", "sum", "avg"):
            n["count"] = True
            n["sum"] = n.get("sum", False) or a.func != "count"
        elif a.func in ("min", "max"):
            n[a.func] = True
        elif a.func == "std":
            n["count"] = n["moments"] = True
        elif a.func == "percentile":
            n["values"] = True
        elif a.func == "distinct":
            n["distinct"] = True
        else:
            raise ValueError(f"unknown aggregate {a.func!r}")
    return [Needs(f, **flags) for f, flags in by_field.items()]


def needs_values(aggs: tuple[TAgg, ...]) -> bool:
    """Whether any aggregate keeps raw values (percentile, distinct)."""
    return any(a.func in ("percentile", "distinct") for a in aggs)


# --------------------------------------------------------------------------- from rows


def raw_exprs(aggs: tuple[TAgg, ...], *, from_scratch: bool = False) -> list[pl.Expr]:
    """Each aggregate computed from the rows of a group (agg / rolling context).

    `from_scratch`: in a `rolling` context Polars slides sums along (adds the new value,
    subtracts the old), so rounding error builds up over a long stream and an average that
    is exactly 2.0 comes out 2.0000000000000004 — then `having avg(x) > 2` fires where the
    reference does not. Summing each window's values afresh avoids that."""
    out: list[pl.Expr] = []
    for a in aggs:
        if a.field is None:
            e = pl.len()
        else:
            x = pl.col(a.field)
            values = x.implode().list
            e = {
                "count": lambda: x.count(),
                "sum": lambda: pl.when(x.count() > 0).then(values.sum() if from_scratch else x.sum()),
                "avg": lambda: values.mean() if from_scratch else x.mean(),
                "min": lambda: x.min(),
                "max": lambda: x.max(),
                "std": lambda: values.std(ddof=1) if from_scratch else x.std(ddof=1),
                "percentile": lambda: x.quantile(float(a.q) / 100.0, interpolation="linear"),
                "distinct": lambda: x.drop_nulls().n_unique(),
            }[a.func]()
        out.append(e.alias(a.name))
    return out


# --------------------------------------------------------------------------- partials


def partial_exprs(needs: list[Needs]) -> list[pl.Expr]:
    """Partials of a group of rows (agg context)."""
    out = [pl.len().alias(N)]
    for n in needs:
        x = pl.col(n.field)
        if n.count:
            out.append(x.count().alias(_col("c", n.field)))
        if n.sum:
            out.append(x.sum().alias(_col("s", n.field)))
        if n.min:
            out.append(x.min().alias(_col("min", n.field)))
        if n.max:
            out.append(x.max().alias(_col("max", n.field)))
        if n.moments:
            xf = x.cast(pl.Float64)
            out.append(xf.mean().alias(_col("mean", n.field)))
            out.append(((xf - xf.mean()) ** 2).sum().alias(_col("m2", n.field)))
        if n.values:
            out.append(x.drop_nulls().alias(_col("v", n.field)))
        if n.distinct:
            out.append(x.drop_nulls().unique().alias(_col("d", n.field)))
    return out


def row_partials(needs: list[Needs]) -> list[pl.Expr]:
    """Each row as its own one-row partial (row-wise context)."""
    out = [pl.lit(1, pl.UInt32).alias(N)]
    for n in needs:
        x = pl.col(n.field)
        if n.count:
            out.append(x.is_not_null().cast(pl.UInt32).alias(_col("c", n.field)))
        if n.sum:
            out.append(x.alias(_col("s", n.field)))
        if n.min:
            out.append(x.alias(_col("min", n.field)))
        if n.max:
            out.append(x.alias(_col("max", n.field)))
        if n.moments:
            out.append(x.cast(pl.Float64).alias(_col("mean", n.field)))
            out.append(pl.when(x.is_not_null()).then(pl.lit(0.0)).alias(_col("m2", n.field)))
        if n.values:
            out.append(pl.concat_list([x]).list.drop_nulls().alias(_col("v", n.field)))
        if n.distinct:
            out.append(pl.concat_list([x]).list.drop_nulls().alias(_col("d", n.field)))
    return out


def merge_exprs(needs: list[Needs]) -> list[pl.Expr]:
    """Partials merged over a group of partials (agg context)."""
    out = [pl.col(N).sum().alias(N)]
    for n in needs:
        f = n.field
        if n.count:
            out.append(pl.col(_col("c", f)).sum().alias(_col("c", f)))
        if n.sum:
            out.append(pl.col(_col("s", f)).sum().alias(_col("s", f)))
        if n.min:
            out.append(pl.col(_col("min", f)).min().alias(_col("min", f)))
        if n.max:
            out.append(pl.col(_col("max", f)).max().alias(_col("max", f)))
        if n.moments:
            c, m, m2 = pl.col(_col("c", f)).cast(pl.Float64), pl.col(_col("mean", f)), pl.col(_col("m2", f))
            mean = (c * m).sum() / c.sum()
            # Chan's merge: M2 = Σ M2_i + Σ n_i (mean_i − mean)²; empty partials (n_i = 0,
            # mean_i null) drop out because null terms are skipped by sum.
            out.append(pl.when(c.sum() > 0).then(mean).alias(_col("mean", f)))
            out.append((m2.sum() + (c * (m - mean) ** 2).sum()).alias(_col("m2", f)))
        if n.values:
            out.append(pl.col(_col("v", f)).explode().drop_nulls().alias(_col("v", f)))
        if n.distinct:
            out.append(pl.col(_col("d", f)).explode().drop_nulls().unique().alias(_col("d", f)))
    return out


def final_exprs(aggs: tuple[TAgg, ...]) -> list[pl.Expr]:
    """Aggregate columns from merged partials (row-wise)."""
    out: list[pl.Expr] = []
    for a in aggs:
        if a.field is None:
            out.append(pl.col(N).alias(a.name))
            continue
        f = a.field
        c = pl.col(_col("c", f)) if a.func in ("count", "sum", "avg", "std") else None
        if a.func == "count":
            e = c
        elif a.func == "sum":
            e = pl.when(c > 0).then(pl.col(_col("s", f)))
        elif a.func == "avg":
            e = pl.when(c > 0).then(pl.col(_col("s", f)).cast(pl.Float64) / c)
        elif a.func in ("min", "max"):
            e = pl.col(_col(a.func, f))
        elif a.func == "std":
            e = pl.when(c >= 2).then((pl.col(_col("m2", f)) / (c - 1)).sqrt())
        elif a.func == "percentile":
            q = float(a.q) / 100.0
            e = pl.col(_col("v", f)).list.eval(pl.element().quantile(q, interpolation="linear")).list.first()
        elif a.func == "distinct":
            e = pl.col(_col("d", f)).list.len()
        else:
            raise ValueError(f"unknown aggregate {a.func!r}")
        out.append(e.alias(a.name))
    return out


def empty_values(aggs: tuple[TAgg, ...]) -> dict[str, object]:
    """Aggregates over no rows (a schedule tick without rows): counts 0, the rest null."""
    return {a.name: (0 if a.func in ("count", "distinct") else None) for a in aggs}
