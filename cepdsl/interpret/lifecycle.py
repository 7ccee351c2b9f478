"""The alert lifecycle (LANGUAGE.md §9.3), row by row, straight from the text.

Every evaluation of every group is listed (the whole window grid, every tick,
every scored row, every absence deadline and row), each with whether the
condition holds and the record of that evaluation; then each group's list is
walked once with the episode rules of §9.3.  No shortcuts: this is the oracle
the engine's `cepdsl.engine.lifecycle` is tested against.

Replay (§6): the watermark ends at the largest event time seen on the stream
(before `where`); window ends and ticks up to it are evaluations; beyond it, the
windows the final flush closes (those holding rows) are.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cepdsl.interpret.absence import absence_matches
from cepdsl.interpret.aggregates import aggregate_all
from cepdsl.interpret.anomaly import group_scores
from cepdsl.interpret.rows import TIME, Match, Row, StreamRows, group_key, group_order, partition
from cepdsl.interpret.schedule import cron_ticks
from cepdsl.interpret.values import eval_expr, is_true
from cepdsl.plan import RuleKind, RulePlan

#: (time, holds, record) of one evaluation of one group
Evaluation = tuple[int, bool, dict[str, Any]]


def _window_evaluation(
    rule: RulePlan, group: dict[str, Any], start: int, end: int, members: list[Row], empty_tick: bool = False
) -> Evaluation:
    """A window or tick with `having` on its aggregates; a window without rows of its group has
    null aggregates, an ungrouped tick without rows those of §5.3 (`count()` 0)."""
    if members or empty_tick:
        aggs = aggregate_all(rule.aggregates, members)
    else:
        aggs = {a.name: None for a in rule.aggregates}
    holds = rule.having is None or is_true(eval_expr(rule.having, group, aggs))
    return end, holds, {"ts": end, **group, "window_start": start, "window_end": end, **aggs}


def _grid_ends(rule: RulePlan, after: int, upto: int) -> list[int]:
    """Window ends E with after < E ≤ upto: `kD` (tumbling) or `kS + D` (sliding)."""
    spec = rule.window
    assert spec is not None and spec.size_us
    size = spec.size_us
    every = spec.every_us if spec.kind == "sliding" and spec.every_us else size
    k = (after - size) // every + 1  # smallest k with kS + D > after
    out = []
    while k * every + size <= upto:
        out.append(k * every + size)
        k += 1
    return out


def _window_evaluations(rule: RulePlan, rows: list[Row], stream: StreamRows) -> dict[tuple, list[Evaluation]]:
    max_ts = stream.max_ts
    if max_ts is None:
        return {}
    spec = rule.window
    assert spec is not None and spec.size_us
    size = spec.size_us
    groups = partition(rows, rule.group_keys)
    fields = {key: {k: grows[0][k] for k in rule.group_keys} for key, grows in groups.items()}
    # The windows the final flush closes: every non-empty window ending after the watermark.
    flushed = sorted({e for r in rows for e in _grid_ends(rule, r[TIME], r[TIME] + size) if e > max_ts})
    out: dict[tuple, list[Evaluation]] = {}
    for key, grows in groups.items():
        first = grows[0][TIME]
        evals = []
        # Each window end ≤ the watermark, once the group has had a row; then the flushed ones.
        for end in [*_grid_ends(rule, first, max_ts), *[e for e in flushed if e > first]]:
            members = [r for r in grows if end - size <= r[TIME] < end]
            e = _window_evaluation(rule, fields[key], end - size, end, members)
            if not members:
                e = (e[0], False, e[2])  # a window with no rows of the group does not hold
            evals.append(e)
        out[key] = evals
    return out


def _schedule_evaluations(rule: RulePlan, rows: list[Row], stream: StreamRows) -> dict[tuple, list[Evaluation]]:
    spec = rule.schedule
    assert spec is not None
    first_ts, max_ts = stream.first_ts, stream.max_ts
    out: dict[tuple, list[Evaluation]] = {}
    if first_ts is None or max_ts is None:
        return out
    for tick in cron_ticks(spec.cron, first_ts, max_ts):
        start = tick - spec.over_us
        members = [r for r in rows if start <= r[TIME] < tick]
        if not rule.group_keys:
            out.setdefault((), []).append(_window_evaluation(rule, {}, start, tick, members, empty_tick=True))
            continue
        seen = partition([r for r in rows if r[TIME] < tick], rule.group_keys)  # groups that have had a row
        for key, grows in seen.items():
            group = {k: grows[0][k] for k in rule.group_keys}
            mine = [r for r in members if group_key(r, rule.group_keys) == key]
            e = _window_evaluation(rule, group, start, tick, mine)
            out.setdefault(key, []).append(e if mine else (e[0], False, e[2]))
    return out


def _anomaly_evaluations(rule: RulePlan, rows: list[Row], stream: StreamRows) -> dict[tuple, list[Evaluation]]:
    assert rule.anomaly is not None
    return {
        key: [(rec["ts"], anomalous, rec) for _row, rec, anomalous in group_scores(rule.anomaly, grows)]
        for key, grows in partition(rows, rule.group_keys).items()
    }


def _absence_evaluations(rule: RulePlan, rows: list[Row], stream: StreamRows) -> dict[tuple, list[Evaluation]]:
    out: dict[tuple, list[tuple[int, int, bool, dict[str, Any]]]] = {}
    for m in absence_matches(rule, rows, stream.max_ts):  # each deadline firing holds
        out.setdefault(m.key, []).append((m.record["ts"], 1, True, m.record))
    for r in rows:  # each row of the group does not
        rec = {k: r[k] for k in rule.group_keys}
        rec.update(ts=r[TIME], last_seen=r[TIME])
        out.setdefault(group_key(r, rule.group_keys), []).append((r[TIME], 0, False, rec))
    return {k: [(t, h, rec) for t, _o, h, rec in sorted(v, key=lambda e: (e[0], e[1]))] for k, v in out.items()}


#: Each kind's evaluations by group, from the rows that pass `where` and the stream's bounds.
_EVALUATIONS: dict[RuleKind, Callable[[RulePlan, list[Row], StreamRows], dict[tuple, list[Evaluation]]]] = {
    RuleKind.WINDOW: _window_evaluations,
    RuleKind.SCHEDULE: _schedule_evaluations,
    RuleKind.ANOMALY: _anomaly_evaluations,
    RuleKind.ABSENT: _absence_evaluations,
}


def episodes(rule: RulePlan, evaluations: list[Evaluation]) -> list[dict[str, Any]]:
    """§9.3 over one group's evaluations in time order: firing and resolved records."""
    out: list[dict[str, Any]] = []
    hold_for = rule.for_us or 0
    after = (rule.resolve.after_us or 0) if rule.resolve is not None else 0
    t0: int | None = None  # first holding evaluation of the episode under way
    fired = False
    t1: int | None = None  # first non-holding evaluation since it fired
    for t, holds, record in evaluations:
        if holds:
            t1 = None
            if t0 is None:
                t0 = t
            if not fired and t - t0 >= hold_for:
                fired = True
                out.append({**record, "state": "firing", "firing_since": t0, "resolved_at": None})
        elif t0 is not None:
            if not fired:
                t0 = None  # it must hold at every evaluation until `for` has passed
                continue
            if t1 is None:
                t1 = t
            if t - t1 >= after:
                if rule.resolve is not None:
                    out.append({**record, "state": "resolved", "firing_since": t0, "resolved_at": t})
                t0, fired, t1 = None, False, None
    return out


def lifecycle_matches(rule: RulePlan, stream: StreamRows, rows: list[Row]) -> list[Match]:
    """The records of a rule with `for`/`resolve`, before throttle, in output order."""
    evaluations = _EVALUATIONS.get(rule.kind)
    if evaluations is None:
        raise ValueError(f"rule {rule.id}: `for`/`resolve` on a {rule.kind.value} rule")
    out = []
    for key, group_evals in evaluations(rule, rows, stream).items():
        for record in episodes(rule, group_evals):
            out.append(Match((record["ts"], group_order(key)), key, record))
    return sorted(out, key=lambda m: m.order)


def throttle_firing(matches: list[Match], throttle_us: int | None) -> tuple[list[dict[str, Any]], int]:
    """Throttle on firing records only (§9.3): a repeat stays, marked `suppressed`; a resolved
    record is suppressed iff its firing record was.  Returns (records, number suppressed)."""
    last: dict[tuple, int] = {}
    held: dict[tuple, bool] = {}
    records, suppressed = [], 0
    for m in matches:
        rec = dict(m.record)
        episode = (m.key, rec["firing_since"])
        if rec["state"] == "firing":
            prev = last.get(m.key)
            quiet = throttle_us is not None and prev is not None and m.ts - throttle_us < prev <= m.ts
            if quiet:
                suppressed += 1
            else:
                last[m.key] = m.ts
            held[episode] = quiet
            rec["suppressed"] = quiet
        else:
            rec["suppressed"] = held.pop(episode, False)
        records.append(rec)
    return records, suppressed


__all__ = ["episodes", "lifecycle_matches", "throttle_firing"]
