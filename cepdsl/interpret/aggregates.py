"""Aggregates over the rows of one window (LANGUAGE.md §4, `having`).

Nulls are skipped; `count()` counts rows. An aggregate with no non-null
input is null, except the counts (`count`, `count(f)`, `distinct`), which are 0:
this is SQL's rule, and it is what `count() is 0, other aggregates null` in
§5.3 asks for an empty schedule tick.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from cepdsl.functions import AGGREGATES
from cepdsl.interpret.values import compare, is_nan, wrap_int64
from cepdsl.plan import TAgg


def exact_sum(values: Sequence[float]) -> float:
    """The correctly rounded sum (order-independent, so the oracle has no
    summation-order noise); plain summation when infinities are involved."""
    try:
        return math.fsum(values)
    except (ValueError, OverflowError):  # inf - inf, or an intermediate overflow
        return float(sum(values))


def mean(values: Sequence[float]) -> float:
    if all(isinstance(v, int) for v in values):
        return sum(values) / len(values)  # int / int is correctly rounded in Python
    return exact_sum([float(v) for v in values]) / len(values)


def variance(values: Sequence[float], ddof: int) -> float:
    """Two-pass variance: mean first, then the exact sum of squared deviations."""
    m = mean(values)
    return exact_sum([(float(v) - m) ** 2 for v in values]) / (len(values) - ddof)


def quantile_linear(sorted_values: Sequence[float], q: float) -> float:
    """numpy's default ("linear") quantile, q in [0, 1], reproducing numpy's
    arithmetic step for step so results agree to the last bit."""
    n = len(sorted_values)
    if any(is_nan(v) for v in sorted_values):
        return math.nan  # numpy propagates NaN
    virtual = (n - 1) * q  # numpy's "linear" virtual index
    lo = math.floor(virtual)
    gamma = virtual - lo
    if virtual >= n - 1:
        lo_i = hi_i = n - 1
    elif virtual < 0:
        lo_i = hi_i = 0
    else:
        lo_i, hi_i = int(lo), int(lo) + 1
    a, b = float(sorted_values[lo_i]), float(sorted_values[hi_i])
    diff = b - a
    # numpy's _lerp: interpolate from the nearer end for stability.
    return b - diff * (1 - gamma) if gamma >= 0.5 else a + diff * gamma


def _sort_key(v: Any) -> tuple[int, Any]:
    return (1, 0) if is_nan(v) else (0, v)  # NaN sorts last, as in numpy and Polars


def _distinct_key(v: Any) -> Any:
    return "NaN" if is_nan(v) else v  # every NaN is one value


def _best(op: str) -> Any:
    """min (`<`) or max (`>`) in the order of the comparison operators: NaN is above every
    number, so min ignores it unless all are NaN."""

    def best(values: list[Any], agg: TAgg) -> Any:
        out = values[0]
        for v in values[1:]:
            if compare(op, v, out):
                out = v
        return out

    return best


def _sum(values: list[Any], agg: TAgg) -> Any:
    if all(isinstance(v, int) for v in values):
        return wrap_int64(sum(values))
    return exact_sum([float(v) for v in values])


def _std(values: list[Any], agg: TAgg) -> Any:
    return None if len(values) < 2 else math.sqrt(variance(values, ddof=1))


def _percentile(values: list[Any], agg: TAgg) -> Any:
    assert agg.q is not None
    return quantile_linear(sorted(values, key=_sort_key), agg.q / 100.0)


# Each takes the field's non-null values — never none: over no values an aggregate is its
# registry entry's `empty` (0 for the counts, else null), applied by `aggregate`.
for _name, _impl in {
    "count": lambda values, agg: len(values),
    "distinct": lambda values, agg: len({_distinct_key(v) for v in values}),
    "sum": _sum,
    "avg": lambda values, agg: float(mean(values)),
    "min": _best("<"),
    "max": _best(">"),
    "std": _std,
    "percentile": _percentile,
}.items():
    AGGREGATES.set_part("interpret", _name, _impl)


def aggregate(agg: TAgg, rows: Sequence[Mapping[str, Any]]) -> Any:
    """The value of one aggregate over `rows`."""
    if agg.field is None:
        return len(rows)  # count()
    values = [r[agg.field] for r in rows if r[agg.field] is not None]
    if not values:
        return AGGREGATES[agg.func].empty
    return AGGREGATES.part("interpret", agg.func)(values, agg)


def aggregate_all(aggs: Sequence[TAgg], rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {a.name: aggregate(a, rows) for a in aggs}
