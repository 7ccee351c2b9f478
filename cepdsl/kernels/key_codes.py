"""Exact dense codes for group-key columns, one Numba pass per column, no hashing in Polars.

A String column is read through its Arrow string views (zero copy: 16 bytes per
row, strings of up to 12 bytes stored inline).  An inline string *is* its view, so
the open-addressing table stores the two view words and compares them exactly; a
longer string is hashed from its bytes and compared byte for byte with the first
row that had it
(a copy of its bytes kept in a compact arena).  Numeric columns (int, timestamp, float, bool) are their own
64-bit keys (floats normalised so -0.0 = 0.0 and all NaNs are one key, like the
reference interpreter).  Null is a key value of its own.  No hash collision can
merge two groups: every hit is an exact comparison.

Several key columns: each column is coded, then the codes are combined pairwise
(`a * n_b + b`, exact) and coded again.  Codes follow first appearance.

The table is linear-probed, at most half full, and at most 1/8 full while small
(< 64k slots, ≤ 8k keys): with few keys most of a row's time was the probe loop's
mispredicted exit, and a sparser table probes about once (figures: bench/README.md,
"windows").
"""

from __future__ import annotations

import numba as nb
import numpy as np
import polars as pl

from cepdsl.kernels.borrow import borrow
from cepdsl.kernels.prefetch import AHEAD, prefetch

_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xBF58476D1CE4E5B9)
_M3 = np.uint64(0x94D049BB133111EB)


@nb.njit(cache=True, nogil=True)
def _copy(dst: np.ndarray, at: np.int64, src: np.ndarray, frm: np.int64, n: np.int64) -> None:
    """dst[at:at+n] = src[frm:frm+n] as a loop: Numba's slice assignment compiles a
    shape-mismatch error message (str/join of the shapes), ~2 s of first-run compile."""
    for k in range(n):
        dst[at + k] = src[frm + k]


@nb.njit(cache=True, inline="always")
def _mix(x: np.uint64) -> np.uint64:
    # splitmix64 finaliser: the table index uses the low bits, which must depend on all bits.
    x = (x ^ (x >> np.uint64(30))) * _M2
    x = (x ^ (x >> np.uint64(27))) * _M3
    return x ^ (x >> np.uint64(31))


@nb.njit(cache=True, nogil=True)
def _grow(table: np.ndarray) -> np.ndarray:
    """Double a flat open-addressing table of [k0, k1, code + 1, arena offset] entries (code + 1 = 0: empty)."""
    cap = table.shape[0] // 4
    ncap = cap * 2
    nt = np.zeros(ncap * 4, np.uint64)
    mask = ncap - 1
    for j in range(cap):
        if table[4 * j + 2] != 0:
            q = np.int64(_mix(table[4 * j] ^ (table[4 * j + 1] * _M1)) & np.uint64(mask))
            while nt[4 * q + 2] != 0:
                q = (q + 1) & mask
            for w in range(4):
                nt[4 * q + w] = table[4 * j + w]
    return nt


@nb.njit(cache=True, nogil=True)
def _bytes_hash(data: np.ndarray, start: np.int64, length: np.int64) -> np.uint64:
    h = np.uint64(length) * _M1
    i = 0
    while i < length:
        w = np.uint64(0)
        for k in range(min(8, length - i)):  # little-endian word of up to 8 bytes
            w |= np.uint64(data[start + i + k]) << np.uint64(8 * k)
        h = _mix(h ^ w)
        i += 8
    return h


@nb.njit(cache=True, nogil=True)
def _same_bytes(data: np.ndarray, a: np.int64, arena: np.ndarray, b: np.int64, length: np.int64) -> bool:
    for i in range(length):
        if data[a + i] != arena[b + i]:
            return False
    return True


_LO32 = np.uint64(0xFFFFFFFF)
#: Table size (slots of 32 bytes) from which `code_keys_into` prefetches.
_PREFETCH_SLOTS = 1 << 15
#: Tables below this many slots (≤ 8k keys, ≤ 4 MB) are kept at most 1/8 full (else 1/2):
#: fewer probes, so fewer mispredicted probe loops.
_SPARSE_SLOTS = 1 << 16
#: Arrow string views (zero copy); `newest()` reads the environment on each call.
_NEWEST = pl.CompatLevel.newest()


@nb.njit(cache=True, inline="always")
def _short_key(v0: np.uint64, v1: np.uint64, length: np.int64) -> tuple[np.uint64, np.uint64]:
    """An inline string's view (≤ 12 bytes) with the bytes past its end cleared."""
    if length < 4:
        v0 = v0 & ((np.uint64(1) << np.uint64(32 + 8 * length)) - np.uint64(1))
    if length <= 4:
        v1 = np.uint64(0)
    elif length < 12:
        v1 = v1 & ((np.uint64(1) << np.uint64(8 * (length - 4))) - np.uint64(1))
    return v0, v1


@nb.njit(cache=True, nogil=True)
def view_keys(views: np.ndarray, data: np.ndarray, base: np.ndarray, k0: np.ndarray, k1: np.ndarray) -> None:
    """Fill (k0, k1) with two 64-bit words per string: the view itself for an inline
    string (≤ 12 bytes; bytes past the end cleared), else (length + prefix, hash of the
    bytes).  A pass of its own: the table lookups then run without a hash's latency in
    front of each.  Helpers inlined here take scalars only: an inlined helper taking
    arrays costs reference counting per row (~4x this loop's time), unless borrowed."""
    data = borrow(data)
    for i in range(k0.shape[0]):
        v0 = views[2 * i]
        v1 = views[2 * i + 1]
        length = np.int64(v0 & _LO32)
        if length > 12:
            k0[i] = v0
            k1[i] = _bytes_hash(data, base[np.int64(v1 & _LO32)] + np.int64(v1 >> np.uint64(32)), length)
        else:
            k0[i], k1[i] = _short_key(v0, v1, length)


#: A String column as the kernels read it: (views, data, base), see `_string_views`.
Strings = tuple[np.ndarray, np.ndarray, np.ndarray]
#: A key column as the kernels read it: (k0, k1, valid, *strings), see `code_keys`.
Keys = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@nb.njit(cache=True, nogil=True)
def code_keys(keys: Keys, codes: np.ndarray, firsts: np.ndarray) -> int:
    """Fill `codes` (int64[n]) with each row's key code in order of first appearance and
    `firsts` with each code's first row; return the number of codes.

    `keys` = (k0, k1, valid, views, data, base).  Keys are the word pairs (k0, k1) (uint64[n]
    each); when `views` (flat uint64[2n] Arrow string views) is not empty they are strings'
    `view_keys`, and a string longer than 12 bytes is also compared byte for byte (in
    `data`, at the offsets `base` of its buffer).  `valid`: uint8[n] or empty (no nulls);
    null is one key of its own.  The output arrays come from the caller: numpy allocates
    large arrays on huge pages, which saves most of the page-fault time of a fresh 80 MB array."""
    table = np.zeros(4 * 1024, np.uint64)
    arena = np.empty(4096 if keys[3].shape[0] > 0 else 0, np.uint8)  # keys[3]: views
    meta = np.zeros(3, np.int64)
    meta[1] = -1
    code_keys_into(keys, codes, firsts, table, arena, meta, False)
    return meta[0]


@nb.njit(cache=True, nogil=True)
def code_keys_into(
    keys: Keys, codes: np.ndarray, firsts: np.ndarray, table: np.ndarray, arena: np.ndarray, meta: np.ndarray, fused: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`code_keys` continuing from the keys of earlier calls: `table` and `arena` and
    `meta` = [codes so far, null's code or -1, arena bytes used] (updated) carry them, so a
    key keeps its code across batches.  `firsts[j]` is the first row of the j-th new code
    (code meta[0] before the call + j).  Returns (table, arena, firsts), each grown when
    needed.  The arena holds copies, so nothing refers to an earlier batch's buffers.

    `fused`: k0/k1 are not given (empty); each string's key is computed from its view as
    the row is coded, in the same pass (no key arrays written and read back; no prefetch)."""
    k0, k1, valid, views, data, base = keys
    data = borrow(data)  # passed to the per-row hash and compare of long strings (borrow.py)
    strings = views.shape[0] > 0
    n = views.shape[0] // 2 if fused else k0.shape[0]
    mask = table.shape[0] // 4 - 1
    # Prefetching costs a second hash per row: worth it only once the table outgrows the
    # caches (~1 MB); a persistent table of a few thousand keys is always cached.
    far = mask >= _PREFETCH_SLOTS and not fused
    ng0 = meta[0]
    ng = ng0
    null_code = meta[1]
    has_valid = valid.shape[0] > 0
    used = meta[2]
    for i in range(n):
        ahead = i + AHEAD
        if far and ahead < n:
            prefetch(table, 4 * np.int64(_mix(k0[ahead] ^ (k1[ahead] * _M1)) & np.uint64(mask)))
        if has_valid and valid[i] == 0:
            if null_code < 0:
                if ng - ng0 == firsts.shape[0]:
                    firsts = _doubled(firsts)
                null_code = ng
                firsts[ng - ng0] = i
                ng += 1
            codes[i] = null_code
            continue
        if fused:
            a = views[2 * i]
            v1 = views[2 * i + 1]
            length = np.int64(a & _LO32)
            if length > 12:
                b = _bytes_hash(data, base[np.int64(v1 & _LO32)] + np.int64(v1 >> np.uint64(32)), length)
            else:
                a, b = _short_key(a, v1, length)
        else:
            a = k0[i]
            b = k1[i]
        j = np.int64(_mix(a ^ (b * _M1)) & np.uint64(mask))
        while True:
            c = table[4 * j + 2]
            if c == 0:
                table[4 * j] = a
                table[4 * j + 1] = b
                table[4 * j + 2] = np.uint64(ng + 1)
                if strings and np.int64(a & _LO32) > 12:
                    # Keep a copy of the bytes in a compact arena: comparing against it hits
                    # the cache, comparing against the first row's bytes in the column does not.
                    length = np.int64(a & _LO32)
                    if used + length > arena.shape[0]:
                        bigger = np.empty(max(2 * arena.shape[0], used + length), np.uint8)
                        _copy(bigger, np.int64(0), arena, np.int64(0), used)
                        arena = bigger
                    v1 = views[2 * i + 1]
                    src = base[np.int64(v1 & _LO32)] + np.int64(v1 >> np.uint64(32))
                    _copy(arena, used, data, src, length)
                    table[4 * j + 3] = np.uint64(used)
                    used += length
                codes[i] = ng
                if ng - ng0 == firsts.shape[0]:
                    firsts = _doubled(firsts)
                firsts[ng - ng0] = i
                ng += 1
                if ng * 2 > mask + 1 or (ng * 8 > mask + 1 and mask < _SPARSE_SLOTS):
                    table = _grow(table)
                    mask = table.shape[0] // 4 - 1
                    far = mask >= _PREFETCH_SLOTS and not fused
                break
            if table[4 * j] == a and table[4 * j + 1] == b:
                length = np.int64(a & _LO32)
                if not strings or length <= 12:
                    codes[i] = np.int64(c) - 1
                    break
                # Same length, prefix and hash: the bytes decide.
                v1 = views[2 * i + 1]
                if _same_bytes(
                    data, base[np.int64(v1 & _LO32)] + np.int64(v1 >> np.uint64(32)), arena, np.int64(table[4 * j + 3]), length
                ):
                    codes[i] = np.int64(c) - 1
                    break
            j = (j + 1) & mask
    meta[0] = ng
    meta[1] = null_code
    meta[2] = used
    return table, arena, firsts


@nb.njit(cache=True, nogil=True)
def _doubled(a: np.ndarray) -> np.ndarray:
    b = np.empty(max(2 * a.shape[0], 16), a.dtype)
    _copy(b, np.int64(0), a, np.int64(0), a.shape[0])
    return b


@nb.njit(cache=True, nogil=True)
def code_strings_into(
    strings: Strings,
    valid: np.ndarray,
    codes: np.ndarray,
    firsts: np.ndarray,
    table: np.ndarray,
    arena: np.ndarray,
    meta: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`code_keys_into` of a String column's views, in one call: while the table is
    cached, keys are computed in the coding pass itself; a table past the caches takes
    `view_keys` first, so the coding pass can prefetch.  `strings`: `_string_views`."""
    views, data, base = strings
    # Two call sites with the constants True and False compile code_keys_into twice (once
    # per literal: a third of this kernel's first-run compile), but each copy drops the
    # other's per-row branches: one copy with a run-time flag coded 3M keys 25 % slower.
    if table.shape[0] // 4 - 1 < _PREFETCH_SLOTS:
        return code_keys_into((_NO_WORDS, _NO_WORDS, valid, views, data, base), codes, firsts, table, arena, meta, True)
    n = codes.shape[0]
    k0 = np.empty(n, np.uint64)
    k1 = np.empty(n, np.uint64)
    view_keys(views, data, base, k0, k1)
    return code_keys_into((k0, k1, valid, views, data, base), codes, firsts, table, arena, meta, False)


_NO_NULLS = np.zeros(0, np.uint8)
#: One data buffer (offsets from 0) / no data buffer (inline strings only).  Read-only,
#: as Arrow's buffers are: the kernels then have one specialisation whatever the column.
_BASE0 = np.zeros(1, np.int64)
_DATA0 = np.zeros(1, np.uint8)
_BASE0.flags.writeable = _DATA0.flags.writeable = False
_NO_WORDS = np.zeros(0, np.uint64)
_NO_BYTES = np.zeros(0, np.uint8)
_NO_BASE = np.zeros(0, np.int64)


def _valid(s: pl.Series) -> np.ndarray:
    if s.null_count() == 0:
        return _NO_NULLS
    return s.is_not_null().to_numpy().view(np.uint8)


def _string_codes(s: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    return _coded(_string_keys(s))


def _string_keys(s: pl.Series) -> Keys:
    """`code_keys`' keys for a String column."""
    strings = _string_views(s)
    n = strings[0].shape[0] // 2
    k0, k1 = np.empty(n, np.uint64), np.empty(n, np.uint64)
    view_keys(*strings, k0, k1)
    return k0, k1, _valid(s), *strings


def _string_views(s: pl.Series) -> Strings:
    """A String column's Arrow views (flat uint64[2n]), data bytes and buffer offsets."""
    if s.n_chunks() > 1:
        s = s.rechunk()
    arr = s.to_arrow(compat_level=_NEWEST)  # string_view: zero copy
    bufs = arr.buffers()
    n = len(arr)
    # Each numpy call costs ~0.5-1 µs, a lot for a micro-batch: one call for the views.
    flat = np.frombuffer(bufs[1], dtype=np.uint64, count=2 * n, offset=16 * arr.offset)
    data_bufs = [np.frombuffer(b, dtype=np.uint8) for b in bufs[2:] if b is not None]
    if len(data_bufs) == 1:
        data, base = data_bufs[0], _BASE0
    elif data_bufs:
        data = np.concatenate(data_bufs)
        base = np.concatenate([[0], np.cumsum([b.shape[0] for b in data_bufs])[:-1]]).astype(np.int64)
        data.flags.writeable = base.flags.writeable = False
    else:
        data, base = _DATA0, _BASE0
    return flat, data, base


def _words(s: pl.Series) -> np.ndarray:
    """The 64-bit key of each row (nulls: any value; `_valid` tells them apart)."""
    dt = s.dtype
    if dt == pl.Float64 or dt == pl.Float32:
        x = s.cast(pl.Float64).fill_null(0.0).to_numpy()
        x = np.where(np.isnan(x), np.nan, x + 0.0)  # one NaN; -0.0 + 0.0 = 0.0
        return np.ascontiguousarray(x).view(np.uint64)
    if dt == pl.Boolean:
        return s.fill_null(False).cast(pl.UInt64).to_numpy()
    phys = s if dt.is_integer() else s.to_physical()  # to_physical is a Polars query (~70 µs)
    if not phys.dtype.is_integer():
        raise TypeError(f"no exact key codes for {dt}")
    if phys.null_count():  # each Polars call costs µs: a micro-batch of keys has few to spare
        phys = phys.fill_null(0)
    if phys.dtype != pl.Int64:
        phys = phys.cast(pl.Int64)
    return np.ascontiguousarray(phys.to_numpy()).view(np.uint64)


def column_codes(s: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """Exact codes of one key column (first appearance order) and each code's first row."""
    if s.dtype == pl.String:
        return _string_codes(s)
    if isinstance(s.dtype, (pl.Categorical, pl.Enum)):
        return column_codes(s.cast(pl.String))
    return code_words(_words(s), _valid(s))


def code_words(words: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return _coded((words, np.zeros_like(words), valid, _NO_WORDS, _NO_BYTES, _NO_BASE))


def _coded(keys: Keys) -> tuple[np.ndarray, np.ndarray]:
    n = keys[0].shape[0]
    codes = np.empty(n, np.int64)
    firsts = np.empty(max(n, 1), np.int64)
    ng = code_keys(keys, codes, firsts)
    return codes, firsts[:ng].copy()


def frame_codes(keys: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Exact group codes over several key columns (first appearance order), and each
    code's first row."""
    codes, firsts = column_codes(keys.to_series(0))
    for c in range(1, keys.width):
        other, other_firsts = column_codes(keys.to_series(c))
        combined = codes * np.int64(other_firsts.shape[0]) + other
        codes, firsts = code_words(combined.view(np.uint64), _NO_NULLS)
    return codes, firsts


class StableCodes:
    """Exact codes of group keys that hold across batches: a key keeps the code it got
    in the batch where it first appeared (codes follow first appearance over all batches).

    For executors that keep state per group and see micro-batches: one `code_keys_into`
    pass per key column against tables kept from earlier batches, no Polars join or
    hash per batch.  Columns must keep their kind across batches (a String key column
    may come as Categorical/Enum: coded through its strings)."""

    def __init__(self, n_columns: int) -> None:
        if n_columns < 1:
            raise ValueError("StableCodes needs at least one key column")
        # One table per column; with several columns, one more per combination step over
        # (codes so far, next column's code) pairs.
        self._columns = [_Table() for _ in range(n_columns)]
        self._pairs = [_Table() for _ in range(n_columns - 1)]

    def __len__(self) -> int:
        return int((self._pairs or self._columns)[-1].meta[0])

    def codes(self, columns: list[pl.Series]) -> tuple[np.ndarray, np.ndarray]:
        """Each row's code and the first row of each code new in this batch (in code order)."""
        codes, firsts = self._columns[0].column(columns[0])
        for c in range(1, len(columns)):
            other, _ = self._columns[c].column(columns[c])
            codes, firsts = self._pairs[c - 1].code(
                (codes.view(np.uint64), other.view(np.uint64), _NO_NULLS, _NO_WORDS, _NO_BYTES, _NO_BASE)
            )
        return codes, firsts


class _Table:
    """One `code_keys_into` table and what it carries between batches."""

    def __init__(self) -> None:
        self.table = np.zeros(4 * 64, np.uint64)
        self.arena = np.empty(0, np.uint8)
        self.meta = np.array([0, -1, 0], np.int64)
        # New codes' first rows: few per batch once the keys are known; grown by the kernel.
        self._firsts = np.empty(64, np.int64)

    def column(self, s: pl.Series) -> tuple[np.ndarray, np.ndarray]:
        dt = s.dtype
        if isinstance(dt, (pl.Categorical, pl.Enum)):
            s, dt = s.cast(pl.String), pl.String()
        if dt.__class__ is pl.String:  # not `==`: DataType.__eq__ costs ~2 µs
            codes = np.empty(s.len(), np.int64)
            before = int(self.meta[0])
            self.table, self.arena, firsts = code_strings_into(
                _string_views(s), _valid(s), codes, self._firsts, self.table, self.arena, self.meta
            )
            return codes, firsts[: int(self.meta[0]) - before].copy()
        return self.code((_words(s), _ZEROS[: s.len()] if s.len() <= _ZEROS.shape[0] else np.zeros(s.len(), np.uint64),
                          _valid(s), _NO_WORDS, _NO_BYTES, _NO_BASE))  # fmt: skip

    def code(self, keys: Keys) -> tuple[np.ndarray, np.ndarray]:
        codes = np.empty(keys[0].shape[0], np.int64)
        before = int(self.meta[0])
        self.table, self.arena, firsts = code_keys_into(keys, codes, self._firsts, self.table, self.arena, self.meta, False)
        return codes, firsts[: int(self.meta[0]) - before].copy()


#: Second key words of numeric columns (always zero): shared, read only by the kernel.
_ZEROS = np.zeros(1 << 16, np.uint64)
