"""The reference interpreter: every rule, row by row, straight from LANGUAGE.md.

This is the oracle the vectorized backends are tested against, so it favours
being obviously right over being fast: pure Python over row dicts, Polars only
to read the input frames and to build the output frames. It implements replay
(§6): each stream's rows ordered by event time (ties in input order), rows
with a null time skipped, and at the end of input open windows and sessions
closed, schedule ticks and absence deadlines fired only up to the largest
event time seen on the stream.

    from cepdsl.interpret import run
    matches = run(program, {"metrics": frame})   # rule id -> frame of match records

Values inside the interpreter (see `eval_expr`) are plain Python; timestamps
are int microseconds since the epoch (UTC). Choices LANGUAGE.md leaves open
are written down in docs/semantics.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import polars as pl

from cepdsl.interpret.absence import absence_matches
from cepdsl.interpret.anomaly import anomaly_matches
from cepdsl.interpret.filters import filter_matches
from cepdsl.interpret.joins import join_rows, table_lookups
from cepdsl.interpret.lifecycle import lifecycle_matches, throttle_firing
from cepdsl.interpret.patterns import pattern_matches
from cepdsl.interpret.rows import Match, StreamRows, build_frame, read_stream
from cepdsl.interpret.schedule import schedule_matches
from cepdsl.interpret.silences import silence_of
from cepdsl.interpret.throttle import apply_throttle
from cepdsl.interpret.values import eval_expr, is_true
from cepdsl.interpret.windows import window_matches
from cepdsl.plan import Program, RuleKind, RulePlan

__all__ = ["InterpretResult", "eval_expr", "run", "run_detailed", "rule_matches"]


@dataclass
class InterpretResult:
    matches: dict[str, pl.DataFrame] = field(default_factory=dict)  # rule id -> match records
    suppressed: dict[str, int] = field(default_factory=dict)  # rule id -> matches held back by throttle


def rule_matches(rule: RulePlan, stream: StreamRows) -> list[Match]:
    """Every match of `rule` before throttling, in output order (by ts; see docs/semantics.md for ties)."""
    if rule.kind is not RuleKind.FILTER and rule.stream.time_field is None:
        raise ValueError(f"rule {rule.id}: a {rule.kind.value} rule needs a stream with a time field")
    rows = stream.rows
    if rule.where is not None:
        rows = [r for r in rows if is_true(eval_expr(rule.where, r))]
    if rule.kind is RuleKind.FILTER:
        found = filter_matches(rule, rows)
    elif rule.kind is RuleKind.WINDOW:
        found = window_matches(rule, rows)
    elif rule.kind is RuleKind.SCHEDULE:
        found = schedule_matches(rule, rows, stream.first_ts, stream.max_ts)
    elif rule.kind is RuleKind.PATTERN:
        found = pattern_matches(rule, rows)
    elif rule.kind is RuleKind.ABSENT:
        found = absence_matches(rule, rows, stream.max_ts)
    elif rule.kind is RuleKind.ANOMALY:
        found = anomaly_matches(rule, rows)
    else:
        raise NotImplementedError(f"rule kind {rule.kind}")
    return sorted(found, key=lambda m: m.order)  # stable: equal keys keep generation order


def run_detailed(
    program: Program, data: Mapping[str, pl.DataFrame], tables: Mapping[str, pl.DataFrame] | None = None
) -> InterpretResult:
    """Replay `data` (stream name -> frame; a stream left out has no rows) through every rule.
    `tables`: lookup-table rows by name (default: read from the table files)."""
    streams = {s.name: read_stream(s, data.get(s.name)) for s in program.streams}
    lookups = table_lookups(program, tables)
    result = InterpretResult()
    for rule in program.rules:
        stream = streams.get(rule.stream.name) or read_stream(rule.source_stream, data.get(rule.stream.name))
        if rule.joins:
            stream = join_rows(rule, stream, lookups)
        if rule.lifecycle:  # §9.3: one record per episode
            rows = [r for r in stream.rows if rule.where is None or is_true(eval_expr(rule.where, r))]
            records, suppressed = throttle_firing(lifecycle_matches(rule, stream, rows), rule.throttle_us)
            if program.silences:  # a firing record by its own time; a resolved one as its firing (§9.3)
                silenced: dict[tuple, str | None] = {}
                for rec in records:
                    episode = (tuple(rec.get(k) for k in rule.group_keys), rec["firing_since"])
                    if rec["state"] == "firing":
                        rec["silenced"] = silenced[episode] = silence_of(rule, rec, list(program.silences))
                    else:
                        rec["silenced"] = silenced.pop(episode, None)
            result.matches[rule.id] = build_frame(rule, records)
            result.suppressed[rule.id] = suppressed
            continue
        emitted, suppressed = apply_throttle(rule_matches(rule, stream), rule.throttle_us)
        if program.silences:
            for m in emitted:
                m.record["silenced"] = silence_of(rule, m.record, list(program.silences))
        result.matches[rule.id] = build_frame(rule, [m.record for m in emitted])
        result.suppressed[rule.id] = suppressed
    return result


def run(
    program: Program, data: Mapping[str, pl.DataFrame], tables: Mapping[str, pl.DataFrame] | None = None
) -> dict[str, pl.DataFrame]:
    """Replay `data` through every rule of `program`: rule id -> frame with exactly `rule.output`."""
    return run_detailed(program, data, tables).matches
