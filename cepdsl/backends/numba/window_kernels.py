"""Tumbling and sliding windows (§5.2) by pane pre-aggregation in Numba kernels.

The same method as `cepdsl.backends.polars.pane_windows.PaneWindowExecutor` (panes of
P = gcd(D, S) µs; window `[kS, kS + D)` is the panes it covers), but the per-batch
reduction and the pane → window merge are linear passes over integer group codes
instead of Polars `group_by`s over String keys, and the output is ordered by integer
ranks instead of a String sort.  Runs when every aggregate is decomposable and every
aggregated field is numeric (or only counted); `percentile` and `distinct` keep values,
so those rules stay on the Polars path (see docs/windows.md).

Pieces:
* `KeyCodes`: group key → dense slot, stable across batches: exact codes from
  `key_codes.StableCodes` (one Numba pass per key column against tables kept from
  earlier batches; Categorical/Enum columns through their strings, so a key gets the
  same slot whatever the column's dtype in a batch).
* `reduce_cells`: rows → one partial per (pane, slot) ("cell"): rows, and per field
  count, sum, min, max and (mean, M2) — Welford per row, Chan's merge across cells.
* `absorb_cells`: a batch's cells merged in place into the state (one cell per
  (pane, slot), found through a hash table): the cost per batch follows the batch,
  not the state, which matters for micro-batches.
* `window_cells`: due windows from cells sorted by pane (sorted only when a window
  is due), two pointers over the panes each window covers; windows with no cell are
  skipped, never enumerated.

Kernels are specialised by dtype only; rule parameters (sizes, which statistics) are
arguments, so 1,000 window rules compile each kernel once (and `cache=True` keeps the
machine code on disk).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numba as nb
import numpy as np
import polars as pl
import pyarrow as pa

from cepdsl.executor import TIME, Executor, Progress, finalize
from cepdsl.functions import AGGREGATES
from cepdsl.kernels.key_codes import StableCodes, _mix
from cepdsl.kernels.panes import PaneGrid, first_window
from cepdsl.plan import RulePlan, TAgg
from cepdsl.types import Type

# --------------------------------------------------------------------------- group codes

#: Up to this many new keys in a batch are read one by one (~0.5 µs each); more are gathered.
_SCALARS_MAX = 256


class KeyCodes:
    """Group key → slot, stable across batches.  `table` holds the keys in slot order."""

    def __init__(self, schema: dict[str, pl.DataType]) -> None:
        self.keys = tuple(schema)
        self.schema = schema
        # Per key column: coded as strings; dtype class; parametric (class alone does not decide).
        self._kinds = [
            (dt == pl.String or dt == pl.Null, dt if isinstance(dt, type) else dt.__class__, dt.is_temporal())
            for dt in schema.values()
        ]
        self._index = StableCodes(len(self.keys)) if self.keys else None
        self.table = pl.DataFrame(schema=schema)

    @property
    def table(self) -> pl.DataFrame:
        if self._n > self._table.height:
            new = pl.DataFrame(self._pending, schema=self.schema, orient="col")
            self._table = pl.concat([self._table, new]) if self._table.height else new
            self._pending = [[] for _ in self.keys]
        return self._table

    @table.setter
    def table(self, table: pl.DataFrame) -> None:
        # New keys wait as Python values until the table is read (emission, snapshot):
        # a Polars gather + concat per batch costs ~0.1–0.5 ms, a few scalars ~1 µs.
        self._table = table
        self._pending: list[list[Any]] = [[] for _ in self.keys]
        self._n = table.height
        self._rank: np.ndarray | None = None  # `order()` until the table grows

    def __len__(self) -> int:
        return self._n if self.keys else 1

    def _columns(self, frame: pl.DataFrame) -> list[pl.Series]:
        # Dtype checks by class first: DataType.__eq__ costs ~2 µs, a lot for a micro-batch.
        cols = []
        for (k, dt), (strings, cls, exact) in zip(self.schema.items(), self._kinds, strict=True):
            s = frame.get_column(k)
            sd = s.dtype
            if strings:
                # Dictionary-encoded batches are coded through their strings (StableCodes).
                if sd.__class__ is not pl.String and not isinstance(sd, (pl.Categorical, pl.Enum)):
                    s = s.cast(pl.String)
            elif sd.__class__ is not cls or (exact and sd != dt):
                s = s.cast(dt)
            cols.append(s)
        return cols

    def codes(self, frame: pl.DataFrame) -> np.ndarray:
        """Each row's slot; unseen keys get new slots at the end of `table`."""
        if self._index is None:
            return np.zeros(frame.height, np.int64)
        if len(self._index) != self._n:  # restored from a snapshot: index the table's keys
            self._index = StableCodes(len(self.keys))
            self._index.codes(self._columns(self.table))
        cols = self._columns(frame)
        slots, firsts = self._index.codes(cols)
        if len(firsts):
            if len(firsts) <= _SCALARS_MAX:
                for pending, s in zip(self._pending, cols, strict=True):
                    pending.extend(s[int(i)] for i in firsts)
            else:
                new = frame.select(self.keys).cast(self.schema).select(pl.all().gather(pl.Series(firsts, dtype=pl.Int64)))
                table = self.table
                self._table = pl.concat([table, new]) if table.height else new
            self._n += len(firsts)
            self._rank = None
        return slots

    def order(self) -> np.ndarray:
        """Rank of each slot in group-key order, null keys first (the output order)."""
        if not self.keys or self.table.height == 0:
            return np.zeros(max(len(self), 1), np.int64)
        if self._rank is None:
            idx = (
                self.table.with_row_index("__slot")
                .sort(list(self.keys), nulls_last=False, maintain_order=True)
                .get_column("__slot")
                .to_numpy()
            )
            rank = np.empty(len(idx), np.int64)
            rank[idx] = np.arange(len(idx), dtype=np.int64)
            self._rank = rank
        return self._rank


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
        return Cells(z, z, z, *_empty_stats(nf, 0))

    def take(self, idx: np.ndarray) -> Cells:
        return Cells(*(a[idx] if a.ndim == 1 else a[:, idx] for a in self.arrays()))


@nb.njit(cache=True, nogil=True)
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


@nb.njit(cache=True, nogil=True)
def _empty_stats(nf: int, n: int):  # noqa: ANN202
    """Per field and cell, the statistics a cell carries, empty: count, float sum/min/max,
    int sum/min/max, Welford mean/M2 (cells and merged windows hold the same ones)."""
    return (
        np.zeros((nf, n), np.int64),
        np.zeros((nf, n)),
        np.full((nf, n), np.nan),
        np.full((nf, n), np.nan),
        np.zeros((nf, n), np.int64),
        np.zeros((nf, n), np.int64),
        np.zeros((nf, n), np.int64),
        np.zeros((nf, n)),
        np.zeros((nf, n)),
    )


@nb.njit(cache=True, nogil=True, inline="always")
def _reduce_field(values, ok, cell, cn, sm, lo, hi, mu, sq, moments):  # noqa: ANN001, ANN202
    """One field's rows into their cells (`cell[i]`), in row order: count, sum, min, max
    and Welford's mean/M2.  Compiled once for int64 and once for float64 values: for an
    int `lo[k] != lo[k]` is never true and the compiler drops it."""
    for i in range(ok.shape[0]):
        if not ok[i]:
            continue
        k = cell[i]
        cn[k] += 1
        m = cn[k]
        y = values[i]
        sm[k] += y
        # NaN is skipped by min/max unless every value is NaN (as Polars).
        if m == 1 or y < lo[k] or lo[k] != lo[k]:
            lo[k] = y
        if m == 1 or y > hi[k] or hi[k] != hi[k]:
            hi[k] = y
        if moments:
            x = np.float64(y)
            d = x - mu[k]
            mu[k] += d / m
            sq[k] += d * (x - mu[k])


@nb.njit(cache=True, nogil=True)
def reduce_cells(pane, slot, n_slots, fv, iv, valid, is_int, moments, n_cells):  # noqa: ANN001, ANN201
    """One partial per (run of equal pane, slot), rows in any order (unsorted input only
    makes more cells, which `absorb_cells` folds).  fv/iv: float64/int64 [f, n] values
    (an int field's values in iv, a float field's in fv); valid: bool [f, n].

    A pass for the cells, then one per field over 1-D rows: ~2x faster than all fields
    per row through 2-D indexing.  Each statistic still takes its cell's rows in row
    order, so the results are the same."""
    nf = valid.shape[0]
    n = pane.shape[0]
    c_pane = np.empty(n_cells, np.int64)
    c_slot = np.empty(n_cells, np.int64)
    c_n = np.zeros(n_cells, np.int64)
    cnt, fsum, fmin, fmax, isum, imin, imax, mean, m2 = _empty_stats(nf, n_cells)
    cell = np.empty(n if nf else 0, np.int64)
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
        if nf:
            cell[i] = k
    for f in range(nf):
        if is_int[f]:
            _reduce_field(iv[f], valid[f], cell, cnt[f], isum[f], imin[f], imax[f], mean[f], m2[f], moments)
        else:
            _reduce_field(fv[f], valid[f], cell, cnt[f], fsum[f], fmin[f], fmax[f], mean[f], m2[f], moments)
    return c_pane, c_slot, c_n, cnt, fsum, fmin, fmax, isum, imin, imax, mean, m2


@nb.njit(cache=True, nogil=True)
def _merge_pairs(dst, srcs, count, src_n, cnt, fsum, fmin, fmax, isum, imin, imax, mean, m2,
                 o_n, o_cnt, o_fsum, o_fmin, o_fmax, o_isum, o_imin, o_imax, o_mean, o_m2, is_int, moments):  # fmt: skip  # noqa: ANN001
    """Merge source cell srcs[q] into output cell dst[q], q = 0 .. count - 1 in order
    (Chan's formula for mean/M2).  A batch of pairs per call, not a call per pair: a call
    with these 24 arrays costs ~150 ns even inlined (their reference counts), the merge
    itself ~15 ns.  One pass per field over 1-D rows (as `reduce_cells`); each output
    cell still takes its sources in order."""
    for q in range(count):
        o_n[dst[q]] += src_n[srcs[q]]
    for f in range(cnt.shape[0]):
        b_, a_, mu_b, mu_a, sq_b, sq_a = cnt[f], o_cnt[f], mean[f], o_mean[f], m2[f], o_m2[f]
        sm_b, sm_a, lo_b, lo_a, hi_b, hi_a = isum[f], o_isum[f], imin[f], o_imin[f], imax[f], o_imax[f]
        fsm_b, fsm_a, flo_b, flo_a, fhi_b, fhi_a = fsum[f], o_fsum[f], fmin[f], o_fmin[f], fmax[f], o_fmax[f]
        for q in range(count):
            k = dst[q]
            j = srcs[q]
            b = b_[j]
            if b == 0:
                continue
            a = a_[k]
            a_[k] = a + b
            if is_int[f]:
                sm_a[k] += sm_b[j]
                if a == 0 or lo_b[j] < lo_a[k]:
                    lo_a[k] = lo_b[j]
                if a == 0 or hi_b[j] > hi_a[k]:
                    hi_a[k] = hi_b[j]
            else:
                fsm_a[k] += fsm_b[j]
                x, y = flo_b[j], flo_a[k]
                if a == 0 or x < y or (y != y and x == x):
                    flo_a[k] = x
                x, y = fhi_b[j], fhi_a[k]
                if a == 0 or x > y or (y != y and x == x):
                    fhi_a[k] = x
            if moments:
                if a == 0:
                    mu_a[k] = mu_b[j]
                    sq_a[k] = sq_b[j]
                else:
                    tot = a + b
                    d = mu_b[j] - mu_a[k]
                    mu_a[k] += d * b / tot
                    sq_a[k] += sq_b[j] + d * d * a * b / tot


@nb.njit(cache=True, inline="always")
def _cell_home(pane: np.int64, slot: np.int64, mask: np.int64) -> np.int64:
    return np.int64(_mix(np.uint64(pane) * np.uint64(0x9E3779B97F4A7C15) ^ np.uint64(slot)) & np.uint64(mask))


@nb.njit(cache=True, nogil=True)
def index_cells(pane: np.ndarray, slot: np.ndarray, m: int, cap: int) -> np.ndarray:
    """Open-addressing table (cell + 1, 0 = empty) of the first `m` cells by (pane, slot)."""
    tab = np.zeros(cap, np.int64)
    mask = cap - 1
    for k in range(m):
        q = _cell_home(pane[k], slot[k], mask)
        while tab[q] != 0:
            q = (q + 1) & mask
        tab[q] = k + 1
    return tab


@nb.njit(cache=True, nogil=True)
def absorb_cells(tab, m, s_pane, s_slot, s_n, s_cnt, s_fsum, s_fmin, s_fmax, s_isum, s_imin, s_imax, s_mean, s_m2,
                 pane, slot, n, cnt, fsum, fmin, fmax, isum, imin, imax, mean, m2, is_int, moments):  # fmt: skip  # noqa: ANN001, ANN201
    """Merge a batch's cells into the state's first `m` cells (one per (pane, slot), found
    through `tab`); a new (pane, slot) takes cell m, m + 1, ... (capacity and table room
    are the caller's).  Returns the new count.  A cell is merged into in batch order,
    starting from an empty cell, exactly as merging (state, batch) into fresh cells would."""
    nf = s_cnt.shape[0]
    mask = tab.shape[0] - 1
    c = pane.shape[0]
    dst = np.empty(c, np.int64)
    for j in range(c):
        q = _cell_home(pane[j], slot[j], mask)
        while True:
            e = tab[q]
            if e == 0:
                k = m
                m += 1
                tab[q] = k + 1
                s_pane[k] = pane[j]
                s_slot[k] = slot[j]
                s_n[k] = 0
                for f in range(nf):
                    s_cnt[f, k] = 0
                    s_fsum[f, k] = 0.0
                    s_fmin[f, k] = np.nan
                    s_fmax[f, k] = np.nan
                    s_isum[f, k] = 0
                    s_imin[f, k] = 0
                    s_imax[f, k] = 0
                    s_mean[f, k] = 0.0
                    s_m2[f, k] = 0.0
                break
            k = e - 1
            if s_pane[k] == pane[j] and s_slot[k] == slot[j]:
                break
            q = (q + 1) & mask
        dst[j] = k
    _merge_pairs(dst, np.arange(c), c, n, cnt, fsum, fmin, fmax, isum, imin, imax, mean, m2,
                 s_n, s_cnt, s_fsum, s_fmin, s_fmax, s_isum, s_imin, s_imax, s_mean, s_m2, is_int, moments)  # fmt: skip
    return m


@nb.njit(cache=True, nogil=True)
def add_rows(tab, m, s_pane, s_slot, s_n, s_cnt, s_fsum, s_fmin, s_fmax, s_isum, s_imin, s_imax, s_mean, s_m2,
             pane, slot, n_slots, fv, iv, valid, is_int, moments):  # fmt: skip  # noqa: ANN001, ANN201
    """`reduce_cells` then `absorb_cells` in one call: the batch's cells are never boxed
    as Python objects (~1 µs an array)."""
    c = reduce_cells(pane, slot, n_slots, fv, iv, valid, is_int, moments, _count_cells(pane, slot, n_slots))
    return absorb_cells(tab, m, s_pane, s_slot, s_n, s_cnt, s_fsum, s_fmin, s_fmax, s_isum, s_imin, s_imax, s_mean, s_m2,
                        c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10], c[11], is_int, moments)  # fmt: skip


#: The shared pane arithmetic (kernels/panes.py), compiled for `window_cells`.
_first_k = nb.njit(cache=True, nogil=True)(first_window)


@nb.njit(cache=True, nogil=True)
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
    o_cnt, o_fsum, o_fmin, o_fmax, o_isum, o_imin, o_imax, o_mean, o_m2 = _empty_stats(nf, out_n)
    slot_row = np.full(n_slots, -1, np.int64)
    per_pane = size // p
    lo = 0
    if c == 0:
        return rows, w_k, w_slot, o_n, o_cnt, o_fsum, o_fmin, o_fmax, o_isum, o_imin, o_imax, o_mean, o_m2
    # (row, cell) merges, in order, a buffer at a time (see _merge_pairs).
    buf = 4096 if out_n else 0
    dst = np.empty(buf, np.int64)
    srcs = np.empty(buf, np.int64)
    pending = 0
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
                dst[pending] = r
                srcs[pending] = hi
                pending += 1
                if pending == buf:
                    _merge_pairs(dst, srcs, pending, n, cnt, fsum, fmin, fmax, isum, imin, imax, mean, m2,
                                 o_n, o_cnt, o_fsum, o_fmin, o_fmax, o_isum, o_imin, o_imax, o_mean, o_m2, is_int, moments)  # fmt: skip
                    pending = 0
            hi += 1
        k += 1
    if pending:
        _merge_pairs(dst, srcs, pending, n, cnt, fsum, fmin, fmax, isum, imin, imax, mean, m2,
                     o_n, o_cnt, o_fsum, o_fmin, o_fmax, o_isum, o_imin, o_imax, o_mean, o_m2, is_int, moments)  # fmt: skip
    return rows, w_k, w_slot, o_n, o_cnt, o_fsum, o_fmin, o_fmax, o_isum, o_imin, o_imax, o_mean, o_m2


def _sorted_unique(cells: Cells) -> bool:
    """Cells sorted by pane (a batch's cells then hold each (pane, slot) once)."""
    return bool(np.all(np.diff(cells.pane) >= 0))


# --------------------------------------------------------------------------- executor

#: Into an empty state, a batch of at least this many cells in pane order is taken as is.
_ADOPT_MIN = 1 << 14


class FieldStats:
    """One field's statistics per window as the kernels leave them, in output order: the
    int or float columns as the field is, each gathered only when an aggregate reads it."""

    def __init__(
        self, order: np.ndarray, count: np.ndarray, sums: np.ndarray, mins: np.ndarray, maxs: np.ndarray, m2: np.ndarray | None
    ) -> None:
        self.order, self.count = order, count
        self._sum, self._min, self._max, self._m2 = sums, mins, maxs, m2

    @property
    def sum(self) -> np.ndarray:
        return self._sum[self.order]

    @property
    def min(self) -> np.ndarray:
        return self._min[self.order]

    @property
    def max(self) -> np.ndarray:
        return self._max[self.order]

    @property
    def m2(self) -> np.ndarray:
        assert self._m2 is not None, "an aggregate read m2 without asking for moments"
        return self._m2[self.order]


@dataclass(frozen=True)
class KernelAggregate:
    """An aggregate's pane-kernel part (registered as `AGGREGATES` part "numba"): its
    value from the kernels' statistics.  An aggregate without one runs on the Polars path."""

    #: stats → (values, null mask)
    final: Any
    #: whether it also takes timestamp fields (min/max); else int/float only
    timestamps: bool = False
    #: whether it reads `m2` (then the kernels keep (mean, M2) per cell)
    moments: bool = False


def _avg(s: FieldStats) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(invalid="ignore", divide="ignore"):
        return s.sum.astype(np.float64) / s.count, s.count == 0


def _std(s: FieldStats) -> tuple[np.ndarray, np.ndarray]:
    assert s.m2 is not None
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt(s.m2 / (s.count - 1)), s.count < 2


for _name, _part in {
    "count": KernelAggregate(lambda s: (s.count, np.zeros(len(s.count), np.bool_)), timestamps=True),
    "sum": KernelAggregate(lambda s: (s.sum, s.count == 0)),
    "avg": KernelAggregate(_avg),
    "min": KernelAggregate(lambda s: (s.min, s.count == 0), timestamps=True),
    "max": KernelAggregate(lambda s: (s.max, s.count == 0), timestamps=True),
    "std": KernelAggregate(_std, moments=True),
}.items():
    AGGREGATES.set_part("numba", _name, _part)


def kernel_fields(rule: RulePlan) -> list[str] | None:
    """The fields the kernels aggregate, or None when the rule needs the Polars path
    (an aggregate with no kernel part — percentile, distinct — or min/max/sum/avg/std
    of a non-numeric field)."""
    fields: list[str] = []
    for a in rule.aggregates:
        if not AGGREGATES.has_part("numba", a.func):
            return None
        if a.field is None:
            continue
        fp = rule.stream.field(a.field)
        if fp is None:
            return None
        part: KernelAggregate = AGGREGATES.part("numba", a.func)
        if a.func != "count" and fp.type not in (Type.INT, Type.FLOAT, Type.TIMESTAMP):
            return None
        if fp.type is Type.TIMESTAMP and not part.timestamps:
            return None
        if a.field not in fields:
            fields.append(a.field)
    return fields


class KernelPaneExecutor(Executor):
    """`tumbling D` / `sliding D every S` over Numba kernels (see module docstring)."""

    STATE_VERSION = 1

    def __init__(self, rule: RulePlan, size_us: int | None = None, every_us: int | None = None) -> None:
        super().__init__(rule)
        self.grid = PaneGrid.of(rule, size_us, every_us)
        fields = kernel_fields(rule)
        if fields is None:
            raise ValueError(f"rule {rule.id}: aggregates need the Polars path")
        self.size, self.every, self.pane = self.grid.size, self.grid.every, self.grid.pane
        self.fields = fields
        self.types = [rule.stream.field(f).type for f in fields]  # type: ignore[union-attr]
        self.is_int = np.array([t in (Type.INT, Type.TIMESTAMP) for t in self.types], dtype=np.bool_)
        self.moments = any(AGGREGATES.part("numba", a.func).moments for a in rule.aggregates)
        nf = len(fields)
        self._no_values = (np.zeros((nf, 0)), np.zeros((nf, 0), np.int64), np.ones((nf, 0), np.bool_))
        self._reads_fv, self._reads_iv = bool((~self.is_int).any()), bool(self.is_int.any())
        self.codes = KeyCodes({f.name: f.dtype for f in rule.group_by})
        self._set_cells(Cells.empty(len(fields)))
        self.emitted_us: int | None = None
        self._empty = rule.empty_output()  # building one costs ~2 ms: once per executor
        self._having: pl.Expr | None = None
        if rule.having is not None:
            from cepdsl.kernels.polars_expressions import compile_condition

            self._having = compile_condition(rule.having)
        # The aggregates `having` reads when it reads nothing else (no group key): then it
        # runs before the keys are joined on; else empty.
        reads = set(self._having.meta.root_names()) if self._having is not None else set()
        named = {a.name: a for a in rule.aggregates}
        self._having_on_aggregates = [named[r] for r in sorted(reads)] if reads and reads <= named.keys() else []
        #: Set by the alert lifecycle (cepdsl.engine.lifecycle): given the key table, each
        #: window's slot and whether `having` holds, which windows to emit anyway (those of
        #: groups with an episode under way, whose non-holding windows are evaluations too).
        self.keep_windows: Any = None

    # -- state cells ------------------------------------------------------------------
    # The state is one cell per (pane, slot) in the first `_m` entries of arrays with
    # room to grow, found through a hash table (`_tab`, None until needed): a batch's
    # cells merge in place, at a cost that follows the batch, not the state.  Cells are
    # in no order; emission sorts them by pane (only when a window is due).

    def _set_cells(self, cells: Cells) -> None:
        self._store, self._m, self._tab = cells, cells.size, None

    @property
    def cells(self) -> Cells:
        """The live cells (views, no order)."""
        m = self._m
        return Cells(*(a[:m] if a.ndim == 1 else a[:, :m] for a in self._store.arrays()))

    def _room(self, extra: int) -> None:
        need = self._m + extra
        store = self._store
        if need > store.size:
            cap = max(2 * store.size, need, 64)
            grown = []
            for a in store.arrays():
                b = np.empty((*a.shape[:-1], cap), a.dtype)
                b[..., : self._m] = a[..., : self._m]
                grown.append(b)
            self._store = Cells(*grown)
        if self._tab is None or 2 * need > self._tab.shape[0]:
            cap = 1 << max(6, (4 * need - 1).bit_length())  # load ≤ 1/4 after the batch
            self._tab = index_cells(self._store.pane, self._store.slot, self._m, cap)

    # -- rows → cells -----------------------------------------------------------------
    def _matrices(self, rows: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # Null-free columns (the common case) cost two cheap Polars calls a field: no
        # fill_null (a lazy query each), and values of null rows are never read.
        n, nf = rows.height, len(self.fields)
        if nf == 0:  # count() only
            return self._no_values
        # The kernel reads fv only for float (or only counted) fields, iv only for int ones.
        fv = np.zeros((nf, n)) if self._reads_fv else self._no_values[0]
        iv = np.zeros((nf, n), np.int64) if self._reads_iv else self._no_values[1]
        valid = np.ones((nf, n), np.bool_)
        for f, (name, t) in enumerate(zip(self.fields, self.types, strict=True)):
            s = rows.get_column(name)
            nulls = s.null_count()
            if nulls:
                valid[f] = s.is_not_null().to_numpy()
            if t is Type.TIMESTAMP:
                if getattr(s.dtype, "time_unit", None) != "us":
                    s = s.dt.epoch("us")
                s = s.to_physical()
                iv[f] = (s.fill_null(0) if nulls else s).to_numpy()
            elif t is Type.INT:
                iv[f] = (s.fill_null(0) if nulls else s).to_numpy()
            elif t is Type.FLOAT:
                fv[f] = s.to_numpy()  # nulls: NaN, skipped (`valid`)
            # other types: only counted (valid mask)
        return fv, iv, valid

    def process(self, rows: pl.DataFrame, progress: Progress) -> pl.DataFrame:
        if rows.height:
            slot = self.codes.codes(rows)
            t = rows.get_column(TIME).to_numpy()
            pane = t // self.pane
            fv, iv, valid = self._matrices(rows)
            n_slots = len(self.codes)
            n = rows.height
            # A batch has at most a cell per row: small ones skip the counting pass.
            bound = n if n < _ADOPT_MIN else _count_cells(pane, slot, n_slots)
            if self._m == 0 and bound >= _ADOPT_MIN and bool(np.all(pane[1:] >= pane[:-1])):
                # Cells of one batch are unique per (pane run, slot); rows in time order
                # make them sorted by pane and unique: the state as they are, with no hash
                # table (one big batch may never need one).  Small batches take the common
                # path, so a warm-up batch loads its kernels.
                self._set_cells(Cells(*reduce_cells(pane, slot, n_slots, fv, iv, valid, self.is_int, self.moments, bound)))
            else:
                self._room(bound)
                self._m = add_rows(self._tab, self._m, *self._store.arrays(), pane, slot, n_slots, fv, iv, valid,
                                   self.is_int, self.moments)  # fmt: skip
        return self._emit(progress.watermark_us)

    # -- emission ---------------------------------------------------------------------
    def advance(self, progress: Progress) -> pl.DataFrame:
        return self._emit(progress.watermark_us)

    def finish(self, progress: Progress) -> pl.DataFrame:
        if self._m == 0:
            return self._empty
        return self._emit(self.grid.finish_at(progress.watermark_us, int(self.cells.pane.max())))

    def late_mask(self, ts_us: np.ndarray, released_us: int) -> np.ndarray:
        return self.grid.late_mask(ts_us, self.emitted_us)

    def _emit(self, watermark: int) -> pl.DataFrame:
        if self.emitted_us is not None and watermark <= self.emitted_us:
            return self._empty
        lo, hi_k = self.grid.due(self.emitted_us, watermark)
        lo_k = -(1 << 62) if lo is None else lo  # the kernel takes an int
        self.emitted_us = watermark
        if self._m == 0 or hi_k < lo_k:
            return self._empty
        cells = self.cells
        in_order = _sorted_unique(cells)
        if in_order:
            cells = Cells(*(np.ascontiguousarray(a) for a in cells.arrays()))  # one kernel specialisation
        else:  # window_cells walks panes in order
            cells = cells.take(np.argsort(cells.pane, kind="stable"))
        n_slots = max(len(self.codes), 1)
        args = (*cells.arrays(), lo_k, hi_k, self.size, self.every, self.pane, n_slots, self.is_int, self.moments)
        rows = window_cells(*args, 0)[0]
        out = None
        if rows:
            w = window_cells(*args, rows)
            out = self._records(*w[1:])
        # Keep a cell while some window holding its pane is still to come.
        keep = self.grid.last_end(cells.pane * self.pane) > watermark
        if not in_order or not keep.all():
            self._keep(cells, np.flatnonzero(keep))
        return out if out is not None else self._empty

    def _keep(self, cells: Cells, idx: np.ndarray) -> None:
        """The state becomes cells[idx] (in pane order), in the arrays it has: the next
        batch needs no regrowth (only the hash table is rebuilt)."""
        for dst, src in zip(self._store.arrays(), cells.arrays(), strict=True):
            dst[..., : len(idx)] = src[..., idx]  # `src[..., idx]` is a copy: `src` may view `dst`
        self._m, self._tab = len(idx), None

    def _records(self, k, slot, n, cnt, fsum, fmin, fmax, isum, imin, imax, mean, m2) -> pl.DataFrame:  # noqa: ANN001
        rule = self.rule
        # Output order: (window_end, window_start, group key, nulls first) — by integer ranks.
        rank = self.codes.order()
        order = np.lexsort((rank[slot], k))
        having = self._having
        if having is not None and self._having_on_aggregates:
            # `having` first, over only the columns it reads; everything else (keys, other
            # aggregates, record casts) for the windows that pass: most emissions of a
            # selective rule end here.
            n_ord = n[order]
            cols = [self._aggregate(a, order, n_ord, cnt, fsum, fmin, fmax, isum, imin, imax, m2) for a in self._having_on_aggregates]
            ok = pl.DataFrame(cols).select(having.fill_null(False)).to_series().to_numpy()
            if self.keep_windows is not None:
                ok = self.keep_windows(self.codes.table, slot[order], ok)
            if not ok.any():
                return self._empty
            if not ok.all():
                order = order[ok]
            having = None
        k, slot, n = k[order], slot[order], n[order]
        cols = [self._aggregate(a, order, n, cnt, fsum, fmin, fmax, isum, imin, imax, m2) for a in rule.aggregates]
        start = k * self.every
        frame = pl.DataFrame([pl.Series("window_start", start), pl.Series("window_end", start + self.size), *cols])
        if rule.group_by:
            keys = self.codes.table.select(pl.all().gather(pl.Series(slot, dtype=pl.Int64)))
            frame = pl.concat([keys, frame], how="horizontal")
        if having is not None:
            frame = frame.filter(having)
            if frame.height == 0:
                return self._empty
        return finalize(rule, frame.with_columns(pl.col("window_end").alias("ts")))

    def _aggregate(self, a: TAgg, order, n, cnt, fsum, fmin, fmax, isum, imin, imax, m2) -> pl.Series:  # noqa: ANN001
        if a.field is None:
            return pl.Series(a.name, n, dtype=pl.Int64)
        f = self.fields.index(a.field)
        is_int = bool(self.is_int[f])
        stats = FieldStats(
            order,
            cnt[f][order],
            isum[f] if is_int else fsum[f],
            imin[f] if is_int else fmin[f],
            imax[f] if is_int else fmax[f],
            m2[f] if self.moments else None,
        )
        part: KernelAggregate = AGGREGATES.part("numba", a.func)
        vals, empty = part.final(stats)
        if a.type is Type.INT and not empty.any():
            return pl.Series(a.name, vals, dtype=pl.Int64)
        # Nulls through an Arrow validity mask: ~10 µs where a Polars when/then costs ~250.
        s = pl.Series(a.name, pa.array(vals, mask=empty)) if empty.any() else pl.Series(a.name, vals)
        if a.type is Type.TIMESTAMP:
            s = s.cast(pl.Datetime("us"))
        return s

    # -- state ------------------------------------------------------------------------
    def state(self) -> Any:
        cells = self.cells
        return {
            # Sorted by (pane, slot), one cell each: the same snapshot whatever order the
            # cells were merged in.
            "cells": cells.take(np.lexsort((cells.slot, cells.pane))).arrays(),
            "emitted_us": self.emitted_us,
            "keys": self.codes.table.to_dict(as_series=False),
        }

    def load_state(self, state: Any) -> None:
        # Copies: the state's arrays are merged into in place.
        self._set_cells(Cells(*(np.array(a, copy=True) for a in state["cells"])))
        self.emitted_us = state["emitted_us"]
        self.codes = KeyCodes(self.codes.schema)
        self.codes.table = pl.DataFrame(state["keys"], schema=self.codes.schema)
