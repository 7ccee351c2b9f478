"""Per-group baselines for anomaly rules, one Numba pass over rows in time order.

State layout: one float64 row per group slot in a single flat array (`st`,
`width` values per slot): a header of `HEADER` values (counters stored as floats,
exact below 2**53), then the ring buffer of the last N values, and for iqr the
same values kept sorted.  Rows of a batch hit random slots; with every field of a
slot on one cache line (header) next to its ring, a row costs one or two cache
misses instead of one per field array, and the slot of row i + `AHEAD` is
prefetched while row i is worked on.

Each kernel takes the rows' slots and values (NaN = null: skipped), the state
(updated in place) and `need`, the values a baseline holds before its rows are
scored (the rule's warmup, at least 1), and returns the anomalies as (row index,
baseline_n) and (score, stat 1, stat 2).

zscore keeps shifted sums S1 = Σ(v − K), S2 = Σ(v − K)² over the ring, with the
shift K an actual baseline value: for values near 1e9 with small noise, the sums
stay small and var = S2/n − (S1/n)² loses nothing to cancellation.  Every N
appends the sums are recomputed from the ring with K = the newest value, so
rounding from add/remove never accumulates and K follows a drifting series.  A
run counter of equal trailing values makes a constant baseline exact (mean = the
value, std = 0), which the spec's std = 0 rule depends on.

iqr removes the oldest value and inserts the new one in the sorted copy with one
shift of the values between the two positions (binary search for both), so a
row costs O(distance) moves, not O(N) twice.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from cepdsl.kernels.borrow import borrow
from cepdsl.kernels.prefetch import AHEAD, prefetch

#: Header values per slot (one 64-byte cache line).
HEADER = 8
# Header of a slot with a ring (zscore, iqr): values in the ring, position of the oldest.
_COUNT, _HEAD = range(2)
# zscore's further header values
_Z_SHIFT, _Z_S1, _Z_S2, _Z_SINCE, _Z_EQ = range(2, 7)
# ema: count, mean, var (no ring)
EMA_WIDTH = 4


def width_of(method: str, n_max: int) -> int:
    """Values per slot of `method`'s state row."""
    if method == "ema":
        return EMA_WIDTH
    if method == "iqr":
        return HEADER + 2 * n_max
    return HEADER + n_max


@nb.njit(cache=True, nogil=True)
def _put(out_i, out_f, m, i, score, n, s1, s2):  # type: ignore[no-untyped-def]
    """Anomaly m: row i, baseline size n, score and two statistics; returns m + 1."""
    out_i[m, 0] = i
    out_i[m, 1] = n
    out_f[m, 0] = score
    out_f[m, 1] = s1
    out_f[m, 2] = s2
    return m + 1


# Inlined: once per row in zscore and iqr; as a plain call zscore ran ~15 % slower (A/B, 5M rows),
# and the three kernels compile in the same time either way.
@nb.njit(cache=True, nogil=True, inline="always")
def _ring_add(st, b: int, n: int, head: int, n_max: int, v: float) -> float:  # type: ignore[no-untyped-def]
    """Put v in the ring of slot b (its count n and oldest position head, as read from the
    header): a full ring (n == n_max) replaces its oldest value, which is returned, and
    moves the head on; else v goes after the newest and the count grows (NaN returned)."""
    r = b + HEADER
    if n == n_max:
        old = st[r + head]
        st[r + head] = v
        head += 1
        st[b + _HEAD] = 0 if head == n_max else head
        return old
    pos = head + n
    if pos >= n_max:
        pos -= n_max
    st[r + pos] = v
    st[b + _COUNT] = n + 1
    return np.nan


def ring_values(row: np.ndarray, n_max: int) -> list[float]:
    """The values in the ring of a zscore or iqr slot's state row, oldest first."""
    n, head = int(row[_COUNT]), int(row[_HEAD])
    return [float(row[HEADER + (head + j) % n_max]) for j in range(n)]


def ema_stats(row: np.ndarray) -> tuple[int, float, float]:
    """(values seen, mean, std) of an ema slot's state row."""
    return int(row[0]), float(row[1]), float(np.sqrt(max(row[2], 0.0)))


def run_scan(kernel, slots, x, st, *params):  # type: ignore[no-untyped-def]
    """`kernel` (zscore_scan, iqr_scan, ema_scan) over every row: (rows of the anomalies
    and their baseline sizes, their score and two statistics).

    The output arrays are the kernel's arguments, grown here when the kernel stops on a
    full one: a kernel that grew them itself reassigned them inside its row loop, and
    Numba then counted their references on every row (perf: 3/4 of zscore's time)."""
    rows = slots.shape[0]
    cap = max(16, rows // 64)
    out_i = np.empty((cap, 2), np.int64)
    out_f = np.empty((cap, 3), np.float64)
    m, i = 0, 0
    while True:
        m, i = kernel(slots, x, st, *params, out_i, out_f, m, i)
        if i == rows:
            return out_i[:m], out_f[:m]
        out_i = np.concatenate([out_i, np.empty_like(out_i)])
        out_f = np.concatenate([out_f, np.empty_like(out_f)])


@nb.njit(cache=True, nogil=True)
def _deviation(x: float, centre: float, spread: float) -> float:
    if spread == 0.0:
        return 0.0 if x == centre else np.inf
    return abs(x - centre) / spread


#: Below this the variance of the shifted sums is underflow, not spread (values closer
#: than ~1e-140 to each other): recomputed on scaled values.
_TINY_VAR = 1e-280
_SCALE = 2.0**600


@nb.njit(cache=True, nogil=True)
def _ring_moments(st, r: int, n: int, scale: float):  # type: ignore[no-untyped-def]
    """Mean and population variance of st[r:r+n] times `scale`, each term divided before
    it is added (no intermediate overflow: the variance is inf only beyond the float range)."""
    mean = 0.0
    for j in range(n):
        mean += st[r + j] * scale / n
    root = math.sqrt(n)
    var = 0.0
    for j in range(n):
        e = (st[r + j] * scale - mean) / root
        var += e * e
    return mean, var


@nb.njit(cache=True, nogil=True)
def zscore_scan(slots, x, st, width, n_max, need, threshold, out_i, out_f, m, i0):  # type: ignore[no-untyped-def]
    st = borrow(st)  # passed to the per-row ring update (borrow.py)
    rows = slots.shape[0]
    for i in range(i0, rows):
        if m == out_i.shape[0]:
            return m, i  # full: `run_scan` grows the output and calls again from row i
        if i + 2 * AHEAD < rows:
            prefetch(st, slots[i + 2 * AHEAD] * width)
        if i + AHEAD < rows:  # its header is near by now: the ring around its head
            pb = slots[i + AHEAD] * width
            ph = pb + HEADER + np.int64(st[pb + _HEAD])
            prefetch(st, ph)
            prefetch(st, ph - 1)
        v = x[i]
        if math.isnan(v):
            continue
        b = slots[i] * width
        r = b + HEADER  # ring
        n = np.int64(st[b + _COUNT])
        head = np.int64(st[b + _HEAD])
        last = head + n - 1
        if last >= n_max:
            last -= n_max
        if n >= need:
            if st[b + _Z_EQ] >= n:  # constant baseline: exact
                mean = st[r + last]
                std = 0.0
                score = _deviation(v, mean, std)
            else:
                d1 = st[b + _Z_S1] / n
                mean = st[b + _Z_SHIFT] + d1
                var = st[b + _Z_S2] / n - d1 * d1
                if not math.isfinite(var):
                    # The sums overflowed (values ~1e154 apart and more): inf − inf is NaN,
                    # which read as "no spread" would flag every value.  Two passes over the
                    # ring instead, each term divided first: only a variance beyond the
                    # float range is inf.
                    mean, var = _ring_moments(st, r, n, 1.0)
                    std = math.sqrt(var) if var > 0.0 else 0.0
                    score = _deviation(v, mean, std)
                elif var < _TINY_VAR:
                    # Squares of subnormal-scale differences underflow to 0 (and the std
                    # with them, which would score every value inf): the same two passes on
                    # the values scaled by 2**600 (exact), scored in that scale.
                    mean_s, var_s = _ring_moments(st, r, n, _SCALE)
                    std_s = math.sqrt(var_s) if var_s > 0.0 else 0.0
                    score = _deviation(v * _SCALE, mean_s, std_s)
                    mean = mean_s / _SCALE
                    std = std_s / _SCALE
                else:
                    std = math.sqrt(var)
                    score = _deviation(v, mean, std)
            if score > threshold:
                m = _put(out_i, out_f, m, i, score, n, mean, std)
        # append v, the oldest out first
        if n == 0:
            st[b + _Z_SHIFT] = v
            st[b + _Z_EQ] = 1.0
        elif v == st[r + last]:
            st[b + _Z_EQ] += 1.0
        else:
            st[b + _Z_EQ] = 1.0
        k = st[b + _Z_SHIFT]
        s1 = st[b + _Z_S1]
        s2 = st[b + _Z_S2]
        old = _ring_add(st, b, n, head, n_max, v) - k
        if n == n_max:
            s1 -= old
            s2 -= old * old
        else:
            n += 1
        d = v - k
        s1 += d
        s2 += d * d
        since = st[b + _Z_SINCE] + 1.0
        if since >= n_max or not (math.isfinite(s1) and math.isfinite(s2)):
            # (Overflowed sums are recomputed at once: subtracting an inf out leaves NaN.)
            # Recompute the sums from the ring around the newest value.
            s1 = 0.0
            s2 = 0.0
            for j in range(n):
                d = st[r + j] - v
                s1 += d
                s2 += d * d
            st[b + _Z_SHIFT] = v
            since = 0.0
        st[b + _Z_S1] = s1
        st[b + _Z_S2] = s2
        st[b + _Z_SINCE] = since
    return m, rows


@nb.njit(cache=True, nogil=True)
def _quantile(st, o: int, n: int, q: float) -> float:  # type: ignore[no-untyped-def]
    """numpy's default ("linear") quantile of sorted st[o:o+n], step for step."""
    virtual = (n - 1) * q
    lo = math.floor(virtual)
    gamma = virtual - lo
    if virtual >= n - 1:
        lo_i = n - 1
        hi_i = n - 1
    else:
        lo_i = int(lo)
        hi_i = lo_i + 1
    a = st[o + lo_i]
    b = st[o + hi_i]
    diff = b - a
    if math.isinf(diff) and math.isfinite(a) and math.isfinite(b):
        # Values more than the float range apart (±1e308): the difference overflows, the
        # interpolated value does not; halves keep it finite.
        return a + (b * 0.5 - a * 0.5) * (2.0 * gamma)
    if gamma >= 0.5:
        return b - diff * (1.0 - gamma)
    return a + diff * gamma


@nb.njit(cache=True, nogil=True)
def _lower_bound(st, o: int, n: int, v: float) -> int:  # type: ignore[no-untyped-def]
    """First position p in sorted st[o:o+n] with st[o+p] >= v (np.searchsorted 'left')."""
    lo = 0
    hi = n
    while lo < hi:
        mid = (lo + hi) >> 1
        if st[o + mid] < v:
            lo = mid + 1
        else:
            hi = mid
    return lo


@nb.njit(cache=True, nogil=True)
def iqr_scan(slots, x, st, width, n_max, need, multiplier, emit_all, out_i, out_f, m, i0):  # type: ignore[no-untyped-def]
    st = borrow(st)  # passed to the per-row quantile and search calls (borrow.py)
    rows = slots.shape[0]
    for i in range(i0, rows):
        if m == out_i.shape[0]:
            return m, i  # full: `run_scan` grows the output and calls again from row i
        if i + AHEAD < rows:
            # The whole slot: header, sorted values (binary searches, the shift, the
            # quantiles) and the ring line at its head.
            pb = slots[i + AHEAD] * width
            prefetch(st, pb)
            po = pb + HEADER + n_max
            for line in range(0, n_max, 8):
                prefetch(st, po + line)
        if i + AHEAD // 2 < rows:  # its header is near by now: the ring line at its head
            pb = slots[i + AHEAD // 2] * width
            prefetch(st, pb + HEADER + np.int64(st[pb + _HEAD]))
        v = x[i]
        if math.isnan(v):
            continue
        b = slots[i] * width
        r = b + HEADER  # ring
        o = r + n_max  # sorted values
        n = np.int64(st[b + _COUNT])
        head = np.int64(st[b + _HEAD])
        if n >= need:
            q1 = _quantile(st, o, n, 0.25)
            q3 = _quantile(st, o, n, 0.75)
            spread = q3 - q1
            low = q1 - multiplier * spread
            high = q3 + multiplier * spread
            past = low - v if v < low else (v - high if v > high else 0.0)
            if past > 0.0 or emit_all:  # emit_all: every scored row (alert lifecycle, §9.3), score 0 = in range
                score = (np.inf if spread == 0.0 else past / spread) if past > 0.0 else 0.0
                m = _put(out_i, out_f, m, i, score, n, q1, q3)
        old = _ring_add(st, b, n, head, n_max, v)
        if n == n_max:
            # The oldest value was replaced: remove it at p, insert v, shifting only between.
            p = _lower_bound(st, o, n, old)
            if v >= old:
                # v goes after the values < v; among positions > p (old's slot is freed).
                q = p
                while q + 1 < n and st[o + q + 1] < v:
                    st[o + q] = st[o + q + 1]
                    q += 1
                st[o + q] = v
            else:
                q = p
                while q > 0 and st[o + q - 1] >= v:
                    st[o + q] = st[o + q - 1]
                    q -= 1
                st[o + q] = v
        else:
            q = n
            while q > 0 and st[o + q - 1] > v:
                st[o + q] = st[o + q - 1]
                q -= 1
            st[o + q] = v
    return m, rows


@nb.njit(cache=True, nogil=True)
def ema_scan(slots, x, st, width, need, alpha, threshold, out_i, out_f, m, i0):  # type: ignore[no-untyped-def]
    rows = slots.shape[0]
    for i in range(i0, rows):
        if m == out_i.shape[0]:
            return m, i  # full: `run_scan` grows the output and calls again from row i
        if i + AHEAD < rows:
            prefetch(st, slots[i + AHEAD] * width)
        v = x[i]
        if math.isnan(v):
            continue
        b = slots[i] * width
        n = np.int64(st[b])
        mean = st[b + 1]
        var = st[b + 2]
        if n >= need:
            std = math.sqrt(var)
            score = _deviation(v, mean, std)
            if score > threshold:
                m = _put(out_i, out_f, m, i, score, n, mean, std)
        if n == 0:
            st[b + 1] = v
            st[b + 2] = 0.0
        else:
            d = v - mean
            st[b + 1] = mean + alpha * d
            st[b + 2] = (1.0 - alpha) * (var + alpha * d * d)
        st[b] = n + 1
    return m, rows
