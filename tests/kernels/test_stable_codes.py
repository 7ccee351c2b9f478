"""`key_codes.StableCodes`: exact group codes that hold across batches (a key keeps the
code of the batch where it first appeared), for one or several key columns of any kind."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from cepdsl.kernels.key_codes import StableCodes
from tests.support.key_columns import key_frame

WORDS = ["", "a", "abcd", "abcdefghijkl", "abcdefghijklm", "user-" + "x" * 30 + "1", "user-" + "x" * 30 + "2", "é", None]


def batch(seed: int) -> pl.DataFrame:
    return key_frame(seed, WORDS, 60)


def key(row: tuple[object, ...]) -> tuple[object, ...]:
    # The interpreter's group identity: NaN is one key, 0.0 == -0.0, null is a key.
    return tuple("NaN" if isinstance(v, float) and math.isnan(v) else v for v in row)


@pytest.mark.parametrize("cols", [("s",), ("f",), ("i", "b"), ("s", "f", "i", "b")])
def test_codes_hold_across_batches(cols: tuple[str, ...]) -> None:
    codes = StableCodes(len(cols))
    seen: dict[tuple[object, ...], int] = {}
    for seed in range(30):
        df = batch(seed).select(cols)
        if seed % 3 == 1 and "s" in cols:  # dictionary-encoded batches code through their strings
            df = df.with_columns(pl.col("s").cast(pl.Categorical))
        got, firsts = codes.codes([df.get_column(c) for c in cols])
        before = len(seen)
        want = [seen.setdefault(key(r), len(seen)) for r in df.iter_rows()]
        assert got.tolist() == want
        assert len(codes) == len(seen)
        # firsts: the first row of each code new in this batch, in code order
        assert firsts.tolist() == [want.index(c) for c in range(before, len(seen))]


def test_many_keys_past_the_cached_table_size() -> None:
    """Past ~16k keys the string table no longer fits the caches and the coding pass
    switches from keys computed in place to a key pass first (with prefetching); codes
    must not notice.  Thousands of new keys per batch also grow the first-rows buffer."""
    rng = np.random.default_rng(9)
    pool = [f"k{i}" if i % 2 else f"a-long-key-of-many-bytes-{i:06d}" for i in range(30_000)]
    codes = StableCodes(1)
    seen: dict[object, int] = {}
    for size in (5_000, 20_000, 20_000, 300):
        keys = [None if v == 0 else pool[v] for v in rng.integers(0, len(pool), size)]
        got, firsts = codes.codes([pl.Series(keys, dtype=pl.String)])
        before = len(seen)
        want = [seen.setdefault(k, len(seen)) for k in keys]
        assert got.tolist() == want
        first_row: dict[int, int] = {}
        for i, c in enumerate(want):
            first_row.setdefault(c, i)
        assert firsts.tolist() == [first_row[c] for c in range(before, len(seen))]
    assert len(seen) > 16_384
