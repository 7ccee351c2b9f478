"""Building plans by hand (and from `.cep` text once the front end is there)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cepdsl.plan import (
    FieldPlan,
    Program,
    RuleKind,
    RulePlan,
    StreamPlan,
    TAgg,
    TBinary,
    TExpr,
    TField,
    TLit,
    WindowSpec,
    aggregate_name,
    aggregate_type,
    output_columns,
)
from cepdsl.types import US_PER, Type

EPOCH = dt.datetime(1970, 1, 1)
T0 = dt.datetime(2024, 1, 1)
S = US_PER["s"]
M = US_PER["m"]


def us(t: dt.datetime) -> int:
    return (t - EPOCH) // dt.timedelta(microseconds=1)


def at(seconds: float) -> dt.datetime:
    """A time `seconds` after T0 (2024-01-01 00:00:00 UTC)."""
    return T0 + dt.timedelta(seconds=seconds)


def stream(
    name: str = "s",
    fields: tuple[tuple[str, Type], ...] = (("ts", Type.TIMESTAMP), ("host", Type.STR), ("cpu", Type.FLOAT)),
    time: str | None = "ts",
    lateness_us: int = 0,
) -> StreamPlan:
    return StreamPlan(name, tuple(FieldPlan(n, t) for n, t in fields), time, lateness_us)


def field(s: StreamPlan, name: str) -> TField:
    f = s.field(name)
    assert f is not None, name
    return TField(f.type, name)


def lit(value: Any) -> TLit:
    t = {bool: Type.BOOL, int: Type.INT, float: Type.FLOAT, str: Type.STR}.get(type(value), Type.NULL)
    return TLit(t, value)


def cmp(op: str, left: TExpr, right: TExpr) -> TBinary:
    return TBinary(Type.BOOL, op, left, right)


def agg(func: str, s: StreamPlan | None = None, f: str | None = None, q: float | None = None) -> TAgg:
    arg = s.field(f).type if (s is not None and f is not None) else None
    return TAgg(aggregate_type(func, arg), func, f, q, aggregate_name(func, f, q))


def rule(
    rule_id: str,
    s: StreamPlan,
    kind: RuleKind = RuleKind.FILTER,
    *,
    where: TExpr | None = None,
    group_by: tuple[str, ...] = (),
    window: WindowSpec | None = None,
    having: TExpr | None = None,
    aggregates: tuple[TAgg, ...] = (),
    throttle_us: int | None = None,
    severity: str = "medium",
    **extra: Any,
) -> RulePlan:
    gb = tuple(s.field(g) for g in group_by)
    if kind is RuleKind.WINDOW and not aggregates:
        aggregates = (agg("count"),)
    out = output_columns(kind, s, gb, aggregates, extra.get("pattern"), extra.get("anomaly"))
    return RulePlan(
        id=rule_id,
        title=None,
        stream=s,
        kind=kind,
        where=where,
        group_by=gb,
        window=window,
        having=having,
        aggregates=aggregates,
        severity=severity,
        throttle_us=throttle_us,
        output=out,
        **extra,
    )


def program(*rules: RulePlan, streams: tuple[StreamPlan, ...] | None = None) -> Program:
    if streams is None:
        seen: dict[str, StreamPlan] = {}
        for r in rules:
            seen.setdefault(r.stream.name, r.stream)
        streams = tuple(seen.values())
    return Program(streams, (), rules)
