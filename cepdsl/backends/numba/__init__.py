"""The Numba backend: compiled per-group state machines for pattern, absence and
anomaly rules (`executor_for`).  Filter, window and schedule rules live in
`cepdsl.backends.polars`.

Every kernel is specialised by dtype only (rule parameters are arguments) and
cached on disk, so loading many rules compiles each kernel once.
"""

from __future__ import annotations

from cepdsl.executor import Executor
from cepdsl.plan import RuleKind, RulePlan

__all__ = ["executor_for"]


def executor_for(rule: RulePlan) -> Executor:
    """The executor for a pattern, absence or anomaly rule."""
    if rule.kind is RuleKind.PATTERN:
        from cepdsl.backends.numba.pattern import PatternExecutor

        return PatternExecutor(rule)
    if rule.kind is RuleKind.ABSENT:
        from cepdsl.backends.numba.absence import AbsenceExecutor

        return AbsenceExecutor(rule)
    if rule.kind is RuleKind.ANOMALY:
        from cepdsl.backends.numba.anomaly import AnomalyExecutor

        return AnomalyExecutor(rule)
    raise NotImplementedError(f"rule {rule.id}: {rule.kind.value} rules are not run by the Numba backend")
