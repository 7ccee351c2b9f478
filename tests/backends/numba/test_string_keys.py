"""The String-key hash index of lookup tables (backends/numba/string_keys.py) ≡ a Polars
left join, on keys inline in Arrow's views (≤ 12 bytes) and in its buffers (longer),
with nulls, misses, empty strings, non-ASCII text and sliced columns."""

from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from cepdsl.backends.numba.string_keys import StringKeyIndex

# Lengths around the 12-byte inline limit, and multi-byte UTF-8.
WORDS = ["", "a", "abcd", "abcde", "abcdefghijkl", "abcdefghijklm", "é", "ключ-1", "x" * 40, "x" * 41, "host-000001"]


def _expected(keys: pl.Series, column: pl.Series) -> np.ndarray:
    table = keys.to_frame("k").with_row_index("p")
    found = pl.DataFrame({"k": column}).join(table, on="k", how="left", maintain_order="left")["p"]
    return found.fill_null(keys.len()).to_numpy()


@given(
    keys=st.lists(st.one_of(st.sampled_from(WORDS), st.text(max_size=20)), unique=True, max_size=30),
    probes=st.lists(st.one_of(st.none(), st.sampled_from(WORDS), st.text(max_size=20)), max_size=60),
    offset=st.integers(0, 3),
)
def test_rows_equal_a_polars_left_join(keys: list[str], probes: list[str | None], offset: int) -> None:
    key_series = pl.Series(keys, dtype=pl.String)
    index = StringKeyIndex(key_series)
    # Probes drawn from the keys too, and a slice (an Arrow offset) of a longer column.
    column = pl.Series(["pad"] * offset + probes + keys, dtype=pl.String).slice(offset)
    got = index.rows_of(column, key_series.len())
    assert got.dtype == np.uint32
    assert got.tolist() == _expected(key_series, column).tolist()


def test_big_table_finds_every_key_and_misses_the_rest() -> None:
    keys = pl.Series([f"host-{i:06d}" for i in range(50_000)] + [f"a-long-host-name-{i:06d}" for i in range(50_000)])
    index = StringKeyIndex(keys)
    rng = np.random.default_rng(5)
    column = pl.concat([keys.gather(rng.integers(0, keys.len(), 20_000)), pl.Series(["host-x", None, "a-long-host-name-x"])])
    got = index.rows_of(column, keys.len())
    assert got[-3:].tolist() == [keys.len()] * 3
    assert (got[:-3] < keys.len()).all()
    assert keys.gather(pl.Series(got[:-3])).equals(column.head(20_000))
