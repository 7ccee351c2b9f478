"""Which executor runs which plan node: one table, `EXECUTORS`.

Filters, windows and schedules run on Polars expressions (`cepdsl.backends.polars`);
patterns, absence, anomaly and the decomposable numeric windows on Numba kernels
(`cepdsl.backends.numba`).  The two backends never import each other: this table is
the only place that knows both.  Entries name their module and class as text, so a
backend is imported on first use and `cep check` never pays for Numba.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cepdsl.plan import RulePlan

if TYPE_CHECKING:
    from cepdsl.executor import Executor


@dataclass(frozen=True)
class Route:
    """One way to run a plan node: `module:Class` of `backend`, taken when `accepts` is
    empty or names a `module:function` that returns something other than None for the
    rule (`kernel_fields`: the fields the kernels aggregate); the first route taken wins."""

    backend: str  # "polars" | "numba"
    executor: str
    accepts: str = ""

    def load(self, ref: str) -> object:
        module, name = ref.split(":")
        return getattr(importlib.import_module(f"cepdsl.backends.{self.backend}.{module}"), name)

    def takes(self, rule: RulePlan) -> bool:
        return not self.accepts or self.load(self.accepts)(rule) is not None  # type: ignore[operator]


#: Plan node (`node_of`) → routes, in order of preference.
EXECUTORS: dict[str, tuple[Route, ...]] = {
    "filter": (Route("polars", "filters:FilterExecutor"),),
    # Decomposable numeric aggregates: Numba kernels over integer group codes (3-10x
    # faster than the group_by path; docs/windows.md has the figures).
    "window tumbling": (
        Route("numba", "window_kernels:KernelPaneExecutor", accepts="window_kernels:kernel_fields"),
        Route("polars", "pane_windows:TumblingExecutor"),
    ),
    "window sliding": (
        Route("numba", "window_kernels:KernelPaneExecutor", accepts="window_kernels:kernel_fields"),
        Route("polars", "pane_windows:SlidingExecutor"),
    ),
    "window session": (Route("polars", "sessions:SessionExecutor"),),
    "window count": (Route("polars", "count_windows:CountWindowExecutor"),),
    "schedule": (Route("polars", "schedule:ScheduleExecutor"),),
    "pattern": (Route("numba", "pattern:PatternExecutor"),),
    "absent": (Route("numba", "absence:AbsenceExecutor"),),
    "anomaly": (Route("numba", "anomaly:AnomalyExecutor"),),
}


def node_of(rule: RulePlan) -> str:
    """The table key of a rule: its kind, and for windows the window kind."""
    if rule.window is not None:
        return f"{rule.kind.value} {rule.window.kind}"
    return rule.kind.value


def executor_for(rule: RulePlan, backend: str | None = None) -> Executor:
    """A fresh executor for `rule`: the first route of its plan node that takes it,
    or the first of `backend`'s (tests drive one backend's executors on their own)."""
    node = node_of(rule)
    routes = [r for r in EXECUTORS.get(node, ()) if backend is None or r.backend == backend]
    for route in routes:
        if route.takes(rule):
            return route.load(route.executor)(rule)  # type: ignore[operator]
    who = f"the {backend} backend does not run" if backend else "no backend runs"
    raise NotImplementedError(f"rule {rule.id}: {who} {node} rules")
