"""The common shape of RFC 3339 time text, parsed straight from Arrow's string buffers.

Polars' `str.to_datetime` runs chrono's general strptime per value (~0.6 µs each here),
which made timestamp typing the single largest cost of JSON-lines ingest. Nearly all
event streams write one shape, `YYYY-MM-DDTHH:MM:SS[.f…]Z`; this Numba kernel reads
exactly that shape in one pass (~10 ns a value) and marks every other value — other
offsets, a space for `T`, lowercase `z`, leap seconds, out-of-range fields — as *not
handled*, so the caller sends those few rows the general way. On the shape it accepts it
gives exactly what `str.to_datetime("%Y-%m-%dT%H:%M:%S%.fZ", time_unit="us")` gives
(fractions past microseconds are truncated, as there); tests/sources check that on
generated text.
"""

from __future__ import annotations

import numba as nb
import numpy as np
import polars as pl
import pyarrow as pa

#: Per-value status from the kernel.
OK, NULL, NOT_HANDLED = 0, 1, 2
_MONTH_DAYS = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)


@nb.njit(cache=True, nogil=True)
def _digits(data: np.ndarray, at: int, n: int) -> int:
    """The `n` ASCII digits at `at` as a number, or -1 when one is not a digit."""
    v = 0
    for k in range(at, at + n):
        c = data[k] - 48
        if c < 0 or c > 9:
            return -1
        v = v * 10 + c
    return v


@nb.njit(cache=True, nogil=True)
def _days_from_civil(y: int, m: int, d: int) -> int:
    # Howard Hinnant's algorithm (proleptic Gregorian, days since 1970-01-01).
    if m <= 2:
        y -= 1
    era = y // 400
    yoe = y - era * 400
    mp = m - 3 if m > 2 else m + 9
    doy = (153 * mp + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


@nb.njit(cache=True, nogil=True)
def parse_span(data: np.ndarray, a: int, b: int) -> tuple[int, bool]:
    """The text data[a:b] of the common shape → (µs since the epoch, True), else (0, False).
    Also called from jsonscan.py on the JSON string's bytes in place."""
    n = b - a
    # YYYY-MM-DDTHH:MM:SS is 19 bytes; then ".f{1,9}" or nothing; then "Z".
    if n < 20 or n > 30 or data[b - 1] != 90:  # 'Z'
        return 0, False
    if data[a + 4] != 45 or data[a + 7] != 45 or data[a + 10] != 84 or data[a + 13] != 58 or data[a + 16] != 58:
        return 0, False
    y = _digits(data, a, 4)
    mo = _digits(data, a + 5, 2)
    d = _digits(data, a + 8, 2)
    h = _digits(data, a + 11, 2)
    mi = _digits(data, a + 14, 2)
    s = _digits(data, a + 17, 2)
    if y < 1 or mo < 1 or mo > 12 or d < 1 or h < 0 or h > 23 or mi < 0 or mi > 59 or s < 0 or s > 59:
        return 0, False
    dim = _MONTH_DAYS[mo - 1]
    if mo == 2 and (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)):
        dim = 29
    if d > dim:
        return 0, False
    frac_us = 0
    if n > 20:
        nfrac = n - 21  # bytes between the dot and the 'Z'
        if data[a + 19] != 46 or nfrac < 1:
            return 0, False
        keep = nfrac if nfrac < 6 else 6
        f = _digits(data, a + 20, keep)
        rest = _digits(data, a + 20 + keep, nfrac - keep)  # only checked: digits, truncated
        if f < 0 or rest < 0:
            return 0, False
        for _ in range(6 - keep):
            f *= 10
        frac_us = f
    days = _days_from_civil(y, mo, d)
    return (days * 86400 + h * 3600 + mi * 60 + s) * 1_000_000 + frac_us, True


@nb.njit(cache=True, nogil=True)
def _parse(offsets: np.ndarray, data: np.ndarray, valid: np.ndarray, out: np.ndarray, status: np.ndarray) -> int:
    """Fill `out` (µs since the epoch) and `status`; returns how many values are NOT_HANDLED."""
    missed = 0
    for i in range(out.shape[0]):
        if not valid[i]:
            status[i] = NULL
            continue
        us, ok = parse_span(data, offsets[i], offsets[i + 1])
        if ok:
            out[i] = us
            status[i] = OK
        else:
            status[i] = NOT_HANDLED
            missed += 1
    return missed


def parse_common(text: pl.Series) -> tuple[pl.Series, np.ndarray, int]:
    """(Datetime(us) with nulls where not OK, per-row status, how many rows are NOT_HANDLED)."""
    arr = text.to_arrow()
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if arr.type != pa.large_string():
        arr = arr.cast(pa.large_string())
    n = len(arr)
    validity, offs, data = arr.buffers()
    offsets = np.frombuffer(offs, dtype=np.int64, count=n + 1, offset=arr.offset * 8)
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, dtype=np.uint8)
    valid = np.ones(n, dtype=np.bool_) if validity is None else arr.is_valid().to_numpy(zero_copy_only=False)
    out = np.zeros(n, dtype=np.int64)
    status = np.empty(n, dtype=np.uint8)
    missed = _parse(offsets, raw, valid, out, status)
    series = pl.Series(text.name, out, dtype=pl.Int64)
    if missed or validity is not None:
        series = series.scatter(np.flatnonzero(status != OK), None)
    return series.cast(pl.Datetime("us")), status, int(missed)
