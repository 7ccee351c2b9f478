"""Window rules (LANGUAGE.md §5.2): `where` → `group by` → `window` → `having`.

Every window is epoch-aligned and `[start, end)`. Windows are enumerated from
the rows they hold, which is exactly "every non-empty window": an empty window
never emits, so it never needs to exist here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cepdsl.interpret.aggregates import aggregate_all
from cepdsl.interpret.rows import SEQ, TIME, Match, Row, group_order, partition
from cepdsl.interpret.values import eval_expr, is_true
from cepdsl.plan import RulePlan


def judge_window(
    rule: RulePlan, group: Mapping[str, Any], start: int, end: int, rows: Sequence[Row], ts: int
) -> dict[str, Any] | None:
    """The record of one window if `having` holds (no `having`: always)."""
    aggs = aggregate_all(rule.aggregates, rows)
    if rule.having is not None and not is_true(eval_expr(rule.having, group, aggs)):
        return None
    return {"ts": ts, **group, "window_start": start, "window_end": end, **aggs}


def _group_fields(rule: RulePlan, rows: Sequence[Row]) -> dict[str, Any]:
    # The group's own values (a NaN key keeps its NaN), taken from its first row.
    return {k: rows[0][k] for k in rule.group_keys}


def _window_match(rule: RulePlan, key: tuple[Any, ...], record: dict[str, Any]) -> Match:
    # Ordered by ts, then window_start, then group key.
    return Match((record["ts"], record["window_start"], group_order(key)), key, record)


def _time_windows(rule: RulePlan, rows: list[Row], bounds: Any) -> list[Match]:
    """Windows given by `bounds(t) -> [(start, end), ...]` (every window holding t)."""
    out: list[Match] = []
    for key, group_rows in partition(rows, rule.group_keys).items():
        fields = _group_fields(rule, group_rows)
        windows: dict[tuple[int, int], list[Row]] = {}
        for row in group_rows:
            for se in bounds(row[TIME]):
                windows.setdefault(se, []).append(row)
        for (start, end), members in windows.items():
            record = judge_window(rule, fields, start, end, members, end)
            if record is not None:
                out.append(_window_match(rule, key, record))
    return out


def tumbling_bounds(t: int, size: int) -> list[tuple[int, int]]:
    k = t // size  # floor division: correct before the epoch too
    return [(k * size, (k + 1) * size)]


def sliding_bounds(t: int, size: int, every: int) -> list[tuple[int, int]]:
    """Every `[kS, kS + D)` with kS ≤ t < kS + D, including windows that start before the data."""
    first = (t - size) // every + 1  # smallest k with kS + D > t
    last = t // every  # largest k with kS ≤ t
    return [(k * every, k * every + size) for k in range(first, last + 1)]


def _sessions(rule: RulePlan, rows: list[Row], gap: int) -> list[Match]:
    out: list[Match] = []
    for key, group_rows in partition(rows, rule.group_keys).items():
        fields = _group_fields(rule, group_rows)
        sessions: list[list[Row]] = []
        for row in group_rows:
            # A gap of G or more starts a new session (a gap of exactly G included).
            if not sessions or row[TIME] - sessions[-1][-1][TIME] >= gap:
                sessions.append([])
            sessions[-1].append(row)
        for members in sessions:
            start, end = members[0][TIME], members[-1][TIME] + gap
            record = judge_window(rule, fields, start, end, members, end)
            if record is not None:
                out.append(_window_match(rule, key, record))
    return out


def _last_n(rule: RulePlan, rows: list[Row], n: int) -> list[Match]:
    out: list[Match] = []
    for key, group_rows in partition(rows, rule.group_keys).items():
        fields = _group_fields(rule, group_rows)
        for i, row in enumerate(group_rows):
            members = group_rows[max(0, i - n + 1) : i + 1]
            start, end = members[0][TIME], row[TIME]
            record = judge_window(rule, fields, start, end, members, end)
            if record is not None:
                # Ordered by ts, then the input order of the row closing the window: `last N`
                # matches are due with their row, so streaming can emit them no other way.
                out.append(Match((record["ts"], row[SEQ]), key, record))
    return out


def window_matches(rule: RulePlan, rows: list[Row]) -> list[Match]:
    """All matches of a window rule over rows that passed `where`, in replay order."""
    spec = rule.window
    assert spec is not None
    if spec.kind == "tumbling":
        size = spec.size_us
        assert size
        return _time_windows(rule, rows, lambda t: tumbling_bounds(t, size))
    if spec.kind == "sliding":
        size, every = spec.size_us, spec.every_us
        assert size and every
        return _time_windows(rule, rows, lambda t: sliding_bounds(t, size, every))
    if spec.kind == "session":
        assert spec.gap_us
        return _sessions(rule, rows, spec.gap_us)
    if spec.kind == "count":
        assert spec.count
        return _last_n(rule, rows, spec.count)
    raise NotImplementedError(f"window kind {spec.kind!r}")
