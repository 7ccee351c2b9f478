"""The Polars backend: plan expressions as Polars expressions, and the executors for
filter, window and schedule rules (`executor_for`)."""

from __future__ import annotations

from cepdsl.executor import Executor
from cepdsl.backends.polars.expressions import (
    UnsupportedExpression,
    compile_expr,
    compile_many,
    compile_predicate,
    evaluate_many,
)
from cepdsl.plan import RuleKind, RulePlan

__all__ = [
    "UnsupportedExpression",
    "compile_expr",
    "compile_many",
    "compile_predicate",
    "evaluate_many",
    "executor_for",
]


def executor_for(rule: RulePlan) -> Executor:
    """The executor for a filter, window or schedule rule.

    Pattern, absence and anomaly rules live in `cepdsl.backends.numba`."""
    if rule.kind is RuleKind.FILTER:
        from cepdsl.backends.polars.filters import FilterExecutor

        return FilterExecutor(rule)
    if rule.kind is RuleKind.WINDOW:
        from cepdsl.backends.polars.windows import window_executor

        return window_executor(rule)
    if rule.kind is RuleKind.SCHEDULE:
        from cepdsl.backends.polars.schedule import ScheduleExecutor

        return ScheduleExecutor(rule)
    raise NotImplementedError(f"rule {rule.id}: {rule.kind.value} rules are not run by the Polars backend")
