"""Per-group baselines for anomaly rules, one Numba pass over rows in time order.

Each kernel takes the rows' slots and values (NaN = null: skipped) and the state
arrays (updated in place), and returns the anomalies as
(row index, score, baseline_n, stat 1, stat 2).

zscore keeps shifted sums S1 = Σ(v − K), S2 = Σ(v − K)² over a ring buffer, with
the shift K an actual baseline value: for values near 1e9 with small noise, the
sums stay small and var = S2/n − (S1/n)² loses nothing to cancellation.  Every N
appends the sums are recomputed from the ring with K = the newest value, so
rounding from add/remove never accumulates and K follows a drifting series.  A
run counter of equal trailing values makes a constant baseline exact (mean = the
value, std = 0), which the spec's std = 0 rule depends on.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np


@nb.njit(cache=True)
def _emit(out_i, out_f, m, i, score, n, s1, s2):  # type: ignore[no-untyped-def]
    if m == out_i.shape[0]:
        ni = np.empty((2 * m, 2), np.int64)
        ni[:m] = out_i
        nf = np.empty((2 * m, 3), np.float64)
        nf[:m] = out_f
        out_i, out_f = ni, nf
    out_i[m, 0] = i
    out_i[m, 1] = n
    out_f[m, 0] = score
    out_f[m, 1] = s1
    out_f[m, 2] = s2
    return out_i, out_f, m + 1


@nb.njit(cache=True)
def _deviation(x: float, centre: float, spread: float) -> float:
    if spread == 0.0:
        return 0.0 if x == centre else np.inf
    return abs(x - centre) / spread


@nb.njit(cache=True)
def zscore_scan(slots, x, ring, count, head, shift, s1, s2, since, eq_run, n_max, warmup, threshold):  # type: ignore[no-untyped-def]
    out_i = np.empty((16, 2), np.int64)
    out_f = np.empty((16, 3), np.float64)
    m = 0
    need = max(warmup, 1)
    for i in range(slots.shape[0]):
        v = x[i]
        if math.isnan(v):
            continue
        s = slots[i]
        n = count[s]
        if n >= need:
            if eq_run[s] >= n:  # constant baseline: exact
                mean = ring[s, (head[s] + n - 1) % n_max]
                std = 0.0
            else:
                d1 = s1[s] / n
                mean = shift[s] + d1
                var = s2[s] / n - d1 * d1
                std = math.sqrt(var) if var > 0.0 else 0.0
            score = _deviation(v, mean, std)
            if score > threshold:
                out_i, out_f, m = _emit(out_i, out_f, m, i, score, n, mean, std)
        # append v, the oldest out first
        if n == 0:
            shift[s] = v
        newest = ring[s, (head[s] + n - 1) % n_max] if n > 0 else np.nan
        eq_run[s] = eq_run[s] + 1 if v == newest else 1
        k = shift[s]
        if n == n_max:
            old = ring[s, head[s]]
            s1[s] -= old - k
            s2[s] -= (old - k) * (old - k)
            ring[s, head[s]] = v
            head[s] = (head[s] + 1) % n_max
        else:
            ring[s, (head[s] + n) % n_max] = v
            count[s] = n + 1
        s1[s] += v - k
        s2[s] += (v - k) * (v - k)
        since[s] += 1
        if since[s] >= n_max:
            _recompute(ring, count, head, shift, s1, s2, s, n_max, v)
            since[s] = 0
    return out_i[:m].copy(), out_f[:m].copy()


@nb.njit(cache=True)
def _recompute(ring, count, head, shift, s1, s2, s, n_max, k):  # type: ignore[no-untyped-def]
    a = 0.0
    b = 0.0
    for j in range(count[s]):
        d = ring[s, (head[s] + j) % n_max] - k
        a += d
        b += d * d
    shift[s] = k
    s1[s] = a
    s2[s] = b


@nb.njit(cache=True)
def _quantile(v, n: int, q: float) -> float:  # type: ignore[no-untyped-def]
    """numpy's default ("linear") quantile of sorted v[:n], step for step."""
    virtual = (n - 1) * q
    lo = math.floor(virtual)
    gamma = virtual - lo
    if virtual >= n - 1:
        lo_i = n - 1
        hi_i = n - 1
    else:
        lo_i = int(lo)
        hi_i = lo_i + 1
    a = v[lo_i]
    b = v[hi_i]
    diff = b - a
    if gamma >= 0.5:
        return b - diff * (1.0 - gamma)
    return a + diff * gamma


@nb.njit(cache=True)
def iqr_scan(slots, x, ring, ordered, count, head, n_max, warmup, multiplier):  # type: ignore[no-untyped-def]
    out_i = np.empty((16, 2), np.int64)
    out_f = np.empty((16, 3), np.float64)
    m = 0
    need = max(warmup, 1)
    for i in range(slots.shape[0]):
        v = x[i]
        if math.isnan(v):
            continue
        s = slots[i]
        n = count[s]
        row = ordered[s]
        if n >= need:
            q1 = _quantile(row, n, 0.25)
            q3 = _quantile(row, n, 0.75)
            spread = q3 - q1
            low = q1 - multiplier * spread
            high = q3 + multiplier * spread
            past = low - v if v < low else (v - high if v > high else 0.0)
            if past > 0.0:
                score = np.inf if spread == 0.0 else past / spread
                out_i, out_f, m = _emit(out_i, out_f, m, i, score, n, q1, q3)
        if n == n_max:  # drop the oldest from the sorted window
            old = ring[s, head[s]]
            p = np.searchsorted(row[:n], old)
            for j in range(p, n - 1):  # shift left over the removed value (no temporaries)
                row[j] = row[j + 1]
            ring[s, head[s]] = v
            head[s] = (head[s] + 1) % n_max
            n -= 1
        else:
            ring[s, (head[s] + n) % n_max] = v
            count[s] = n + 1
        p = np.searchsorted(row[:n], v)
        for j in range(n, p, -1):
            row[j] = row[j - 1]
        row[p] = v
    return out_i[:m].copy(), out_f[:m].copy()


@nb.njit(cache=True)
def ema_scan(slots, x, count, mean, var, warmup, alpha, threshold):  # type: ignore[no-untyped-def]
    out_i = np.empty((16, 2), np.int64)
    out_f = np.empty((16, 3), np.float64)
    m = 0
    need = max(warmup, 1)
    for i in range(slots.shape[0]):
        v = x[i]
        if math.isnan(v):
            continue
        s = slots[i]
        n = count[s]
        if n >= need:
            std = math.sqrt(var[s])
            score = _deviation(v, mean[s], std)
            if score > threshold:
                out_i, out_f, m = _emit(out_i, out_f, m, i, score, n, mean[s], std)
        if n == 0:
            mean[s] = v
            var[s] = 0.0
        else:
            d = v - mean[s]
            mean[s] = mean[s] + alpha * d
            var[s] = (1.0 - alpha) * (var[s] + alpha * d * d)
        count[s] = n + 1
    return out_i[:m].copy(), out_f[:m].copy()
