"""Executors by rule kind: filters, windows and schedules run on Polars expressions,
patterns, absence and anomaly on Numba state machines.  Backends are imported
on first use so `cep check` never pays for Numba."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cepdsl.plan import RuleKind, RulePlan

if TYPE_CHECKING:
    from cepdsl.executor import Executor

POLARS_KINDS = frozenset({RuleKind.FILTER, RuleKind.WINDOW, RuleKind.SCHEDULE})
NUMBA_KINDS = frozenset({RuleKind.PATTERN, RuleKind.ABSENT, RuleKind.ANOMALY})


def executor_for(rule: RulePlan) -> Executor:
    """A fresh executor for `rule`, from the backend that runs its kind."""
    if rule.kind in POLARS_KINDS:
        from cepdsl.backends.polars import executor_for as polars_executor_for

        return polars_executor_for(rule)
    if rule.kind in NUMBA_KINDS:
        from cepdsl.backends.numba import executor_for as numba_executor_for

        return numba_executor_for(rule)
    raise NotImplementedError(f"rule {rule.id}: no backend runs {rule.kind.value} rules")
