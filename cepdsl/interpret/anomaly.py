"""Anomaly rules (LANGUAGE.md §5.6): per group, in time order, score each
non-null value against the baseline of earlier values, then add it.

Only anomalies become records. NaN is treated like null here (skipped: neither
scored nor appended), because one NaN would otherwise poison the baseline for
N values and a NaN score can never pass a threshold anyway.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from cepdsl.backends.base import SEQ, TIME
from cepdsl.interpret.aggregates import mean, quantile_linear, variance
from cepdsl.interpret.rows import Match, Row, partition
from cepdsl.interpret.values import is_nan
from cepdsl.plan import AnomalySpec, RulePlan

#: (score, statistics for the record) of a scored value.
Scored = tuple[float, dict[str, Any]]


def to_float(q: Fraction) -> float:
    """`q` rounded to a float64, ±inf beyond its range (as float arithmetic overflows);
    below it, 0.0 or a subnormal (as it underflows)."""
    try:
        return float(q)
    except OverflowError:
        return math.inf if q > 0 else -math.inf


def deviation_score(x: float, centre: float, spread: float) -> float:
    """|x − centre| / spread; with no spread, 0 for the centre itself and +inf elsewhere."""
    if spread == 0:
        return 0.0 if x == centre else math.inf
    return abs(x - centre) / spread


#: Magnitudes past which float64 quartile arithmetic loses what exact arithmetic keeps: the
#: kernels' interpolation rounds subnormals to their grid and cancels ~1e300 against ~1e200.
_TINY = 2.2250738585072014e-308  # the smallest normal float
_HUGE = 1e150  # squares beyond the float range
_SCALE = 2**600  # spreads below the float range are scored on values scaled by this
_TINY_VAR = 1e-280  # ... when their variance is below this (the kernels' bound)


def is_extreme(x: float) -> bool:
    """A subnormal, a value beyond ±1e150, or ±inf."""
    return x != 0 and not _TINY <= abs(x) <= _HUGE


class Baseline:
    """The previous up to N values of a group, oldest first, with exact running sums.

    The sums are Fractions (a float converts to one exactly), so the mean and
    variance derived from them carry no rounding and never drift as values come
    and go; whether a value is an anomaly is then decided exactly, not up to
    float noise at `score == threshold`. Infinite values cannot be Fractions:
    while the baseline holds one, statistics fall back to plain floats.
    """

    def __init__(self, size: int) -> None:
        self.values: deque[float] = deque()
        self.size = size
        self.s1 = Fraction(0)  # Σ x over finite values
        self.s2 = Fraction(0)  # Σ x²
        self.infinite = 0  # how many values are ±inf
        self.extreme = 0  # how many are at the ends of the float range (`is_extreme`)

    def __len__(self) -> int:
        return len(self.values)

    def _add(self, x: float, sign: int) -> None:
        if is_extreme(x):
            self.extreme += sign
        if math.isinf(x):
            self.infinite += sign
            return
        fx = Fraction(x)
        self.s1 += sign * fx
        self.s2 += sign * fx * fx

    def append(self, x: float) -> None:
        if len(self.values) == self.size:
            self._add(self.values.popleft(), -1)  # the oldest drops out
        self.values.append(x)
        self._add(x, +1)


def _zscore_float(spec: AnomalySpec, baseline: Sequence[float], x: float) -> tuple[bool, Scored]:
    m = mean(baseline)
    std = math.sqrt(variance(baseline, ddof=0))
    score = deviation_score(x, m, std)
    return score > spec.threshold, (score, {"baseline_mean": m, "baseline_std": std})


def zscore(spec: AnomalySpec, baseline: Baseline, x: float) -> tuple[bool, Scored]:
    """Mean and population std (ddof 0) of the baseline; anomaly iff |x − mean| / std > threshold."""
    if baseline.infinite or math.isinf(x):
        return _zscore_float(spec, list(baseline.values), x)
    n = len(baseline)
    exact_mean = baseline.s1 / n
    exact_var = baseline.s2 / n - exact_mean * exact_mean
    dev = abs(Fraction(x) - exact_mean)
    # As in the vectorized kernels: a variance beyond the float range is +inf (every finite
    # value scores 0); one so small its float underflows (subnormal-scale spreads) is
    # scored on the values scaled by 2**600, like any other spread.
    mean_f = float(exact_mean)
    if exact_var == 0:
        std = 0.0
        score = deviation_score(x, mean_f, std)
        is_anomaly = score > spec.threshold
    elif math.isinf(to_float(exact_var)):
        std = math.inf
        score = deviation_score(x, mean_f, std)
        is_anomaly = score > spec.threshold
    else:
        t = Fraction(spec.threshold)
        # score > t  ⇔  dev / sqrt(var) > t  ⇔  (t < 0 or dev² > t² · var): exact, no sqrt
        is_anomaly = t < 0 or dev * dev > t * t * exact_var
        var_f = to_float(exact_var)
        if var_f < _TINY_VAR:
            std_s = math.sqrt(to_float(exact_var * _SCALE * _SCALE))
            score = to_float(dev * _SCALE) / std_s
            std = std_s / _SCALE
        else:
            std = math.sqrt(var_f)
            score = to_float(dev) / std
    stats = {"baseline_mean": mean_f, "baseline_std": std}
    return is_anomaly, (score, stats)


def _quantile_exact(ordered: Sequence[float], q: Fraction) -> Fraction:
    """numpy's linear quantile, in exact arithmetic."""
    virtual = (len(ordered) - 1) * q
    lo = math.floor(virtual)
    hi = min(lo + 1, len(ordered) - 1)
    a, b = Fraction(ordered[lo]), Fraction(ordered[hi])
    return a + (b - a) * (virtual - lo)


def _quantile_float(ordered: Sequence[float], q: float) -> float:
    """`quantile_linear`, with the kernel's guard for neighbours more than the float range
    apart (their difference overflows; halves do not)."""
    n = len(ordered)
    virtual = (n - 1) * q
    lo = math.floor(virtual)
    lo_i, hi_i = (n - 1, n - 1) if virtual >= n - 1 else (int(lo), int(lo) + 1)
    a, b = float(ordered[lo_i]), float(ordered[hi_i])
    diff = b - a
    if math.isinf(diff) and math.isfinite(a) and math.isfinite(b):
        return a + (b * 0.5 - a * 0.5) * (2.0 * (virtual - lo))
    return quantile_linear(ordered, q)


def iqr(spec: AnomalySpec, baseline: Baseline, x: float) -> tuple[bool, Scored]:
    """q1, q3 by linear interpolation; anomaly iff x < q1 − m·iqr or x > q3 + m·iqr."""
    ordered = sorted(baseline.values)
    if baseline.extreme or is_extreme(x):
        # Where floats and exact arithmetic part (subnormal grids, cancellation across
        # 1e100), decide as the vectorized kernel does: its float64 steps, one by one.
        q1f, q3f = _quantile_float(ordered, 0.25), _quantile_float(ordered, 0.75)
        spread_f = q3f - q1f
        low_f, high_f = q1f - spec.multiplier * spread_f, q3f + spec.multiplier * spread_f
        past_f = low_f - x if x < low_f else x - high_f if x > high_f else 0.0
        flagged = past_f > 0
        score_f = math.inf if flagged and not spread_f > 0 else (past_f / spread_f if flagged else 0.0)
        return flagged, (score_f, {"baseline_q1": q1f, "baseline_q3": q3f})
    q1, q3 = _quantile_exact(ordered, Fraction(1, 4)), _quantile_exact(ordered, Fraction(3, 4))
    spread = q3 - q1
    m = Fraction(spec.multiplier)
    low, high = q1 - m * spread, q3 + m * spread
    fx = Fraction(x)
    past = low - fx if fx < low else fx - high if fx > high else Fraction(0)
    is_anomaly = past > 0
    if not is_anomaly:
        score = 0.0
    elif spread == 0:
        score = math.inf
    else:
        score = to_float(past / spread)  # a subnormal spread: +inf, as float division gives
    return is_anomaly, (score, {"baseline_q1": float(q1), "baseline_q3": float(q3)})


class _Ema:
    """Exponentially weighted mean and variance of all earlier values of a group."""

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha
        self.n = 0
        self.m = 0.0
        self.v = 0.0

    def update(self, x: float) -> None:
        if self.n == 0:
            self.m, self.v = x, 0.0
        else:
            d = x - self.m
            self.m = self.m + self.alpha * d
            self.v = (1 - self.alpha) * (self.v + self.alpha * d * d)
        self.n += 1


def _value(row: Row, field: str) -> float | None:
    x = row[field]
    if x is None or is_nan(x):
        return None
    return float(x)


def _record(row: Row, spec: AnomalySpec, baseline_n: int, scored: Scored) -> dict[str, Any]:
    score, stats = scored
    record = {k: v for k, v in row.items() if k not in (SEQ, TIME)}
    record.update(ts=row[TIME], score=score, method=spec.method, baseline_n=baseline_n, **stats)
    return record


def group_scores(spec: AnomalySpec, rows: list[Row]) -> list[tuple[Row, dict[str, Any], bool]]:
    """(row, record, is anomaly) of every scored row of one group (the alert lifecycle's
    evaluations, LANGUAGE.md §9.3)."""
    out: list[tuple[Row, dict[str, Any], bool]] = []
    if spec.method == "ema":
        ema = _Ema(spec.alpha)
        for row in rows:
            x = _value(row, spec.field)
            if x is None:
                continue
            # Scoring needs at least one earlier value even if warmup is 0.
            if ema.n >= max(spec.warmup, 1):
                std = math.sqrt(ema.v)
                score = deviation_score(x, ema.m, std)
                stats = {"baseline_mean": ema.m, "baseline_std": std}
                out.append((row, _record(row, spec, ema.n, (score, stats)), score > spec.threshold))
            ema.update(x)
        return out
    method = {"zscore": zscore, "iqr": iqr}.get(spec.method)
    if method is None:
        raise NotImplementedError(f"anomaly method {spec.method!r}")
    baseline = Baseline(spec.baseline)
    for row in rows:
        x = _value(row, spec.field)
        if x is None:
            continue
        if len(baseline) >= max(spec.warmup, 1):
            is_anomaly, scored = method(spec, baseline, x)
            out.append((row, _record(row, spec, len(baseline), scored), is_anomaly))
        baseline.append(x)  # whether or not it was an anomaly; the oldest drops out
    return out


def _group_anomalies(spec: AnomalySpec, rows: list[Row]) -> list[tuple[Row, dict[str, Any]]]:
    """(row, record) of every anomaly in one group's rows."""
    return [(row, record) for row, record, is_anomaly in group_scores(spec, rows) if is_anomaly]


def anomaly_matches(rule: RulePlan, rows: list[Row]) -> list[Match]:
    spec = rule.anomaly
    assert spec is not None
    out: list[Match] = []
    for key, group_rows in partition(rows, rule.group_keys).items():
        for row, record in _group_anomalies(spec, group_rows):
            out.append(Match((row[TIME], row[SEQ]), key, record))
    return out
