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


def aggregate(agg: TAgg, rows: Sequence[Mapping[str, Any]]) -> Any:
    """The value of one aggregate over `rows`."""
    if agg.field is None:
        return len(rows)  # count()
    values = [r[agg.field] for r in rows if r[agg.field] is not None]
    func = agg.func
    if func == "count":
        return len(values)
    if func == "distinct":
        return len({_distinct_key(v) for v in values})
    if not values:
        return None
    if func == "sum":
        if all(isinstance(v, int) for v in values):
            return wrap_int64(sum(values))
        return exact_sum([float(v) for v in values])
    if func == "avg":
        return float(mean(values))
    if func == "min":
        # Same order as `<`: NaN is above every number, so min ignores it unless all are NaN.
        best = values[0]
        for v in values[1:]:
            if compare("<", v, best):
                best = v
        return best
    if func == "max":
        best = values[0]
        for v in values[1:]:
            if compare(">", v, best):
                best = v
        return best
    if func == "std":
        if len(values) < 2:
            return None
        return math.sqrt(variance(values, ddof=1))
    if func == "percentile":
        assert agg.q is not None
        return quantile_linear(sorted(values, key=_sort_key), agg.q / 100.0)
    raise NotImplementedError(f"aggregate {func!r}")


def aggregate_all(aggs: Sequence[TAgg], rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {a.name: aggregate(a, rows) for a in aggs}
