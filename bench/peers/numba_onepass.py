"""Hand-written single-pass Numba peers (issue 18): what a user writing one kernel per rule by
hand would get. Each takes integer key codes (`key_codes`), the event times in µs and the
value columns as numpy arrays, walks the rows once in time order with per-key arrays, and
returns its matches' rows or count. They are the limit the engine is compared with, not
engine code: no late rows, no batches, no state kept across calls, no records built.

`key_codes` turns a String or Enum column into codes the way a user would (Polars'
categorical coding), and is timed with the kernel: the engine has to do the same work.
"""

from __future__ import annotations

import numba as nb
import numpy as np
import polars as pl

M_US = 60_000_000


def key_codes(s: pl.Series) -> tuple[np.ndarray, int]:
    """Dense int codes of a key column, and how many keys (String: categorical coding)."""
    if isinstance(s.dtype, pl.Enum):
        codes = s.to_physical()
        return codes.to_numpy().astype(np.int64, copy=False), len(s.dtype.categories)
    codes = s.cast(pl.Categorical).to_physical()
    return codes.to_numpy().astype(np.int64, copy=False), int(codes.max()) + 1


def times(s: pl.Series) -> np.ndarray:
    return s.cast(pl.Int64).to_numpy()


@nb.njit(cache=True, nogil=True)
def filter2(cpu: np.ndarray, memory: np.ndarray) -> np.ndarray:
    """Rows with cpu > 80 and memory > 70."""
    n = cpu.shape[0]
    out = np.empty(n, np.int64)
    m = 0
    for i in range(n):
        out[m] = i
        m += (cpu[i] > 80.0) & (memory[i] > 70.0)
    return out[:m]


@nb.njit(cache=True, nogil=True)
def filter5(cpu, memory, status, healthy, latency, event_type, metric):  # noqa: ANN001, ANN201
    """(cpu > 80 and memory > 70 and not status == healthy) or (latency > 500 and type == metric),
    the strings as codes."""
    n = cpu.shape[0]
    out = np.empty(n, np.int64)
    m = 0
    for i in range(n):
        out[m] = i
        m += ((cpu[i] > 80.0) & (memory[i] > 70.0) & (status[i] != healthy)) | ((latency[i] > 500.0) & (event_type[i] == metric))
    return out[:m]


@nb.njit(cache=True, nogil=True)
def sliding_avg(key, t, x, n_keys, size_panes, threshold):  # noqa: ANN001, ANN201
    """Sliding windows of `size_panes` one-minute panes, every minute, per key, over
    time-ordered rows: windows whose avg(x) > threshold → (key, window start µs, avg).
    Per key a ring of the last `size_panes` panes (id, count, sum); a key's windows close
    when a later pane of that key arrives (and at the end)."""
    n = t.shape[0]
    w = size_panes
    ring_id = np.full((n_keys, w), -1, np.int64)
    ring_c = np.zeros((n_keys, w), np.int64)
    ring_s = np.zeros((n_keys, w), np.float64)
    last = np.full(n_keys, np.iinfo(np.int64).min, np.int64)
    out_k = np.empty(1024, np.int64)
    out_s = np.empty(1024, np.int64)
    out_v = np.empty(1024, np.float64)
    m = 0
    for i in range(n + n_keys):
        if i < n:
            k = key[i]
            p = t[i] // M_US
            lp = last[k]
            if lp == p:
                j = p % w
                ring_c[k, j] += 1
                ring_s[k, j] += x[i]
                continue
            hi = min(lp, p - w)  # windows starting in [lp - w + 1, hi] no longer grow
        else:
            k = i - n  # the end: close every key's open windows
            lp = last[k]
            if lp == np.iinfo(np.int64).min:
                continue
            p = lp
            hi = lp
        if lp != np.iinfo(np.int64).min:
            for s in range(lp - w + 1, hi + 1):
                c = 0
                tot = 0.0
                for q in range(s, s + w):
                    j = q % w
                    if ring_id[k, j] == q:
                        c += ring_c[k, j]
                        tot += ring_s[k, j]
                if c > 0 and tot / c > threshold:
                    if m == out_k.shape[0]:
                        out_k = np.concatenate((out_k, np.empty(m, np.int64)))
                        out_s = np.concatenate((out_s, np.empty(m, np.int64)))
                        out_v = np.concatenate((out_v, np.empty(m, np.float64)))
                    out_k[m] = k
                    out_s[m] = s * M_US
                    out_v[m] = tot / c
                    m += 1
        if i < n:
            j = p % w
            ring_id[k, j] = p
            ring_c[k, j] = 1
            ring_s[k, j] = x[i]
            last[k] = p
    return out_k[:m], out_s[:m], out_v[:m]


@nb.njit(cache=True, nogil=True)
def tumbling_count(key, t, n_keys):  # noqa: ANN001, ANN201
    """Tumbling one-minute windows per key over time-ordered rows → (key, start µs, count)."""
    n = t.shape[0]
    pane = np.full(n_keys, -1, np.int64)
    cnt = np.zeros(n_keys, np.int64)
    out_k = np.empty(n // 4 + n_keys + 16, np.int64)
    out_s = np.empty(out_k.shape[0], np.int64)
    out_c = np.empty(out_k.shape[0], np.int64)
    m = 0
    for i in range(n):
        k = key[i]
        p = t[i] // M_US
        if pane[k] != p:
            if pane[k] >= 0:
                if m == out_k.shape[0]:
                    out_k = np.concatenate((out_k, np.empty(m, np.int64)))
                    out_s = np.concatenate((out_s, np.empty(m, np.int64)))
                    out_c = np.concatenate((out_c, np.empty(m, np.int64)))
                out_k[m], out_s[m], out_c[m] = k, pane[k] * M_US, cnt[k]
                m += 1
            pane[k] = p
            cnt[k] = 0
        cnt[k] += 1
    for k in range(n_keys):
        if pane[k] >= 0:
            if m == out_k.shape[0]:
                out_k = np.concatenate((out_k, np.empty(m + 1, np.int64)))
                out_s = np.concatenate((out_s, np.empty(m + 1, np.int64)))
                out_c = np.concatenate((out_c, np.empty(m + 1, np.int64)))
            out_k[m], out_s[m], out_c[m] = k, pane[k] * M_US, cnt[k]
            m += 1
    return out_k[:m], out_s[:m], out_c[:m]


@nb.njit(cache=True, nogil=True)
def fail3_ok(key, t, is_ok, n_keys, within):  # noqa: ANN001, ANN201
    """`fail{3,} ok within` per key: at each ok, a match when the key's run of failures
    since its last ok holds at least 3 within `within` µs of the ok (greedy: the oldest
    such failure starts it) → rows of the oks that match. Per key the run's length and its
    last three failure times are enough: the third latest decides."""
    n = t.shape[0]
    run = np.zeros(n_keys, np.int64)
    f = np.zeros((n_keys, 3), np.int64)  # ring of the last three failures' times
    out = np.empty(n // 8 + 16, np.int64)
    m = 0
    for i in range(n):
        k = key[i]
        if is_ok[i]:
            r = run[k]
            if r >= 3 and f[k, r % 3] >= t[i] - within:  # f[k, r % 3]: the third latest
                if m == out.shape[0]:
                    out = np.concatenate((out, np.empty(m, np.int64)))
                out[m] = i
                m += 1
            run[k] = 0
        else:
            f[k, run[k] % 3] = t[i]
            run[k] += 1
    return out[:m]


@nb.njit(cache=True, nogil=True)
def absent_for(key, t, n_keys, gap, end):  # noqa: ANN001, ANN201
    """`absent for gap` per key: how many silences longer than `gap` between a key's events,
    plus the keys silent for `gap` at `end`."""
    last = np.full(n_keys, -1, np.int64)
    m = 0
    for i in range(t.shape[0]):
        k = key[i]
        if last[k] >= 0 and t[i] > last[k] + gap:
            m += 1
        last[k] = t[i]
    for k in range(n_keys):
        if last[k] >= 0 and last[k] + gap <= end:
            m += 1
    return m


@nb.njit(cache=True, nogil=True)
def zscore(key, x, n_keys, baseline, warmup, threshold):  # noqa: ANN001, ANN201
    """|x - mean| / std over the key's previous `baseline` values > threshold (population std),
    once `warmup` values are in: per key a ring of values and running sum / sum of squares
    → rows flagged."""
    ring = np.empty((n_keys, baseline), np.float64)
    cnt = np.zeros(n_keys, np.int64)
    s1 = np.zeros(n_keys, np.float64)
    s2 = np.zeros(n_keys, np.float64)
    out = np.empty(x.shape[0] // 64 + 16, np.int64)
    m = 0
    for i in range(x.shape[0]):
        k = key[i]
        c = cnt[k]
        v = x[i]
        nb_ = min(c, baseline)
        if nb_ >= warmup:
            mean = s1[k] / nb_
            var = max(s2[k] / nb_ - mean * mean, 0.0)
            sd = np.sqrt(var)
            d = abs(v - mean)
            if (d / sd if sd > 0 else (0.0 if d == 0 else np.inf)) > threshold:
                if m == out.shape[0]:
                    out = np.concatenate((out, np.empty(m, np.int64)))
                out[m] = i
                m += 1
        j = c % baseline
        if c >= baseline:
            old = ring[k, j]
            s1[k] -= old
            s2[k] -= old * old
        ring[k, j] = v
        s1[k] += v
        s2[k] += v * v
        cnt[k] = c + 1
    return out[:m]


@nb.njit(cache=True, nogil=True)
def ema(key, x, n_keys, alpha, warmup, threshold):  # noqa: ANN001, ANN201
    """Exponentially weighted mean and variance per key; flagged when |x - mean| / sd >
    threshold once `warmup` values are in → rows flagged."""
    mean = np.zeros(n_keys, np.float64)
    var = np.zeros(n_keys, np.float64)
    cnt = np.zeros(n_keys, np.int64)
    out = np.empty(x.shape[0] // 64 + 16, np.int64)
    m = 0
    for i in range(x.shape[0]):
        k = key[i]
        v = x[i]
        c = cnt[k]
        if c == 0:
            mean[k] = v
            cnt[k] = 1
            continue
        mu = mean[k]
        if c >= warmup:
            sd = np.sqrt(var[k])
            d = abs(v - mu)
            if (d / sd if sd > 0 else (0.0 if d == 0 else np.inf)) > threshold:
                if m == out.shape[0]:
                    out = np.concatenate((out, np.empty(m, np.int64)))
                out[m] = i
                m += 1
        d = v - mu
        mean[k] = mu + alpha * d
        var[k] = (1 - alpha) * (var[k] + alpha * d * d)
        cnt[k] = c + 1
    return out[:m]
