"""Exact group codes (`key_codes`): same partition as Python dict keys, first-appearance order."""

from __future__ import annotations

import math

import polars as pl
import pytest

from cepdsl.kernels.groups import GroupTable
from cepdsl.kernels.key_codes import frame_codes
from tests.support.key_columns import key_frame

WORDS = [
    "",
    "a",
    "ab",
    "abc",
    "abcd",
    "abcde",
    "abcdefghijk",
    "abcdefghijkl",
    "abcdefghijklm",
    "abcdefghijklmnopqrstuvwxyz",
    "abcdefghijklmnopqrstuvwxyZ",
    "Abcdefghijklmnopqrstuvwxyz",
    "é",
    "x" * 100,
    None,
]


def reference(df: pl.DataFrame) -> list[int]:
    """The interpreter's notion of a group: NaN is one key, 0.0 == -0.0, null is a key."""
    seen: dict[tuple[object, ...], int] = {}
    return [seen.setdefault(key, len(seen)) for key in reference_rows(df)]


def frames(seed: int) -> pl.DataFrame:
    return key_frame(seed, WORDS, 120)


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("cols", [("s",), ("f",), ("i", "b"), ("s", "f", "i", "b")])
def test_codes_partition_like_python_keys(seed: int, cols: tuple[str, ...]) -> None:
    df = frames(seed).select(cols)
    codes, firsts = frame_codes(df)
    assert codes.tolist() == reference(df)
    assert firsts.tolist() == [codes.tolist().index(c) for c in range(len(firsts))]
    if df.height > 4:  # a slice (Arrow offset) and several chunks give the same codes
        part = df.slice(3)
        assert frame_codes(part)[0].tolist() == reference(part)
        chunked = pl.concat([df.slice(0, 2), df.slice(2)], rechunk=False)
        assert frame_codes(chunked)[0].tolist() == reference(df)


def test_long_strings_with_equal_length_and_prefix_are_told_apart() -> None:
    a, b = "user-" + "x" * 30 + "1", "user-" + "x" * 30 + "2"
    df = pl.DataFrame({"u": [a, b, a, b, None, "", None]})
    assert frame_codes(df)[0].tolist() == [0, 1, 0, 1, 2, 3, 2]


def test_group_table_without_keys_is_one_group() -> None:
    table = GroupTable({})
    assert table.slots(pl.DataFrame({"x": [1, 2, 3]})).tolist() == [0, 0, 0] and len(table) == 1


def test_group_table_keeps_slots_across_batches() -> None:
    table = GroupTable({"u": pl.String})
    assert table.slots(pl.DataFrame({"u": ["b", "a", "b"]})).tolist() == [0, 1, 0]
    assert table.slots(pl.DataFrame({"u": ["c", None, "a", "c"]})).tolist() == [2, 3, 1, 2]
    assert table.table.get_column("u").to_list() == ["b", "a", "c", None]


@pytest.mark.parametrize("cols", [("s",), ("i",), ("f",), ("i", "b"), ("s", "f", "i", "b")])
def test_group_table_numbers_keys_for_good_across_batches_and_restores(cols: tuple[str, ...]) -> None:
    """Slots number the keys in order of first appearance over all batches (the partition of
    Python dict keys: NaN one key, 0.0 == -0.0, null a key), survive a snapshot restore, and
    the table holds each slot's key."""
    table = GroupTable({c: frames(0).schema[c] for c in cols})
    seen: dict[tuple[object, ...], int] = {}
    for seed in range(12):
        df = frames(seed).select(cols)
        got = table.slots(df).tolist()
        want = [seen.setdefault(key, len(seen)) for key in reference_rows(df)]
        assert got == want
        if seed == 6:  # restore from a snapshot mid-way
            table.load_state(table.state())
    assert len(table) == len(seen)
    assert reference_rows(table.table) == list(seen)


def reference_rows(df: pl.DataFrame) -> list[tuple[object, ...]]:
    return [tuple("NaN" if isinstance(v, float) and math.isnan(v) else v for v in row) for row in df.iter_rows()]
