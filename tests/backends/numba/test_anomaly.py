"""Anomaly rules: hand-computed scores, edge cases, and numerical stability."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from harness import at, rule_of, run_batches

STREAM = "stream m (ts: timestamp, host: str, cpu: float)\n"


def frame(values: list[float | None], hosts: list[str] | None = None) -> pl.DataFrame:
    n = len(values)
    return pl.DataFrame(
        {"ts": [at(i) for i in range(n)], "host": hosts or ["h"] * n, "cpu": values},
        schema={"ts": pl.Datetime("us"), "host": pl.String, "cpu": pl.Float64},
    )


def run(method: str, values: list[float | None], extra: str = "", cuts: list[int] = (), hosts=None) -> pl.DataFrame:  # type: ignore[assignment]
    _, rule = rule_of(STREAM + f"rule a\n from m\n group by host\n anomaly {method} {extra}\n")
    return run_batches(rule, frame(values, hosts), cuts)


def test_zscore_scores_against_the_previous_values() -> None:
    vals = [10.0, 12.0, 10.0, 12.0, None, 30.0, 11.0]
    out = run("zscore(cpu, threshold = 3.0)", vals, "baseline 4 warmup 4")
    # baseline [10 12 10 12]: mean 11, std 1 → 30 scores 19; 11 then has baseline [12 10 12 30].
    assert out.select("cpu", "score", "baseline_n", "baseline_mean", "baseline_std", "method").rows() == [
        (30.0, 19.0, 4, 11.0, 1.0, "zscore")
    ]


def test_zscore_constant_baseline() -> None:
    out = run("zscore(cpu)", [0.1] * 5 + [0.1, 0.2], "baseline 5 warmup 5")
    assert out.select("cpu", "score", "baseline_std").rows() == [(0.2, math.inf, 0.0)]


def test_iqr_fences_and_scores() -> None:
    vals = [1.0, 2.0, 3.0, 4.0, 5.0, 20.0, -10.0]
    out = run("iqr(cpu, multiplier = 1.5)", vals, "baseline 5 warmup 5")
    # baseline 1..5: q1 2, q3 4, fences -1 and 7 → 20 is 13 past: score 6.5.
    # then baseline 2 3 4 5 20: q1 3, q3 5, fence 0 → -10 is 10 past: score 5.
    assert out.select("cpu", "score", "baseline_q1", "baseline_q3").rows() == [(20.0, 6.5, 2.0, 4.0), (-10.0, 5.0, 3.0, 5.0)]


def test_iqr_zero_spread_is_infinite_for_an_outlier() -> None:
    out = run("iqr(cpu)", [5.0] * 4 + [5.0, 6.0], "baseline 4 warmup 4")
    assert out.select("cpu", "score").rows() == [(6.0, math.inf)]


def test_ema_follows_the_recurrence() -> None:
    vals = [10.0, 11.0, 9.0, 10.0, 50.0]
    out = run("ema(cpu, alpha = 0.5, threshold = 3.0)", vals, "warmup 3")
    m, v = 10.0, 0.0
    for x in vals[1:4]:
        d = x - m
        m, v = m + 0.5 * d, 0.5 * (v + 0.5 * d * d)
    assert out.select("cpu", "baseline_n").rows() == [(50.0, 4)]
    assert out["baseline_mean"][0] == pytest.approx(m)
    assert out["baseline_std"][0] == pytest.approx(math.sqrt(v))
    assert out["score"][0] == pytest.approx(abs(50 - m) / math.sqrt(v))


def test_groups_have_their_own_baselines_and_any_split_agrees() -> None:
    rng = np.random.default_rng(7)
    n = 400
    hosts = [str(h) for h in rng.integers(0, 5, n)]
    vals = [float(x) for x in rng.normal(50, 5, n)]
    vals[300] = 500.0
    out = run("zscore(cpu, threshold = 4.0)", vals, "baseline 20 warmup 10", hosts=hosts)
    assert 500.0 in out["cpu"].to_list()
    for cuts in ([1], [17, 200], list(range(0, n, 37))):
        assert run("zscore(cpu, threshold = 4.0)", vals, "baseline 20 warmup 10", cuts, hosts).equals(out)


@pytest.mark.parametrize("method", ["zscore(cpu, threshold = 2.0)", "iqr(cpu, multiplier = 1.0)"])
def test_stable_near_1e9(method: str) -> None:
    """Values 1e9 ± small noise: compare the reported statistics with a two-pass numpy
    computation over the same baseline; a naive Σx² − (Σx)²/n would be off by ~100%."""
    rng = np.random.default_rng(3)
    n, base = 3000, 50
    vals = (1e9 + rng.normal(0, 0.5, n)).tolist()
    out = run(method, vals, f"baseline {base} warmup {base}")
    assert out.height > 10
    index = {t: i for i, t in enumerate(frame(vals)["ts"].to_list())}
    for row in out.iter_rows(named=True):
        i = index[row["ts"]]
        window = np.array(vals[i - base : i])
        if method.startswith("zscore"):
            assert row["baseline_mean"] == pytest.approx(window.mean(), rel=1e-15)
            assert row["baseline_std"] == pytest.approx(window.std(ddof=0), rel=1e-6)
            assert row["score"] == pytest.approx(abs(vals[i] - window.mean()) / window.std(), rel=1e-6)
        else:
            q1, q3 = np.quantile(window, [0.25, 0.75])
            assert (row["baseline_q1"], row["baseline_q3"]) == (q1, q3)


def test_state_roundtrip_mid_stream() -> None:
    vals = [float(x % 7) for x in range(60)] + [100.0]
    for method in ("zscore(cpu)", "iqr(cpu)", "ema(cpu)"):
        whole = run(method, vals, "baseline 10 warmup 5")
        _, rule = rule_of(STREAM + f"rule a\n from m\n group by host\n anomaly {method} baseline 10 warmup 5\n")
        assert whole.height >= 1
        assert run_batches(rule, frame(vals), [20, 45], snapshot_at=1).equals(whole)
        assert run_batches(rule, frame(vals), [20, 45], snapshot_at=2).equals(whole)


@pytest.mark.parametrize(
    "method", ["zscore(cpu, threshold = 1.0)", "iqr(cpu, multiplier = 0.5)", "ema(cpu, alpha = 0.3, threshold = 1.0)"]
)
def test_many_anomalies_in_one_batch_equal_the_interpreter(method: str) -> None:
    """Hundreds of anomalies in one batch: the kernels' output grows (between runs of rows)
    and keeps every one, in order, as the reference interpreter has them; any split agrees."""
    from cepdsl import interpret

    rng = np.random.default_rng(11)
    n = 3000
    hosts = [str(h) for h in rng.integers(0, 3, n)]
    vals = [float(x) for x in rng.standard_cauchy(n)]  # heavy tails: many outliers
    program, rule = rule_of(STREAM + f"rule a\n from m\n group by host\n anomaly {method} baseline 30 warmup 5\n")
    data = frame(vals, hosts)
    want = interpret.run(program, {"m": data})["a"]
    assert want.height > 100
    for cuts in ([], [1, 1500], list(range(0, n, 250))):
        got = run_batches(rule, data, cuts)
        assert got.height == want.height
        assert got["cpu"].to_list() == want["cpu"].to_list()
        assert np.allclose(got["score"].to_numpy(), want["score"].to_numpy(), rtol=1e-9, equal_nan=True)


@pytest.mark.parametrize("method", ["zscore(cpu)", "iqr(cpu)", "ema(cpu, alpha = 0.3)"])
def test_seeded_baseline_is_what_the_stream_would_have_left(method: str) -> None:
    """The executor's baseline accessors (the HTTP API's anomaly-status/reset): a group
    seeded with values holds the state that streaming them leaves, and scores alike."""
    from cepdsl.backends import executor_for

    vals = [float(x % 7) for x in range(12)]
    _, rule = rule_of(STREAM + f"rule a\n from m\n group by host\n anomaly {method} baseline 10 warmup 5\n")
    streamed, seeded = executor_for(rule), executor_for(rule)
    run_batches(rule, frame(vals, ["a"] * 6 + ["h"] * 6), executor=streamed)
    run_batches(rule, frame([1.0], ["a"]), executor=seeded)  # "h" is slot 1 in both
    assert seeded.baseline_values(1) is None and seeded.ema_baseline(1) is None  # no room for slot 1 yet
    seeded.seed_baseline(1, vals[6:])
    assert seeded.baseline_values(1) == streamed.baseline_values(1)
    assert seeded.ema_baseline(1) == streamed.ema_baseline(1)
    w = seeded.width
    assert np.array_equal(seeded.st[w : 2 * w], streamed.st[w : 2 * w])
    ema = seeded.ema_baseline(1)
    if method.startswith("ema"):
        assert seeded.baseline_values(1) is None and ema is not None and ema[0] == 6
    else:
        assert seeded.baseline_values(1) == vals[6:] and ema is None
    seeded.reset_baseline(1)
    assert seeded.baseline_values(1) in ([], None) and not seeded.st[w : 2 * w].any()
