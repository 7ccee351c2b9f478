"""Group keys → dense integer ids, and a persistent key → slot table.

Polars' sort- and join-based ways to number groups cost 0.5–6 s on 10M rows with
string keys (two cores); `key_codes` numbers them exactly in one Numba pass over
the Arrow string views (no hash can merge two groups, so no verification pass).
"""

from __future__ import annotations

from typing import Any

import numba as nb
import numpy as np
import polars as pl

from cepdsl.backends.numba.key_codes import frame_codes

@nb.njit(cache=True)
def _counting_sort_into(ids: np.ndarray, offsets: np.ndarray, perm: np.ndarray) -> None:
    n_groups = offsets.shape[0] - 1
    for g in ids:
        offsets[g + 1] += 1
    for g in range(n_groups):
        offsets[g + 1] += offsets[g]
    pos = offsets[:-1].copy()
    for i in range(ids.shape[0]):
        g = ids[i]
        perm[pos[g]] = i
        pos[g] += 1


def counting_sort(ids: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """A stable permutation that puts rows group by group, and each group's [start, end) offsets."""
    offsets = np.zeros(n_groups + 1, np.int64)
    perm = np.empty(ids.shape[0], np.int64)  # numpy: huge pages, few page faults
    _counting_sort_into(ids, offsets, perm)
    return perm, offsets


def group_ids(frame: pl.DataFrame, keys: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(per-row group id, first row of each group); ids follow first appearance. Null is a key value."""
    n = frame.height
    if not keys:
        return np.zeros(n, np.int64), np.zeros(1 if n else 0, np.int64)
    return frame_codes(frame.select(keys))


#: Above this many distinct keys in one batch, a join beats building Python objects.
_DICT_MAX = 20_000
#: Up to this many rows, look every row up in the dict (no group numbering pass).
_ROWS_BY_DICT = 4_096


class GroupTable:
    """Group key → slot, stable across batches (slots index the executors' state arrays)."""

    def __init__(self, schema: dict[str, pl.DataType]) -> None:
        self.schema = schema
        self.keys = tuple(schema)
        self.table = pl.DataFrame(schema=schema)
        # A single key of a type whose Python values compare exactly (no float NaN): slots
        # are found in a dict, ~50 ns a key, where a Polars join costs ~1 ms a batch.
        self._by_dict = len(self.keys) == 1 and (schema[self.keys[0]].is_integer() or schema[self.keys[0]] == pl.String)
        self._slot_of: dict[Any, int] | None = None  # built from `table` when first needed

    def __len__(self) -> int:
        return self.table.height if self.keys else 1

    def slots(self, frame: pl.DataFrame) -> np.ndarray:
        """Each row's slot; unseen keys get new slots at the end."""
        if not self.keys:
            return np.zeros(frame.height, np.int64)
        if self._by_dict and frame.height <= _ROWS_BY_DICT and self.table.height:
            # A micro-batch: a dict look per row beats numbering the groups first.
            return self._dict_slots(frame.select(self.keys))
        ids, firsts = group_ids(frame, self.keys)
        uniq = frame.select(self.keys).select(pl.all().gather(pl.Series(firsts, dtype=pl.Int64)))
        if self.table.height == 0:
            # Ids follow first appearance, so they are the slots: no gather.
            self.table = uniq
            self._slot_of = None
            return ids
        if self._by_dict and uniq.height <= _DICT_MAX:
            return self._dict_slots(uniq)[ids]
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
                self._slot_of = None
        return slot_of_group[ids]

    def _dict_slots(self, uniq: pl.DataFrame) -> np.ndarray:
        """The slot of each row of the one-column frame `uniq`, new keys appended to the table."""
        if self._slot_of is None:
            self._slot_of = {k: i for i, k in enumerate(self.table.get_column(self.keys[0]).to_list())}
        slot_of = self._slot_of
        keys = uniq.get_column(self.keys[0]).to_list()
        base = len(slot_of)
        out = np.empty(len(keys), np.int64)
        new: list[int] = []
        for i, k in enumerate(keys):
            s = slot_of.get(k)
            if s is None:
                s = slot_of[k] = base + len(new)
                new.append(i)
            out[i] = s
        if new:
            # `new` holds each new key's first row: the table gets it once.
            self.table = pl.concat([self.table, uniq[new]])
        return out

    def state(self) -> dict[str, Any]:
        return self.table.to_dict(as_series=False)

    def load_state(self, state: dict[str, Any]) -> None:
        self.table = pl.DataFrame(state, schema=self.schema)
        self._slot_of = None
