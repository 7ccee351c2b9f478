"""The seed design's filter: a per-event Python loop over nested dict conditions
(JSON rules like {"and": [{"field": "cpu", "op": ">", "value": 80}, ...]})."""

from __future__ import annotations

import operator
from collections.abc import Iterable
from typing import Any

OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq, "!=": operator.ne}

#: The benchmark's 5-condition rule in the seed's JSON form.
RULE = {
    "or": [
        {
            "and": [
                {"field": "cpu", "op": ">", "value": 80},
                {"field": "memory", "op": ">", "value": 70},
                {"not": {"field": "status", "op": "==", "value": "healthy"}},
            ]
        },
        {
            "and": [
                {"field": "latency_ms", "op": ">", "value": 500},
                {"field": "event_type", "op": "==", "value": "metric"},
            ]
        },
    ]
}


def matches(cond: dict[str, Any], event: dict[str, Any]) -> bool:
    if "and" in cond:
        return all(matches(c, event) for c in cond["and"])
    if "or" in cond:
        return any(matches(c, event) for c in cond["or"])
    if "not" in cond:
        return not matches(cond["not"], event)
    v = event.get(cond["field"])
    return v is not None and OPS[cond["op"]](v, cond["value"])


def run(events: Iterable[dict[str, Any]], rule: dict[str, Any] = RULE) -> list[dict[str, Any]]:
    return [e for e in events if matches(rule, e)]
