"""Anomaly rules (§5.6): zscore, iqr and ema on small hand-checked series."""

from __future__ import annotations

import math

import polars as pl

from tests.interpret.interp_helpers import events, matches, replay

STATS = ("ts", "cpu", "score", "method", "baseline_n", "baseline_mean", "baseline_std")


def series(*values: float | None, host: str = "h", start: int = 0) -> list[dict[str, object]]:
    return [{"ts": start + i, "host": host, "cpu": v} for i, v in enumerate(values)]


def test_zscore_uses_population_std_of_the_earlier_values() -> None:
    # warmup 3: 10, 12, 14 only fill the baseline. 100: mean 12, population variance
    # (4 + 0 + 4) / 3 = 8/3, score 88 / sqrt(8/3) ≈ 53.9 > 3 → anomaly.
    # 13: baseline [10, 12, 14, 100], mean 34, variance (576 + 484 + 400 + 4356) / 4 = 1454,
    # score 21 / sqrt(1454) ≈ 0.55 → not.
    frame = events(*series(10.0, 12.0, 14.0, 100.0, 13.0))
    (got,) = matches("rule z from m anomaly zscore(cpu, threshold = 3.0) baseline 5 warmup 3\n", frame, *STATS)
    assert got["ts"] == 3 and got["method"] == "zscore" and got["baseline_n"] == 3
    assert got["baseline_mean"] == 12.0
    assert math.isclose(got["baseline_std"], math.sqrt(8 / 3))
    assert math.isclose(got["score"], 88 / math.sqrt(8 / 3))


def test_zscore_with_zero_std() -> None:
    # Baseline [5, 5, 5] has std 0: x = 5 scores 0 (no anomaly), x = 6 scores +inf.
    frame = events(*series(5.0, 5.0, 5.0, 5.0, 6.0))
    got = matches("rule z from m anomaly zscore(cpu) baseline 3 warmup 3\n", frame, "ts", "score", "baseline_std")
    assert got == [{"ts": 4, "score": math.inf, "baseline_std": 0.0}]


def test_baseline_drops_its_oldest_value() -> None:
    # baseline 2, warmup 2: 1, 1, then 50 (std 0 → inf, anomaly), 50 (baseline [1, 50]:
    # mean 25.5, std 24.5, score 1 → not), 200 (baseline [50, 50]: std 0 → inf, mean 50, not 25.5).
    frame = events(*series(1.0, 1.0, 50.0, 50.0, 200.0))
    got = matches("rule z from m anomaly zscore(cpu) baseline 2 warmup 2\n", frame, "ts", "baseline_mean", "baseline_n")
    assert got == [{"ts": 2, "baseline_mean": 1.0, "baseline_n": 2}, {"ts": 4, "baseline_mean": 50.0, "baseline_n": 2}]


def test_null_values_are_neither_scored_nor_appended() -> None:
    # Same as the first zscore series with nulls between: the baseline still holds 3 values.
    frame = events(*series(10.0, None, 12.0, None, 14.0, 100.0))
    got = matches("rule z from m anomaly zscore(cpu) baseline 5 warmup 3\n", frame, "ts", "baseline_n", "baseline_mean")
    assert got == [{"ts": 5, "baseline_n": 3, "baseline_mean": 12.0}]


def test_nan_values_are_skipped_like_nulls() -> None:
    frame = events(*series(10.0, math.nan, 12.0, 14.0, 100.0))
    got = matches("rule z from m anomaly zscore(cpu) baseline 5 warmup 3\n", frame, "ts", "baseline_n")
    assert got == [{"ts": 4, "baseline_n": 3}]


def test_baselines_are_per_group() -> None:
    # Host a: 1, 1, 1, 9 (std 0 → anomaly at a's 4th). Host b: 9, 9, 9, 9 (never).
    frame = events(*series(1.0, 1.0, 1.0, 9.0, host="a"), *series(9.0, 9.0, 9.0, 9.0, host="b", start=10))
    got = matches("rule z from m group by host anomaly zscore(cpu) warmup 3\n", frame, "ts", "host")
    assert got == [{"ts": 3, "host": "a"}]


def test_iqr_score_is_distance_past_the_fence_over_iqr() -> None:
    # Baseline [1, 2, 3, 4]: q1 = 1 + 0.75 * 1 = 1.75, q3 = 3 + 0.25 * 1 = 3.25, iqr 1.5,
    # fences 1.75 - 2.25 = -0.5 and 3.25 + 2.25 = 5.5. x = 8.5 → (8.5 - 5.5) / 1.5 = 2.
    frame = events(*series(1.0, 2.0, 3.0, 4.0, 8.5))
    cols = ("ts", "score", "method", "baseline_n", "baseline_q1", "baseline_q3")
    got = matches("rule q from m anomaly iqr(cpu, multiplier = 1.5) baseline 4 warmup 4\n", frame, *cols)
    assert got == [{"ts": 4, "score": 2.0, "method": "iqr", "baseline_n": 4, "baseline_q1": 1.75, "baseline_q3": 3.25}]


def test_iqr_low_side_and_exactly_at_the_fence() -> None:
    # Same baseline: x = -2 is 1.5 below the fence -0.5 → score 1.0.
    # A second series: x = 5.5 sits exactly on the upper fence → not an anomaly.
    low = events(*series(1.0, 2.0, 3.0, 4.0, -2.0))
    on_fence = events(*series(1.0, 2.0, 3.0, 4.0, 5.5))
    rule = "rule q from m anomaly iqr(cpu) baseline 4 warmup 4\n"
    assert matches(rule, low, "score") == [{"score": 1.0}]
    assert matches(rule, on_fence) == []


def test_iqr_zero_spread_scores_infinity_for_an_anomaly() -> None:
    # Baseline [5, 5, 5, 5]: iqr 0, fences 5 and 5; 6 is past → +inf; 5 is not.
    frame = events(*series(5.0, 5.0, 5.0, 5.0, 5.0, 6.0))
    got = matches("rule q from m anomaly iqr(cpu) baseline 4 warmup 4\n", frame, "ts", "score")
    assert got == [{"ts": 5, "score": math.inf}]


def test_ema_scores_against_mean_and_variance_before_the_update() -> None:
    # alpha 0.5, warmup 2. 10: m = 10, v = 0. 20: d = 10, m = 15, v = 0.5 * (0 + 0.5 * 100) = 25.
    # 15: score |15 - 15| / 5 = 0; then d = 0, m = 15, v = 0.5 * 25 = 12.5.
    # 40: score 25 / sqrt(12.5) ≈ 7.07 > 1 → anomaly with baseline_n 3 (earlier values).
    frame = events(*series(10.0, 20.0, 15.0, 40.0))
    got = matches("rule e from m anomaly ema(cpu, alpha = 0.5, threshold = 1.0) warmup 2\n", frame, *STATS)
    assert len(got) == 1
    (g,) = got
    assert (g["ts"], g["method"], g["baseline_n"], g["baseline_mean"]) == (3, "ema", 3, 15.0)
    assert math.isclose(g["baseline_std"], math.sqrt(12.5))
    assert math.isclose(g["score"], 25 / math.sqrt(12.5))


def test_ema_with_zero_variance_is_like_zscore() -> None:
    # warmup 1: 5 → m 5, v 0. 5: score 0 (x = m). 7: v still 0 → +inf.
    frame = events(*series(5.0, 5.0, 7.0))
    got = matches("rule e from m anomaly ema(cpu) warmup 1\n", frame, "ts", "score")
    assert got == [{"ts": 2, "score": math.inf}]


def test_anomaly_record_schema() -> None:
    frame = events(*series(5.0, 5.0, 7.0))
    out = replay("rule e from m anomaly zscore(cpu) warmup 2\n", frame).matches["e"]
    assert out.columns == [
        "rule",
        "ts",
        "severity",
        "host",
        "cpu",
        "n",
        "status",
        "score",
        "method",
        "baseline_n",
        "baseline_mean",
        "baseline_std",
    ]
    assert out.schema["score"] == pl.Float64 and out.schema["baseline_n"] == pl.Int64


def test_warmup_counts_values_in_the_baseline() -> None:
    # warmup 10 (default) with only 4 earlier values: nothing is scored.
    assert matches("rule z from m anomaly zscore(cpu)\n", events(*series(1.0, 1.0, 1.0, 1.0, 99.0))) == []


def test_score_exactly_at_threshold_is_not_an_anomaly() -> None:
    # Baseline [0, 0, 0, 2, 4]: mean 6/5 = 1.2, population variance
    # (3·1.44 + 0.64 + 7.84) / 5 = 2.56, std 1.6. x = 2: |2 − 1.2| / 1.6 = 0.5 exactly,
    # and 0.5 > 0.5 is false. (In floats 2 − 1.2 = 0.8000000000000000444 would tip it over:
    # the decision is made in exact arithmetic.)
    frame = events(*({"ts": i, "n": v} for i, v in enumerate([0, 0, 0, 2, 4, 2])))
    got = matches("rule z from m anomaly zscore(n, threshold = 0.5) warmup 1\n", frame, "ts", "n")
    # Earlier rows: 2 at ts 3 (baseline [0,0,0], std 0 → inf), 4 at ts 4 (mean 0.5,
    # std sqrt(0.75) ≈ 0.866, score ≈ 4.04); the last 2 is exactly on the threshold.
    assert got == [{"ts": 3, "n": 2}, {"ts": 4, "n": 4}]


def test_iqr_fence_with_interpolated_quartiles() -> None:
    # Baseline [1, 2, 4, 8]: q1 = 1 + 0.75·(2 − 1) = 1.75, q3 = 4 + 0.25·(8 − 4) = 5, iqr 3.25,
    # multiplier 0.5: upper fence 5 + 1.625 = 6.625. x = 6.625 is on it (no anomaly);
    # x = 9.875 is 3.25 past it: score 3.25 / 3.25 = 1.
    rule = "rule q from m anomaly iqr(cpu, multiplier = 0.5) baseline 4 warmup 4\n"
    assert matches(rule, events(*series(1.0, 2.0, 4.0, 8.0, 6.625))) == []
    got = matches(rule, events(*series(1.0, 2.0, 4.0, 8.0, 9.875)), "score", "baseline_q1", "baseline_q3")
    assert got == [{"score": 1.0, "baseline_q1": 1.75, "baseline_q3": 5.0}]
