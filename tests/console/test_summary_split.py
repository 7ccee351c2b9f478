"""The per-minute severity split behind the overview's chart (`per_minute[].by_severity`)."""

from __future__ import annotations

import json

from runtime.history import AlertRow, open_history

MIN = 60_000_000


def row(rule: str, severity: str, ts_us: int) -> AlertRow:
    return AlertRow(
        rule=rule,
        severity=severity,
        ts_us=ts_us,
        group="",
        key=f"k{ts_us}",
        record_json=json.dumps({"rule": rule}),
        silenced=None,
        test=False,
        channels=[],
    )


def test_minutes_by_severity_counts_each_minute_and_severity_once() -> None:
    h = open_history("memory")
    t0 = 1_800_000_000 * 1_000_000 // MIN * MIN
    h.add(
        [
            row("a", "high", t0 + 1),
            row("a", "high", t0 + 59_000_000),
            row("b", "critical", t0 + 2),
            row("b", "critical", t0 + MIN + 5),
            row("c", "low", t0 + 3 * MIN),
            row("c", "low", None),
        ]
    )
    got = h.minutes_by_severity(since_us=t0, until_us=t0 + 10 * MIN)
    assert got == [(t0, "critical", 1), (t0, "high", 2), (t0 + MIN, "critical", 1), (t0 + 3 * MIN, "low", 1)]
    # Sums agree with the summary's own per-minute series, filters included.
    _, series = h.summary(since_us=t0, until_us=t0 + 10 * MIN)
    totals: dict[int, int] = {}
    for m, _s, n in got:
        totals[m] = totals.get(m, 0) + n
    assert sorted(totals.items()) == series
    assert h.minutes_by_severity(since_us=t0, until_us=t0 + 10 * MIN, rule="b") == [(t0, "critical", 1), (t0 + MIN, "critical", 1)]
    assert h.minutes_by_severity(since_us=t0, until_us=t0 + 10 * MIN, severity="high") == [(t0, "high", 2)]
    _, only_high = h.summary(since_us=t0, until_us=t0 + 10 * MIN, severity="high")
    assert only_high == [(t0, 2)]
