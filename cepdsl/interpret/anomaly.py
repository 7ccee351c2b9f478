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
from typing import Any

from cepdsl.backends.base import SEQ, TIME
from cepdsl.interpret.aggregates import mean, quantile_linear, variance
from cepdsl.interpret.rows import Match, Row, partition
from cepdsl.interpret.values import is_nan
from cepdsl.plan import AnomalySpec, RulePlan

#: (score, statistics for the record) of a scored value.
Scored = tuple[float, dict[str, Any]]


def deviation_score(x: float, centre: float, spread: float) -> float:
    """|x − centre| / spread; with no spread, 0 for the centre itself and +inf elsewhere."""
    if spread == 0:
        return 0.0 if x == centre else math.inf
    return abs(x - centre) / spread


def zscore(spec: AnomalySpec, baseline: Sequence[float], x: float) -> tuple[bool, Scored]:
    m = mean(baseline)
    std = math.sqrt(variance(baseline, ddof=0))  # population std
    score = deviation_score(x, m, std)
    return score > spec.threshold, (score, {"baseline_mean": m, "baseline_std": std})


def iqr(spec: AnomalySpec, baseline: Sequence[float], x: float) -> tuple[bool, Scored]:
    ordered = sorted(baseline)
    q1, q3 = quantile_linear(ordered, 0.25), quantile_linear(ordered, 0.75)
    spread = q3 - q1
    low, high = q1 - spec.multiplier * spread, q3 + spec.multiplier * spread
    past = low - x if x < low else x - high if x > high else 0.0
    is_anomaly = past > 0
    if spread == 0:
        score = math.inf if is_anomaly else 0.0
    else:
        score = past / spread
    return is_anomaly, (score, {"baseline_q1": q1, "baseline_q3": q3})


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


def _group_anomalies(spec: AnomalySpec, rows: list[Row]) -> list[tuple[Row, dict[str, Any]]]:
    """(row, record) of every anomaly in one group's rows."""
    out: list[tuple[Row, dict[str, Any]]] = []
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
                if score > spec.threshold:
                    stats = {"baseline_mean": ema.m, "baseline_std": std}
                    out.append((row, _record(row, spec, ema.n, (score, stats))))
            ema.update(x)
        return out
    method = {"zscore": zscore, "iqr": iqr}.get(spec.method)
    if method is None:
        raise NotImplementedError(f"anomaly method {spec.method!r}")
    baseline: deque[float] = deque(maxlen=spec.baseline)
    for row in rows:
        x = _value(row, spec.field)
        if x is None:
            continue
        if len(baseline) >= max(spec.warmup, 1):
            is_anomaly, scored = method(spec, list(baseline), x)
            if is_anomaly:
                out.append((row, _record(row, spec, len(baseline), scored)))
        baseline.append(x)  # whether or not it was an anomaly; the oldest drops out
    return out


def anomaly_matches(rule: RulePlan, rows: list[Row]) -> list[Match]:
    spec = rule.anomaly
    assert spec is not None
    out: list[Match] = []
    for key, group_rows in partition(rows, rule.group_keys).items():
        for row, record in _group_anomalies(spec, group_rows):
            out.append(Match((row[TIME], row[SEQ]), key, record))
    return out
