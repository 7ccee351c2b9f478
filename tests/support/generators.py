"""Hypothesis strategies for streams and rules (as `.cep` text) used by the differential tests."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
from hypothesis import strategies as st

T0 = datetime(2024, 1, 1)  # midnight: cron ticks and epoch-aligned windows line up with it
STREAM_DECL = "stream s (ts: timestamp, g: str, x: float, n: int)\n"
STREAM_SCHEMA = {"ts": pl.Datetime("us"), "g": pl.String, "x": pl.Float64, "n": pl.Int64}


@st.composite
def streams(draw: st.DrawFn, max_rows: int = 60, null_times: bool = True) -> pl.DataFrame:
    """In time order, with ties and duplicates (steps of 0), gaps (long steps), rows on
    window boundaries (steps that are multiples of 5 s from a minute start) and nulls."""
    n = draw(st.integers(0, max_rows))
    steps = draw(st.lists(st.sampled_from([0, 0, 1, 2, 5, 5, 10, 30, 59, 60, 300]), min_size=n, max_size=n))
    start = draw(st.sampled_from([0, 1, 55]))
    t, ts = start, []
    for s in steps:
        t += s
        ts.append(T0 + timedelta(seconds=t))
    if null_times and n:
        holes = draw(st.lists(st.integers(0, n - 1), max_size=2))
        for i in holes:
            ts[i] = None
    frame = pl.DataFrame(
        {
            "ts": ts,
            "g": draw(st.lists(st.sampled_from(["a", "b", "c", None]), min_size=n, max_size=n)),
            "x": draw(st.lists(st.one_of(st.none(), st.integers(-3, 9).map(float), st.floats(0, 5)), min_size=n, max_size=n)),
            "n": draw(st.lists(st.one_of(st.none(), st.integers(-2, 6)), min_size=n, max_size=n)),
        },
        schema=STREAM_SCHEMA,
    )
    # Duplicates: the same row twice in a row.
    if n and draw(st.booleans()):
        i = draw(st.integers(0, n - 1))
        frame = pl.concat([frame[: i + 1], frame[i : i + 1], frame[i + 1 :]])
    return frame


WHERES = [
    "",
    "x > 2",
    "n % 2 == 0",
    'g == "a"',
    "x is null",
    "not (x > 1) or n in [1, 2, null]",
    'g in ["a", null] and x >= 0',
    "x / n > 0.5",
    # Predicates reading no column (issue 12's fuzzing: `"a" in [...]` crashed the engine).
    '"a" in ["a", "b"]',
    'not ("a" in ["x"]) and x > 1',
    "1 in [2, null]",
]
HAVINGS = [
    "",
    "count() >= 2",
    "avg(x) > 2",
    "sum(n) >= 3",
    "max(x) - min(x) > 1",
    "std(x) > 0.5",
    "percentile(x, 90) > 3",
    "distinct(g) >= 2",
    "count(x) >= 1 and min(n) <= 1",
]
WINDOWS = [
    "window tumbling 10s",
    "window tumbling 1m",
    "window sliding 30s every 10s",
    "window sliding 1m every 20s",
    "window sliding 10s every 10s",
    "window session gap 20s",
    "window session gap 1m",
    "window last 1 events",
    "window last 3 events",
    'schedule "* * * * *" over 30s',
    'schedule "*/2 * * * *" over 5m',
]


@st.composite
def window_rules(draw: st.DrawFn) -> str:
    """One rule over stream `s`: a filter, or a window/schedule rule, with or without
    `where`, `group by`, `having` and `throttle`."""
    parts = ["rule r from s"]
    where = draw(st.sampled_from(WHERES))
    if where:
        parts.append(f"where {where}")
    kind = draw(st.sampled_from(["filter", *WINDOWS]))
    grouped = draw(st.booleans())
    if kind == "filter":
        if grouped and draw(st.booleans()):
            parts.append("group by g")
    else:
        if grouped:
            parts.append("group by g")
        parts.append(kind)
        having = draw(st.sampled_from(HAVINGS))
        if having:
            parts.append(f"having {having}")
    throttle = draw(st.sampled_from(["", "", "throttle 10s", "throttle 1m"]))
    if throttle:
        parts.append(throttle)
    return STREAM_DECL + "\n  ".join(parts) + "\n"


@st.composite
def cuts(draw: st.DrawFn, height: int) -> list[int]:
    """Sorted batch boundaries inside [0, height]."""
    if height == 0:
        return []
    return sorted(set(draw(st.lists(st.integers(1, height), max_size=6))))
