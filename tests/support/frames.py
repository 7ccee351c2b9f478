"""Comparing match frames the way the language defines them: same columns, same
dtypes, same rows (optionally in the same order), floats within a relative tolerance."""

from __future__ import annotations

import math

import polars as pl


def canonical(frame: pl.DataFrame) -> pl.DataFrame:
    """Rows sorted by every column (nulls first), so two orders of the same rows compare equal."""
    if frame.height == 0 or frame.width == 0:
        return frame
    # Floats are sorted on a rounded copy so tolerance-level noise does not reorder rows.
    keys = []
    for name, dtype in frame.schema.items():
        col = pl.col(name)
        if dtype.is_float():
            col = col.round(6)
        keys.append(col)
    return frame.with_row_index("__i").sort(keys, nulls_last=False, maintain_order=True).drop("__i")


def _floats_equal(x: float | None, y: float | None, rel: float, abs_: float) -> bool:
    if x is None or y is None:
        return x is None and y is None
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    if math.isinf(x) or math.isinf(y):
        return x == y
    return math.isclose(x, y, rel_tol=rel, abs_tol=abs_)


def assert_frames_match(
    a: pl.DataFrame,
    b: pl.DataFrame,
    *,
    ordered: bool = False,
    rel: float = 1e-9,
    abs_: float = 1e-9,
    label: str = "",
) -> None:
    """`a` and `b` hold the same rows: column names, order and dtypes equal; rows equal
    as multisets (or as sequences with `ordered=True`); floats within `rel`/`abs_`."""
    where = f"{label}: " if label else ""
    assert a.columns == b.columns, f"{where}columns differ:\n  {a.columns}\n  {b.columns}"
    assert a.dtypes == b.dtypes, f"{where}dtypes differ:\n  {a.schema}\n  {b.schema}"
    assert a.height == b.height, f"{where}{a.height} rows vs {b.height} rows\n{a}\n{b}"
    if not ordered:
        a, b = canonical(a), canonical(b)
    for name, dtype in a.schema.items():
        xs, ys = a[name].to_list(), b[name].to_list()
        if dtype.is_float():
            bad = [i for i, (x, y) in enumerate(zip(xs, ys, strict=True)) if not _floats_equal(x, y, rel, abs_)]
        else:
            bad = [i for i, (x, y) in enumerate(zip(xs, ys, strict=True)) if x != y]
        if bad:
            i = bad[0]
            raise AssertionError(
                f"{where}column {name!r} differs in {len(bad)} row(s); first at row {i}: "
                f"{xs[i]!r} != {ys[i]!r}\nrow a: {a.row(i, named=True)}\nrow b: {b.row(i, named=True)}"
            )
