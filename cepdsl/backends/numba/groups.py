"""Group keys → dense integer ids, and a persistent key → slot table.

Polars' sort- and join-based ways to number groups cost 0.5–6 s on 10M rows with
string keys (two cores); hashing the key columns (≈ 0.08 s) and numbering the
hashes in one Numba pass over an open-addressing table (≈ 0.15 s) is several
times faster.  A 64-bit hash can collide, so every row's key is checked against
its group's first row; on a collision (never seen in practice) we fall back to
Polars' exact dense rank.
"""

from __future__ import annotations

from typing import Any

import numba as nb
import numpy as np
import polars as pl

_MIX = np.uint64(0x9E3779B97F4A7C15)


@nb.njit(cache=True)
def _slot_of(x: np.uint64, mask: np.int64) -> np.int64:
    # Fold the high bits in: Polars' hashes of small integers are not uniform in the low bits.
    return np.int64((x ^ (x >> np.uint64(29)) ^ (x >> np.uint64(47))) & np.uint64(mask))


@nb.njit(cache=True)
def dense_ids(hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the id of its hash in order of first appearance; and each id's first row."""
    n = hashes.shape[0]
    cap = 1024
    keys = np.empty(cap, np.uint64)
    vals = np.full(cap, -1, np.int64)
    ids = np.empty(n, np.int64)
    firsts = np.empty(max(n, 1), np.int64)
    ng = 0
    for i in range(n):
        x = hashes[i]
        mask = np.int64(cap - 1)
        j = _slot_of(x, mask)
        while True:
            v = vals[j]
            if v < 0:
                keys[j] = x
                vals[j] = ng
                firsts[ng] = i
                ids[i] = ng
                ng += 1
                if ng * 2 > cap:  # keep the load factor ≤ 1/2
                    ncap = cap * 2
                    nkeys = np.empty(ncap, np.uint64)
                    nvals = np.full(ncap, -1, np.int64)
                    for q in range(cap):
                        if vals[q] >= 0:
                            jj = _slot_of(keys[q], np.int64(ncap - 1))
                            while nvals[jj] >= 0:
                                jj = (jj + np.int64(1)) & np.int64(ncap - 1)
                            nkeys[jj] = keys[q]
                            nvals[jj] = vals[q]
                    keys, vals, cap = nkeys, nvals, ncap
                break
            if keys[j] == x:
                ids[i] = v
                break
            j = (j + np.int64(1)) & mask
    return ids, firsts[:ng].copy()


@nb.njit(cache=True)
def counting_sort(ids: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """A stable permutation that puts rows group by group, and each group's [start, end) offsets."""
    offsets = np.zeros(n_groups + 1, np.int64)
    for g in ids:
        offsets[g + 1] += 1
    for g in range(n_groups):
        offsets[g + 1] += offsets[g]
    pos = offsets[:-1].copy()
    perm = np.empty(ids.shape[0], np.int64)
    for i in range(ids.shape[0]):
        g = ids[i]
        perm[pos[g]] = i
        pos[g] += 1
    return perm, offsets


def _key_hashes(keys: pl.DataFrame) -> np.ndarray:
    h = None
    for name in keys.columns:
        col = keys.get_column(name).hash().to_numpy().astype(np.uint64, copy=False)
        h = col if h is None else (h * _MIX) ^ col
    assert h is not None
    return np.ascontiguousarray(h)


def group_ids(frame: pl.DataFrame, keys: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(per-row group id, first row of each group); ids follow first appearance. Null is a key value."""
    n = frame.height
    if not keys:
        return np.zeros(n, np.int64), np.zeros(1 if n else 0, np.int64)
    key_frame = frame.select(keys)
    ids, firsts = dense_ids(_key_hashes(key_frame))
    if n and not _same_keys(key_frame, ids, firsts):
        ids, firsts = _exact_ids(key_frame)
    return ids, firsts


def _same_keys(key_frame: pl.DataFrame, ids: np.ndarray, firsts: np.ndarray) -> bool:
    reps = key_frame.select(pl.all().gather(pl.Series(firsts[ids])))
    return all(bool(key_frame.get_column(c).eq_missing(reps.get_column(c)).all()) for c in key_frame.columns)


def _exact_ids(key_frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    rank = key_frame.select(pl.struct(pl.all()).rank("dense")).to_series().to_numpy().astype(np.int64) - 1
    # Renumber by first appearance, like `dense_ids`.
    ids, firsts = dense_ids(rank.astype(np.uint64))
    return ids, firsts


class GroupTable:
    """Group key → slot, stable across batches (slots index the executors' state arrays)."""

    def __init__(self, schema: dict[str, pl.DataType]) -> None:
        self.schema = schema
        self.keys = tuple(schema)
        self.table = pl.DataFrame(schema=schema)

    def __len__(self) -> int:
        return self.table.height if self.keys else 1

    def slots(self, frame: pl.DataFrame) -> np.ndarray:
        """Each row's slot; unseen keys get new slots at the end."""
        if not self.keys:
            return np.zeros(frame.height, np.int64)
        ids, firsts = group_ids(frame, self.keys)
        uniq = frame.select(self.keys).select(pl.all().gather(pl.Series(firsts, dtype=pl.Int64)))
        if self.table.height == 0:
            slot_of_group = np.arange(uniq.height, dtype=np.int64)
            self.table = uniq
        else:
            known = uniq.with_row_index("__u").join(
                self.table.with_row_index("__slot"), on=list(self.keys), how="left", nulls_equal=True
            )
            known = known.sort("__u")
            slot = known.get_column("__slot").cast(pl.Int64)
            new = slot.is_null().to_numpy()
            slot_of_group = slot.fill_null(-1).to_numpy().copy()
            n_new = int(new.sum())
            if n_new:
                slot_of_group[new] = np.arange(self.table.height, self.table.height + n_new)
                self.table = pl.concat([self.table, uniq.filter(pl.Series(new))])
        return slot_of_group[ids]

    def state(self) -> dict[str, Any]:
        return self.table.to_dict(as_series=False)

    def load_state(self, state: dict[str, Any]) -> None:
        self.table = pl.DataFrame(state, schema=self.schema)
