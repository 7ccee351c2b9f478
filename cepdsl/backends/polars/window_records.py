"""Window and schedule match records: `having`, the §7 columns, the output order."""

from __future__ import annotations

import polars as pl

from cepdsl.executor import finalize
from cepdsl.kernels.polars_expressions import compile_predicate
from cepdsl.plan import RulePlan

START, END = "window_start", "window_end"


def window_records(rule: RulePlan, frame: pl.DataFrame, order: list[str] | None = None) -> pl.DataFrame:
    """`frame` holds the group keys, `window_start`/`window_end` (int µs) and every
    aggregate column; keep the rows where `having` is true and order them by
    (ts = window_end, window_start, group key), null keys first (as the interpreter),
    or by the columns `order` names."""
    if frame.height == 0:
        return rule.empty_output()
    if rule.having is not None:
        frame = frame.filter(compile_predicate(rule.having))
        if frame.height == 0:
            return rule.empty_output()
    keys = list(rule.group_keys)
    frame = frame.sort(order or [END, START, *keys], nulls_last=False, maintain_order=True)
    return finalize(rule, frame.with_columns(pl.col(END).alias("ts")))


def concat_records(rule: RulePlan, parts: list[pl.DataFrame]) -> pl.DataFrame:
    parts = [p for p in parts if p.height]
    if not parts:
        return rule.empty_output()
    return parts[0] if len(parts) == 1 else pl.concat(parts)
