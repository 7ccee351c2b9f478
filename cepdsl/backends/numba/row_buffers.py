"""Small frame helpers shared by the Numba-backed executors."""

from __future__ import annotations

import numpy as np
import polars as pl

from cepdsl.executor import SEQ, TIME
from cepdsl.plan import RulePlan


def input_columns(rule: RulePlan) -> list[str]:
    """The columns an executor keeps from released rows: declared fields + SEQ + TIME."""
    return [f.name for f in rule.stream.fields] + [SEQ, TIME]


#: Row positions as Polars' own index dtype: `frame[series]` then gathers with no
#: conversion and no query plan (a `select(pl.all().gather(...))` costs ~0.1 ms more).
_INDEX = pl.get_index_type()
_INDEX_NP = np.uint32 if _INDEX == pl.UInt32 else np.uint64


def positions(idx: np.ndarray) -> pl.Series:
    """Row positions (non-negative) as a Series that `frame[...]` and `series[...]` gather by."""
    # From numpy's own dtype: `pl.Series(int64s, dtype=UInt32)` casts in Polars, 3x slower.
    return pl.Series(np.asarray(idx).astype(_INDEX_NP, copy=False))


#: Up to this many rows a gather goes column by column on this thread: the frame-wide
#: gather hands columns to Polars' thread pool, whose start-up costs more than a few
#: hundred rows take (measured 2x slower at 700 rows on a busy 2-core box).
_SERIAL_GATHER_ROWS = 1 << 16


def take(frame: pl.DataFrame, idx: np.ndarray) -> pl.DataFrame:
    """Rows `idx` (non-negative positions) of `frame`, in that order."""
    if frame.width == 0:
        return frame.clear()
    at = positions(idx)
    if len(idx) > _SERIAL_GATHER_ROWS:
        return frame[at]
    cols = [s[at] for s in frame.get_columns()]
    return cols[0].to_frame().hstack(cols[1:])


def concat_rows(old: pl.DataFrame | None, new: pl.DataFrame) -> pl.DataFrame:
    if old is None or old.height == 0:
        return new
    if new.height == 0:
        return old
    if new.columns == old.columns:
        # vstack checks the dtypes itself (and refuses any difference but a Null column
        # taking the other's dtype, which the cast below would also do): comparing them
        # here first cost more than the stacking.
        try:
            return old.vstack(new)
        except pl.exceptions.PolarsError:
            pass
    return old.vstack(new.select(old.columns).cast(dict(old.schema)))
