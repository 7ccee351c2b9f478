"""Stream plans for the source tests."""

from __future__ import annotations

from cepdsl.plan import FieldPlan, StreamPlan
from cepdsl.types import Type


def plan(name: str = "metrics", time_field: str | None = "ts", **fields: str) -> StreamPlan:
    """`plan(ts="timestamp", cpu="float")` → a StreamPlan with those fields in that order."""
    return StreamPlan(name, tuple(FieldPlan(n, Type(t)) for n, t in fields.items()), time_field)


METRICS = plan(ts="timestamp", host="str", cpu="float", memory="float", status="str", latency_ms="float", event_type="str")
