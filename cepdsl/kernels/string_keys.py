"""A hash index of a lookup table's String keys, probed with a batch's String column in
one Numba pass over its Arrow buffers (§9.2 joins on String keys).

Polars' own join hashes each String row through its generic join machinery: on 10M
events against a 100k-row table it was most of the rule's time (bench/README.md,
issue 17).  The table side is small and changes only on reload, so its keys are indexed
once (open addressing, FNV-1a over the bytes); the batch side is read where Polars keeps
it, borrowed as Arrow string views (16 bytes a row: length, then the bytes inline up to
12, else buffer and offset), so no Python string is made and nothing is copied for
short keys.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor

import numba as nb
import numpy as np
import polars as pl

from cepdsl.kernels.borrow import borrow

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_INLINE = 12  # Arrow string views keep strings up to 12 bytes in the view itself


@nb.njit(cache=True, nogil=True)
def _mix(w0, w1):  # type: ignore[no-untyped-def]
    """A 64-bit hash of a short string's 16-byte view (murmur3's finaliser)."""
    h = w0 * np.uint64(0x9E3779B97F4A7C15) ^ w1
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> np.uint64(33))


@nb.njit(cache=True, nogil=True)
def _word(src, start, stop):  # type: ignore[no-untyped-def]
    """Bytes src[start:stop] (at most 8) as a little-endian word, zero-padded."""
    w = np.uint64(0)
    for k in range(start, stop):
        w |= np.uint64(src[k]) << np.uint64(8 * (k - start))
    return w


@nb.njit(cache=True, nogil=True)
def _hash_bytes(src, start, length):  # type: ignore[no-untyped-def]
    """The hash of a string from its bytes: for ≤ 12 bytes, that of its view's words."""
    if length <= _INLINE:
        w0 = np.uint64(length) | (_word(src, start, start + min(length, 4)) << np.uint64(32))
        w1 = _word(src, start + 4, start + length) if length > 4 else np.uint64(0)
        return _mix(w0, w1), w0, w1
    h = _FNV_OFFSET ^ np.uint64(length)
    for k in range(start, start + length):
        h = (h ^ np.uint64(src[k])) * _FNV_PRIME
    # (Word 0 is the length, > 12: never a short key's first word, whose low half is ≤ 12.)
    return _mix(h, np.uint64(length)), np.uint64(length), np.uint64(0)


@nb.njit(cache=True, nogil=True)
def _build(offsets, data, size):  # type: ignore[no-untyped-def]
    """Slots of 3 words: a short key's two view words (long keys: length, 0) and its row + 1
    (0: empty).  A short key is found by comparing words in its slot, one cache line."""
    slots = np.zeros(3 * size, dtype=np.uint64)
    for r in range(offsets.shape[0] - 1):
        s = offsets[r]
        h, w0, w1 = _hash_bytes(data, s, offsets[r + 1] - s)
        j = np.int64(h & np.uint64(size - 1))
        while slots[3 * j + 2] != 0:
            j = (j + 1) & (size - 1)
        slots[3 * j] = w0
        slots[3 * j + 1] = w1
        slots[3 * j + 2] = np.uint64(r + 1)
    return slots


@nb.njit(cache=True, nogil=True)
def _probe(views, valid, rows, long_data, long_starts, offsets, data, slots, absent, out):  # type: ignore[no-untyped-def]
    # `rows`: the row numbers to probe, out[t] for row rows[t] (empty: every row, out[i] for row i).
    # Borrowed arrays (borrow.py): no reference counting in the loop.
    views = borrow(views)
    long_data = borrow(long_data)
    offsets = borrow(offsets)
    data = borrow(data)
    slots = borrow(slots)
    size = slots.shape[0] // 3
    mask = np.uint64(size - 1)
    check = valid.shape[0] > 0
    pick = rows.shape[0] > 0
    for t in range(out.shape[0]):
        i = rows[t] if pick else t
        out[t] = absent
        if check and not valid[i]:
            continue
        w0 = views[2 * i]
        w1 = views[2 * i + 1]
        length = np.int64(w0 & np.uint64(0xFFFFFFFF))
        if length <= _INLINE:
            j = np.int64(_mix(w0, w1) & mask)
            while slots[3 * j + 2] != 0:
                if slots[3 * j] == w0 and slots[3 * j + 1] == w1:
                    out[t] = np.uint32(slots[3 * j + 2] - np.uint64(1))
                    break
                j = (j + 1) & (size - 1)
            continue
        start = long_starts[np.int64(w1 & np.uint64(0xFFFFFFFF))] + np.int64(w1 >> np.uint64(32))
        h, _, _ = _hash_bytes(long_data, start, length)
        j = np.int64(h & mask)
        while slots[3 * j + 2] != 0:
            r = np.int64(slots[3 * j + 2]) - 1
            s = offsets[r]
            if slots[3 * j] == np.uint64(length) and offsets[r + 1] - s == length:
                same = True
                for k in range(length):
                    if data[s + k] != long_data[start + k]:
                        same = False
                        break
                if same:
                    out[t] = np.uint32(r)
                    break
            j = (j + 1) & (size - 1)


class StringKeyIndex:
    """Row of each key of a table's String key column (keys are unique: a load check)."""

    def __init__(self, keys: pl.Series) -> None:
        arr = keys.cast(pl.String).rechunk().to_arrow().cast("large_string")
        _, off_buf, data_buf = arr.buffers()
        self.offsets = np.frombuffer(off_buf, dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1].copy()
        self.data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
        size = 1 << max(4, int(2 * max(len(arr), 1) - 1).bit_length())  # ≤ 50 % full
        self.slots = _build(self.offsets, self.data, size)

    def rows_of(self, column: pl.Series, absent: int, only: np.ndarray | None = None) -> np.ndarray:
        """Per value of the String `column`, its table row (UInt32; absent or null → `absent`);
        with `only` (row numbers), for those rows alone: probed in place, no String gather."""
        n = column.len()
        out = np.empty(n if only is None else len(only), dtype=np.uint32)
        if out.shape[0] == 0:
            return out
        arr = column.rechunk().to_arrow(compat_level=pl.CompatLevel.newest())
        if str(arr.type) != "string_view":  # (an older Polars: its large_string, as views)
            arr = arr.cast("string_view")
        bufs = arr.buffers()
        views = np.frombuffer(bufs[1], dtype=np.uint64)[arr.offset * 2 : (arr.offset + n) * 2]
        valid = column.is_not_null().to_numpy() if column.null_count() else np.zeros(0, dtype=np.bool_)
        longs = [np.frombuffer(b, dtype=np.uint8) if b is not None else np.zeros(0, np.uint8) for b in bufs[2:]]
        starts = np.zeros(max(len(longs), 1), dtype=np.int64)
        if longs:
            starts[1:] = np.cumsum([len(b) for b in longs])[:-1]
        long_data = np.concatenate(longs) if len(longs) > 1 else (longs[0] if longs else np.zeros(0, np.uint8))
        # Both byte sources read-only, as the borrowed views are: one array type in the
        # kernel (mixing read-only and writable arrays there cost ~20x per row).
        long_data.flags.writeable = False
        rows = np.zeros(0, np.int64) if only is None else np.ascontiguousarray(only, dtype=np.int64)
        tables = (long_data, starts, self.offsets, self.data, self.slots, absent)
        parts = _parts(out.shape[0])
        if len(parts) == 1:
            _probe(views, valid, rows, *tables, out)
            return out

        # The probe is cache-miss bound (a random slot per key): the kernel releases the GIL,
        # so slices of the rows probe on every core at once (5M keys: 128 → ~70 ms on 2).
        def probe(a: int, b: int) -> None:
            if only is not None:
                _probe(views, valid, rows[a:b], *tables, out[a:b])
            else:
                _probe(views[2 * a : 2 * b], valid[a:b] if valid.shape[0] else valid, rows, *tables, out[a:b])

        list(_pool().map(lambda ab: probe(*ab), parts))
        return out


#: Below this many keys one thread probes (a thread hand-off costs more than it saves).
_PARALLEL_FROM = 1 << 20


def _parts(n: int) -> list[tuple[int, int]]:
    cores = os.cpu_count() or 1
    if n < _PARALLEL_FROM or cores == 1:
        return [(0, n)]
    cuts = np.linspace(0, n, cores + 1).astype(np.int64)
    return [(int(cuts[k]), int(cuts[k + 1])) for k in range(cores)]


@functools.cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="cep-probe")
