"""Aggregates (§4): nulls skipped, sample std, numpy-linear percentile, distinct."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from cepdsl.interpret.aggregates import aggregate, quantile_linear
from cepdsl.plan import TAgg, aggregate_name
from cepdsl.types import Type
from tests.interpret.interp_helpers import examples


def agg(func: str, field: str | None = "x", q: float | None = None) -> TAgg:
    return TAgg(Type.FLOAT, func, field, q, aggregate_name(func, field, q))


def rows(*xs: float | None) -> list[dict[str, float | None]]:
    return [{"x": x} for x in xs]


def test_count_counts_rows_and_count_f_non_null_values() -> None:
    data = rows(1.0, None, 3.0)
    assert aggregate(agg("count", None), data) == 3
    assert aggregate(agg("count"), data) == 2


def test_empty_input_counts_zero_others_null() -> None:
    for func in ("sum", "avg", "min", "max", "std", "percentile"):
        assert aggregate(agg(func, q=50.0), rows(None, None)) is None, func
    assert aggregate(agg("count", None), []) == 0
    assert aggregate(agg("distinct"), rows(None)) == 0


def test_std_is_sample_and_null_below_two_values() -> None:
    # [2, 4, 4, 4, 5, 5, 7, 9]: mean 5, squared deviations sum 32, /(8-1) → sqrt(32/7)
    assert math.isclose(aggregate(agg("std"), rows(2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0)), math.sqrt(32 / 7))
    assert aggregate(agg("std"), rows(3.0, None)) is None  # one value
    assert aggregate(agg("std"), rows(3.0, 3.0)) == 0.0


def test_percentile_interpolates_linearly() -> None:
    # [10, 20, 30, 40], p90: index 0.9*3 = 2.7 → 30 + 0.7*10 = 37
    assert math.isclose(aggregate(agg("percentile", q=90.0), rows(40.0, 10.0, None, 30.0, 20.0)), 37.0)
    assert aggregate(agg("percentile", q=0.0), rows(5.0, 1.0)) == 1.0
    assert aggregate(agg("percentile", q=100.0), rows(5.0, 1.0)) == 5.0
    assert aggregate(agg("percentile", q=50.0), rows(7.0)) == 7.0


def test_distinct_counts_distinct_non_null_values() -> None:
    assert aggregate(agg("distinct"), rows(1.0, 1.0, None, 2.0, math.nan, math.nan)) == 3  # 1, 2, NaN


def test_min_max_skip_nulls_and_order_nan_above_numbers() -> None:
    assert aggregate(agg("min"), rows(None, 3.0, 1.0)) == 1.0
    assert aggregate(agg("max"), rows(None, 3.0, 1.0)) == 3.0
    assert aggregate(agg("min"), rows(math.nan, 2.0)) == 2.0
    assert math.isnan(aggregate(agg("max"), rows(math.nan, 2.0)))


def test_sum_is_exactly_rounded() -> None:
    # Naive left-to-right: 1e16 + 1 + 1 = 1e16 (each +1 lost); exact: 1e16 + 2.
    assert aggregate(agg("sum"), rows(1e16, 1.0, 1.0)) == 1e16 + 2


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@examples(120)
@given(st.lists(finite, min_size=1, max_size=30), st.floats(min_value=0, max_value=100))
def test_percentile_matches_numpy(xs: list[float], q: float) -> None:
    assert quantile_linear(sorted(xs), q / 100) == float(np.percentile(np.array(xs), q))


@examples(120)
@given(st.lists(finite, min_size=2, max_size=30))
def test_std_matches_numpy_ddof_1(xs: list[float]) -> None:
    assert math.isclose(aggregate(agg("std"), rows(*xs)), float(np.std(xs, ddof=1)), rel_tol=1e-9, abs_tol=1e-6)
