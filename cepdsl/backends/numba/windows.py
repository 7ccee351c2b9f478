"""Tumbling and sliding windows (§5.2) by pane pre-aggregation in Numba kernels.

The same method as `cepdsl.backends.polars.windows.PaneWindowExecutor` (panes of
P = gcd(D, S) µs; window `[kS, kS + D)` is the panes it covers), but the per-batch
reduction and the pane → window merge are linear passes over integer group codes
instead of Polars `group_by`s over String keys, and the output is ordered by integer
ranks instead of a String sort.  Runs when every aggregate is decomposable and every
aggregated field is numeric (or only counted); `percentile` and `distinct` keep values,
so those rules stay on the Polars path (see docs/windows.md).

Pieces:
* `KeyCodes`: group key → dense slot, stable across batches: 64-bit hashes of the key
  columns (two seeds; the second is checked on every row, so a collision of the first
  is detected and falls back to an exact join) probed in a persistent open-addressing
  table.  Categorical/Enum key columns are hashed through their categories, so the
  same key gets the same slot whatever the column's dtype in a batch.
* `reduce_cells`: rows → one partial per (pane, slot) ("cell"): rows, and per field
  count, sum, min, max and (mean, M2) — Welford per row, Chan's merge across cells.
* `merge_cells`: cells sorted by (pane, slot) → one cell per (pane, slot) (state
  compaction after each batch).
* `window_cells`: due windows from cells sorted by pane, two pointers over the panes
  each window covers; windows with no cell are skipped, never enumerated.

Kernels are specialised by dtype only; rule parameters (sizes, which statistics) are
arguments, so 1,000 window rules compile each kernel once (and `cache=True` keeps the
machine code on disk).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numba as nb
import numpy as np
import polars as pl

from cepdsl.backends.base import TIME, Executor, Progress, finalize
from cepdsl.plan import RulePlan, TAgg
from cepdsl.types import Type

# --------------------------------------------------------------------------- group codes

_SEED1, _SEED2 = 0x5EED, 0xC0FFEE
_MIX = np.uint64(0x9E3779B97F4A7C15)


def _column_hash(s: pl.Series, seed: int) -> np.ndarray:
    """64-bit hash per row, equal for equal values whatever the string dtype."""
    dt = s.dtype
    if isinstance(dt, (pl.Categorical, pl.Enum)):
        # Hash the (few) category strings once and gather by physical code: the
        # same key hashes alike as String, Categorical or Enum.
        null_h = pl.Series([None], dtype=pl.String).hash(seed).to_numpy()[0]
        if isinstance(dt, pl.Enum):
            cats = pl.Series(dt.categories, dtype=pl.String)
            lut = cats.hash(seed).to_numpy()
            codes = pl.Series(np.arange(len(cats), dtype=np.uint32)).cast(s.to_physical().dtype)
        else:
            u = s.unique().drop_nulls()
            codes = u.to_physical()
            lut_vals = u.cast(pl.String).hash(seed).to_numpy()
            size = int(codes.max()) + 1 if len(codes) else 1  # type: ignore[arg-type]
            lut = np.full(size, null_h, dtype=np.uint64)
            lut[codes.to_numpy().astype(np.int64)] = lut_vals
        phys = s.to_physical()
        idx = phys.fill_null(0).to_numpy().astype(np.int64)
        out = lut[idx]
        if phys.null_count():
            out = np.where(phys.is_null().to_numpy(), null_h, out)
        return out.astype(np.uint64, copy=False)
    if dt == pl.Null:
        s = s.cast(pl.String)
    return s.hash(seed).to_numpy().astype(np.uint64, copy=False)


def _key_hash(frame: pl.DataFrame, keys: tuple[str, ...], seed: int) -> np.ndarray:
    h = None
    for k in keys:
        col = _column_hash(frame.get_column(k), seed)
        h = col if h is None else (h * _MIX) ^ col
    assert h is not None
    return np.ascontiguousarray(h)


@nb.njit(cache=True)
def _shift(cap: int) -> np.uint64:
    bits = 0
    while (1 << bits) < cap:
        bits += 1
    return np.uint64(64 - bits)


@nb.njit(cache=True)
def _home(x: np.uint64, shift: np.uint64) -> np.int64:
    # Fibonacci hashing: the top bits of x·φ spread even poorly mixed hashes evenly.
    return np.int64((x * np.uint64(0x9E3779B97F4A7C15)) >> shift)


@nb.njit(cache=True)
def _probe(h1: np.ndarray, h2: np.ndarray, tab_h1: np.ndarray, tab_h2: np.ndarray, tab_slot: np.ndarray, n_slots: int):
    """Slot per row; new keys get the next slots (their first rows returned).
    `ok` is False when two different keys share a first hash (then: exact fallback).
    The table is open addressing, load ≤ 1/2; it grows in place of the caller's arrays
    (returned)."""
    n = h1.shape[0]
    out = np.empty(n, np.int64)
    firsts = np.empty(16, np.int64)
    n_new = 0
    cap = tab_slot.shape[0]
    mask = cap - 1
    shift = _shift(cap)
    ok = True
    for i in range(n):
        x = h1[i]
        j = _home(x, shift)
        while True:
            s = tab_slot[j]
            if s < 0:
                s = n_slots + n_new
                tab_h1[j] = x
                tab_h2[j] = h2[i]
                tab_slot[j] = s
                if n_new == firsts.shape[0]:
                    grown = np.empty(n_new * 2, np.int64)
                    grown[:n_new] = firsts
                    firsts = grown
                firsts[n_new] = i
                n_new += 1
                out[i] = s
                if (n_slots + n_new) * 4 > cap:  # load ≤ 1/4: one probe almost always
                    ncap = cap * 4
                    nshift = _shift(ncap)
                    nh1 = np.zeros(ncap, np.uint64)
                    nh2 = np.zeros(ncap, np.uint64)
                    ns = np.full(ncap, -1, np.int64)
                    for q in range(cap):
                        if tab_slot[q] >= 0:
                            y = tab_h1[q]
                            jj = _home(y, nshift)
                            while ns[jj] >= 0:
                                jj = (jj + 1) & (ncap - 1)
                            nh1[jj] = y
                            nh2[jj] = tab_h2[q]
                            ns[jj] = tab_slot[q]
                    tab_h1, tab_h2, tab_slot, cap = nh1, nh2, ns, ncap
                    mask = cap - 1
                    shift = nshift
                break
            if tab_h1[j] == x:
                if tab_h2[j] != h2[i]:
                    ok = False
                out[i] = s
                break
            j = (j + 1) & mask
    return out, firsts[:n_new].copy(), tab_h1, tab_h2, tab_slot, ok


class KeyCodes:
    """Group key → slot, stable across batches.  `table` holds the keys in slot order."""

    def __init__(self, schema: dict[str, pl.DataType]) -> None:
        self.keys = tuple(schema)
        self.schema = schema
        self.table = pl.DataFrame(schema=schema)
        self._reset_index()

    def _reset_index(self) -> None:
        self._h1 = np.zeros(1024, np.uint64)
        self._h2 = np.zeros(1024, np.uint64)
        self._slot = np.full(1024, -1, np.int64)
        self._indexed = 0

    def __len__(self) -> int:
        return self.table.height if self.keys else 1

    def _index(self, frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, bool]:
        h1, h2 = _key_hash(frame, self.keys, _SEED1), _key_hash(frame, self.keys, _SEED2)
        slots, firsts, self._h1, self._h2, self._slot, ok = _probe(h1, h2, self._h1, self._h2, self._slot, self._indexed)
        self._indexed += len(firsts)
        return slots, firsts, ok

    def codes(self, frame: pl.DataFrame) -> np.ndarray:
        """Each row's slot; unseen keys get new slots at the end of `table`."""
        if not self.keys:
            return np.zeros(frame.height, np.int64)
        if self._indexed < self.table.height:  # restored from a snapshot: rebuild the hash index
            table = self.table
            self._reset_index()
            _, _, ok = self._index(table)
            if not ok:
                return self._exact(frame)
        slots, firsts, ok = self._index(frame)
        if not ok:
            return self._exact(frame)
        if len(firsts):
            new = frame.select(self.keys).cast(self.schema).select(pl.all().gather(pl.Series(firsts, dtype=pl.Int64)))
            self.table = pl.concat([self.table, new]) if self.table.height else new
        return slots

    def _exact(self, frame: pl.DataFrame) -> np.ndarray:
        # A 64-bit hash collision between two keys (astronomically rare): number keys by
        # an exact join; the hash index is not used again for this executor.
        keys = frame.select(self.keys).cast(self.schema)
        uniq = keys.unique(maintain_order=True)
        known = uniq.join(self.table.with_row_index("__slot"), on=list(self.keys), how="left", nulls_equal=True)
        new = known.filter(pl.col("__slot").is_null()).drop("__slot")
        if new.height:
            self.table = pl.concat([self.table, new]) if self.table.height else new
        mapped = keys.with_row_index("__r").join(
            self.table.with_row_index("__slot"), on=list(self.keys), how="left", nulls_equal=True
        ).sort("__r")
        self._indexed = 1 << 62  # never rebuild: stay exact
        self.codes = self._exact  # type: ignore[method-assign]
        return mapped.get_column("__slot").cast(pl.Int64).to_numpy()

    def order(self) -> np.ndarray:
        """Rank of each slot in group-key order, null keys first (the output order)."""
        if not self.keys or self.table.height == 0:
            return np.zeros(max(len(self), 1), np.int64)
        idx = (
            self.table.with_row_index("__slot")
            .sort(list(self.keys), nulls_last=False, maintain_order=True)
            .get_column("__slot")
            .to_numpy()
        )
        rank = np.empty(len(idx), np.int64)
        rank[idx] = np.arange(len(idx), dtype=np.int64)
        return rank


# --------------------------------------------------------------------------- cells


@dataclass
class Cells:
    """Partials per (pane, slot).  Field statistics are 2-D: one row per field."""

    pane: np.ndarray  # int64[c]
    slot: np.ndarray  # int64[c]
    n: np.ndarray  # int64[c] rows
    cnt: np.ndarray  # int64[f, c] non-null values
    fsum: np.ndarray  # float64[f, c]
    fmin: np.ndarray
    fmax: np.ndarray
    isum: np.ndarray  # int64[f, c] (int fields: exact sums, min, max)
    imin: np.ndarray
    imax: np.ndarray
    mean: np.ndarray  # float64[f, c] (for std)
    m2: np.ndarray

    @property
    def size(self) -> int:
        return int(self.pane.shape[0])

    def arrays(self) -> tuple[np.ndarray, ...]:
        return (self.pane, self.slot, self.n, self.cnt, self.fsum, self.fmin, self.fmax,
                self.isum, self.imin, self.imax, self.mean, self.m2)  # fmt: skip

    @staticmethod
    def empty(nf: int) -> Cells:
        z = np.zeros(0, np.int64)
        return Cells(z, z, z, *(np.zeros((nf, 0), np.int64),), *(np.zeros((nf, 0)) for _ in range(3)),
                     *(np.zeros((nf, 0), np.int64) for _ in range(3)), np.zeros((nf, 0)), np.zeros((nf, 0)))  # fmt: skip

    def take(self, idx: np.ndarray) -> Cells:
        return Cells(*(a[idx] if a.ndim == 1 else a[:, idx] for a in self.arrays()))

    @staticmethod
    def concat(a: Cells, b: Cells) -> Cells:
        return Cells(*(np.concatenate([x, y], axis=x.ndim - 1) for x, y in zip(a.arrays(), b.arrays(), strict=True)))


@nb.njit(cache=True)
def _count_cells(pane: np.ndarray, slot: np.ndarray, n_slots: int) -> int:
    mark = np.full(n_slots, -1, np.int64)
    cells = 0
    run = -1
    for i in range(pane.shape[0]):
        if i == 0 or pane[i] != pane[i - 1]:
            run += 1
        s = slot[i]
        if mark[s] != run:
            mark[s] = run
            cells += 1
    return cells


@nb.njit(cache=True)
def reduce_cells(pane, slot, n_slots, fv, iv, valid, is_int, moments, n_cells):  # noqa: ANN001, ANN201
    """One partial per (run of equal pane, slot), rows in any order (unsorted input only
    makes more cells, which `merge_cells` folds).  fv/iv: float64/int64 [f, n] values
    (an int field's values in iv, a float field's in fv); valid: bool [f, n]."""
    nf = valid.shape[0]
    n = pane.shape[0]
    c_pane = np.empty(n_cells, np.int64)
    c_slot = np.empty(n_cells, np.int64)
    c_n = np.zeros(n_cells, np.int64)
    cnt = np.zeros((nf, n_cells), np.int64)
    fsum = np.zeros((nf, n_cells))
    fmin = np.full((nf, n_cells), np.nan)
    fmax = np.full((nf, n_cells), np.nan)
    isum = np.zeros((nf, n_cells), np.int64)
    imin = np.zeros((nf, n_cells), np.int64)
    imax = np.zeros((nf, n_cells), np.int64)
    mean = np.zeros((nf, n_cells))
    m2 = np.zeros((nf, n_cells))
    cell_of = np.full(n_slots, -1, np.int64)
    mark = np.full(n_slots, -1, np.int64)
    run = -1
    c = 0
    for i in range(n):
        if i == 0 or pane[i] != pane[i - 1]:
            run += 1
        s = slot[i]
        if mark[s] != run:
            mark[s] = run
            cell_of[s] = c
            c_pane[c] = pane[i]
            c_slot[c] = s
            c += 1
        k = cell_of[s]
        c_n[k] += 1
        for f in range(nf):
            if not valid[f, i]:
                continue
            cnt[f, k] += 1
            m = cnt[f, k]
            if is_int[f]:
                y = iv[f, i]
                isum[f, k] += y
                if m == 1 or y < imin[f, k]:
                    imin[f, k] = y
                if m == 1 or y > imax[f, k]:
                    imax[f, k] = y
                x = np.float64(y)
            else:
                x = fv[f, i]
                fsum[f, k] += x
                # NaN is skipped by min/max unless every value is NaN (as Polars).
                if m == 1 or x < fmin[f, k] or fmin[f, k] != fmin[f, k]:
                    fmin[f, k] = x
                if m == 1 or x > fmax[f, k] or fmax[f, k] != fmax[f, k]:
                    fmax[f, k] = x
            if moments:
                d = x - mean[f, k]
                mean[f, k] += d / m
                m2[f, k] += d * (x - mean[f, k])
    return c_pane, c_slot, c_n, cnt, fsum, fmin, fmax, isum, imin, imax, mean, m2


@nb.njit(cache=True, inline="always")  # called per (cell, window): a real call costs ~200 ns
def _merge_into(k, j, src_n, cnt, fsum, fmin, fmax, isum, imin, imax, mean, m2,
                o_n, o_cnt, o_fsum, o_fmin, o_fmax, o_isum, o_imin, o_imax, o_mean, o_m2, is_int, moments):  # fmt: skip  # noqa: ANN001
    """Merge source cell j into output cell k (Chan's formula for mean/M2)."""
    o_n[k] += src_n[j]
    for f in range(cnt.shape[0]):
        b = cnt[f, j]
        if b == 0:
            continue
        a = o_cnt[f, k]
        o_cnt[f, k] = a + b
        if is_int[f]:
            o_isum[f, k] += isum[f, j]
            if a == 0 or imin[f, j] < o_imin[f, k]:
                o_imin[f, k] = imin[f, j]
            if a == 0 or imax[f, j] > o_imax[f, k]:
                o_imax[f, k] = imax[f, j]
        else:
            o_fsum[f, k] += fsum[f, j]
            x, y = fmin[f, j], o_fmin[f, k]
            if a == 0 or x < y or (y != y and x == x):
                o_fmin[f, k] = x
            x, y = fmax[f, j], o_fmax[f, k]
            if a == 0 or x > y or (y != y and x == x):
                o_fmax[f, k] = x
        if moments:
            if a == 0:
                o_mean[f, k] = mean[f, j]
                o_m2[f, k] = m2[f, j]
            else:
                tot = a + b
                d = mean[f, j] - o_mean[f, k]
                o_mean[f, k] += d * b / tot
                o_m2[f, k] += m2[f, j] + d * d * a * b / tot


@nb.njit(cache=True)
def merge_cells(order, pane, slot, n, cnt, fsum, fmin, fmax, isum, imin, imax, mean, m2, is_int, moments):  # noqa: ANN001, ANN201
    """Cells visited in `order` (sorted by (pane, slot)) → one cell per (pane, slot)."""
    nf = cnt.shape[0]
    m = 0
    for q in range(order.shape[0]):
        i = order[q]
        if q == 0 or pane[i] != pane[order[q - 1]] or slot[i] != slot[order[q - 1]]:
            m += 1
    o_pane = np.empty(m, np.int64)
    o_slot = np.empty(m, np.int64)
    o_n = np.zeros(m, np.int64)
    o_cnt = np.zeros((nf, m), np.int64)
    o_fsum = np.zeros((nf, m))
    o_fmin = np.full((nf, m), np.nan)
    o_fmax = np.full((nf, m), np.nan)
    o_isum = np.zeros((nf, m), np.int64)
    o_imin = np.zeros((nf, m), np.int64)
    o_imax = np.zeros((nf, m), np.int64)
    o_mean = np.zeros((nf, m))
    o_m2 = np.zeros((nf, m))
    k = -1
    for q in range(order.shape[0]):
        i = order[q]
        if q == 0 or pane[i] != pane[order[q - 1]] or slot[i] != slot[order[q - 1]]:
            k += 1
            o_pane[k] = pane[i]
            o_slot[k] = slot[i]
        _merge_into(k, i, n, cnt, fsum, fmin, fmax, isum, imin, imax, mean, m2,
                    o_n, o_cnt, o_fsum, o_fmin, o_fmax, o_isum, o_imin, o_imax, o_mean, o_m2, is_int, moments)  # fmt: skip
    return o_pane, o_slot, o_n, o_cnt, o_fsum, o_fmin, o_fmax, o_isum, o_imin, o_imax, o_mean, o_m2


@nb.njit(cache=True)
def _first_k(pane_start: np.int64, size: np.int64, every: np.int64, p: np.int64) -> np.int64:
    # smallest k with kS + D ≥ pane_start + P (the window covers the whole pane)
    return -((size - p - pane_start) // every)


@nb.njit(cache=True)
def window_cells(pane, slot, n, cnt, fsum, fmin, fmax, isum, imin, imax, mean, m2,
                 k_lo, k_hi, size, every, p, n_slots, is_int, moments, out_n):  # fmt: skip  # noqa: ANN001, ANN201
    """Windows k in [k_lo, k_hi] from cells sorted by pane: one merged cell per
    (window, slot) holding rows.  Called twice: with `out_n` = 0 it only counts the
    output rows; then with that count it fills them."""
    nf = cnt.shape[0]
    c = pane.shape[0]
    rows = 0
    w_k = np.empty(out_n, np.int64)
    w_slot = np.empty(out_n, np.int64)
    o_n = np.zeros(out_n, np.int64)
    o_cnt = np.zeros((nf, out_n), np.int64)
    o_fsum = np.zeros((nf, out_n))
    o_fmin = np.full((nf, out_n), np.nan)
    o_fmax = np.full((nf, out_n), np.nan)
    o_isum = np.zeros((nf, out_n), np.int64)
    o_imin = np.zeros((nf, out_n), np.int64)
    o_imax = np.zeros((nf, out_n), np.int64)
    o_mean = np.zeros((nf, out_n))
    o_m2 = np.zeros((nf, out_n))
    slot_row = np.full(n_slots, -1, np.int64)
    per_pane = size // p
    lo = 0
    if c == 0:
        return rows, w_k, w_slot, o_n, o_cnt, o_fsum, o_fmin, o_fmax, o_isum, o_imin, o_imax, o_mean, o_m2
    k = max(k_lo, _first_k(pane[0] * p, size, every, p))
    while k <= k_hi:
        first_pane = (k * every) // p
        while lo < c and pane[lo] < first_pane:
            lo += 1
        if lo == c:
            break
        if pane[lo] >= first_pane + per_pane:  # no cell in this window: jump to the next that has one
            k = max(k + 1, _first_k(pane[lo] * p, size, every, p))
            continue
        start_row = rows
        hi = lo
        while hi < c and pane[hi] < first_pane + per_pane:
            s = slot[hi]
            r = slot_row[s]
            if r < start_row:
                r = rows
                slot_row[s] = r
                rows += 1
                if out_n:
                    w_k[r] = k
                    w_slot[r] = s
            if out_n:
                _merge_into(r, hi, n, cnt, fsum, fmin, fmax, isum, imin, imax, mean, m2,
                            o_n, o_cnt, o_fsum, o_fmin, o_fmax, o_isum, o_imin, o_imax, o_mean, o_m2, is_int, moments)  # fmt: skip
            hi += 1
        k += 1
    return rows, w_k, w_slot, o_n, o_cnt, o_fsum, o_fmin, o_fmax, o_isum, o_imin, o_imax, o_mean, o_m2


def _sorted_unique(cells: Cells) -> bool:
    """Cells sorted by pane with each (pane, slot) once: what one sorted batch gives."""
    return bool(np.all(np.diff(cells.pane) >= 0))


# --------------------------------------------------------------------------- executor

_KERNEL_FUNCS = frozenset({"count", "sum", "avg", "min", "max", "std"})


def kernel_fields(rule: RulePlan) -> list[str] | None:
    """The fields the kernels aggregate, or None when the rule needs the Polars path
    (percentile/distinct, or min/max/sum/avg/std of a non-numeric field)."""
    fields: list[str] = []
    for a in rule.aggregates:
        if a.func not in _KERNEL_FUNCS:
            return None
        if a.field is None:
            continue
        fp = rule.stream.field(a.field)
        if fp is None:
            return None
        if a.func != "count" and fp.type not in (Type.INT, Type.FLOAT, Type.TIMESTAMP):
            return None
        if a.func in ("sum", "avg", "std") and fp.type is Type.TIMESTAMP:
            return None
        if a.field not in fields:
            fields.append(a.field)
    return fields


class KernelPaneExecutor(Executor):
    """`tumbling D` / `sliding D every S` over Numba kernels (see module docstring)."""

    STATE_VERSION = 1

    def __init__(self, rule: RulePlan, size_us: int, every_us: int) -> None:
        super().__init__(rule)
        if size_us <= 0 or every_us <= 0 or every_us > size_us:
            raise ValueError(f"rule {rule.id}: bad window size {size_us} / every {every_us}")
        fields = kernel_fields(rule)
        if fields is None:
            raise ValueError(f"rule {rule.id}: aggregates need the Polars path")
        self.size, self.every = size_us, every_us
        self.pane = math.gcd(size_us, every_us)
        self.fields = fields
        self.types = [rule.stream.field(f).type for f in fields]  # type: ignore[union-attr]
        self.is_int = np.array([t in (Type.INT, Type.TIMESTAMP) for t in self.types], dtype=np.bool_)
        self.moments = any(a.func == "std" for a in rule.aggregates)
        self.codes = KeyCodes({f.name: f.dtype for f in rule.group_by})
        self.cells = Cells.empty(len(fields))
        self.emitted_us: int | None = None
        self._empty = rule.empty_output()  # building one costs ~2 ms: once per executor

    # -- rows → cells -----------------------------------------------------------------
    def _matrices(self, rows: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n, nf = rows.height, len(self.fields)
        fv = np.zeros((nf, n))
        iv = np.zeros((nf, n), np.int64)
        valid = np.ones((nf, n), np.bool_)
        for f, (name, t) in enumerate(zip(self.fields, self.types, strict=True)):
            s = rows.get_column(name)
            if s.null_count():
                valid[f] = s.is_not_null().to_numpy()
            if t is Type.TIMESTAMP:
                iv[f] = s.dt.epoch("us").fill_null(0).to_numpy()
            elif t is Type.INT:
                iv[f] = s.fill_null(0).to_numpy()
            elif t is Type.FLOAT:
                fv[f] = s.fill_null(0.0).to_numpy()
            # other types: only counted (valid mask)
        return fv, iv, valid

    def process(self, rows: pl.DataFrame, progress: Progress) -> pl.DataFrame:
        if rows.height:
            slot = self.codes.codes(rows)
            t = rows.get_column(TIME).to_numpy()
            pane = t // self.pane
            fv, iv, valid = self._matrices(rows)
            n_slots = len(self.codes)
            n_cells = _count_cells(pane, slot, n_slots)
            new = Cells(*reduce_cells(pane, slot, n_slots, fv, iv, valid, self.is_int, self.moments, n_cells))
            self._add(new)
        return self._emit(progress.watermark_us)

    def _add(self, new: Cells) -> None:
        # Cells of one batch are unique per (pane run, slot); sorted input makes them
        # sorted by pane and unique, so compaction is only needed across batches (or for
        # unsorted rows).
        if self.cells.size == 0 and _sorted_unique(new):
            self.cells = new
            return
        self.cells = self._compact(new if self.cells.size == 0 else Cells.concat(self.cells, new))

    def _compact(self, cells: Cells) -> Cells:
        order = np.lexsort((cells.slot, cells.pane))
        return Cells(*merge_cells(order, *cells.arrays(), self.is_int, self.moments))

    # -- emission ---------------------------------------------------------------------
    def advance(self, progress: Progress) -> pl.DataFrame:
        return self._emit(progress.watermark_us)

    def finish(self, progress: Progress) -> pl.DataFrame:
        if self.cells.size == 0:
            return self._empty
        last_pane = int(self.cells.pane.max()) * self.pane
        return self._emit(max(progress.watermark_us, (last_pane // self.every) * self.every + self.size))

    def late_mask(self, ts_us: np.ndarray, released_us: int) -> np.ndarray:
        # Late only when every window holding the row has been emitted (Flink's rule).
        if self.emitted_us is None:
            return np.zeros(len(ts_us), dtype=bool)
        return (ts_us // self.every) * self.every + self.size <= self.emitted_us

    def _emit(self, watermark: int) -> pl.DataFrame:
        if self.emitted_us is not None and watermark <= self.emitted_us:
            return self._empty
        lo_k = -(1 << 62) if self.emitted_us is None else (self.emitted_us - self.size) // self.every + 1
        hi_k = (watermark - self.size) // self.every  # last window with end ≤ watermark
        self.emitted_us = watermark
        cells = self.cells
        if cells.size == 0 or hi_k < lo_k:
            return self._empty
        n_slots = max(len(self.codes), 1)
        args = (*cells.arrays(), lo_k, hi_k, self.size, self.every, self.pane, n_slots, self.is_int, self.moments)
        rows = window_cells(*args, 0)[0]
        out = None
        if rows:
            w = window_cells(*args, rows)
            out = self._records(*w[1:])
        # Keep a cell while some window holding its pane is still to come.
        keep = ((cells.pane * self.pane) // self.every) * self.every + self.size > watermark
        if not keep.all():
            self.cells = cells.take(np.flatnonzero(keep))
        return out if out is not None else self._empty

    def _records(self, k, slot, n, cnt, fsum, fmin, fmax, isum, imin, imax, mean, m2) -> pl.DataFrame:  # noqa: ANN001
        rule = self.rule
        # Output order: (window_end, window_start, group key, nulls first) — by integer ranks.
        rank = self.codes.order()
        order = np.lexsort((rank[slot], k))
        k, slot, n = k[order], slot[order], n[order]
        cols: dict[str, Any] = {}
        for a in rule.aggregates:
            cols[a.name] = self._aggregate(a, order, n, cnt, fsum, fmin, fmax, isum, imin, imax, m2)
        start = k * self.every
        frame = pl.DataFrame(
            [pl.Series("window_start", start), pl.Series("window_end", start + self.size), *cols.values()]
        )
        if rule.group_by:
            keys = self.codes.table.select(pl.all().gather(pl.Series(slot, dtype=pl.Int64)))
            frame = pl.concat([keys, frame], how="horizontal")
        if rule.having is not None:
            from cepdsl.backends.polars.expressions import compile_expr

            frame = frame.filter(compile_expr(rule.having))
            if frame.height == 0:
                return self._empty
        return finalize(rule, frame.with_columns(pl.col("window_end").alias("ts")))

    def _aggregate(self, a: TAgg, order, n, cnt, fsum, fmin, fmax, isum, imin, imax, m2) -> pl.Series:  # noqa: ANN001
        if a.field is None:
            return pl.Series(a.name, n, dtype=pl.Int64)
        f = self.fields.index(a.field)
        c = cnt[f][order]
        empty = c == 0
        t = self.types[f]
        is_int = bool(self.is_int[f])
        if a.func == "count":
            return pl.Series(a.name, c, dtype=pl.Int64)
        if a.func == "sum":
            vals = isum[f][order] if is_int else fsum[f][order]
        elif a.func == "avg":
            s = isum[f][order].astype(np.float64) if is_int else fsum[f][order]
            with np.errstate(invalid="ignore", divide="ignore"):
                vals = s / c
        elif a.func == "min":
            vals = imin[f][order] if is_int else fmin[f][order]
        elif a.func == "max":
            vals = imax[f][order] if is_int else fmax[f][order]
        elif a.func == "std":
            with np.errstate(invalid="ignore", divide="ignore"):
                vals = np.sqrt(m2[f][order] / (c - 1))
            empty = c < 2
        else:  # pragma: no cover - kernel_fields refuses the rest
            raise ValueError(a.func)
        s = pl.Series(a.name, vals)
        if empty.any():
            s = pl.select(pl.when(pl.Series(empty)).then(None).otherwise(s).alias(a.name)).to_series()
        if t is Type.TIMESTAMP and a.func in ("min", "max"):
            s = s.cast(pl.Datetime("us"))
        return s

    # -- state ------------------------------------------------------------------------
    def state(self) -> Any:
        return {
            "cells": self.cells.arrays(),
            "emitted_us": self.emitted_us,
            "keys": self.codes.table.to_dict(as_series=False),
        }

    def load_state(self, state: Any) -> None:
        self.cells = Cells(*state["cells"])
        self.emitted_us = state["emitted_us"]
        self.codes = KeyCodes(self.codes.schema)
        self.codes.table = pl.DataFrame(state["keys"], schema=self.codes.schema)
