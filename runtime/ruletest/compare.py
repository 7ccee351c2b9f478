"""Expected against produced: typed values, a one-to-one pairing, and a diff a person can read.

An expected match is a subset of a record's fields; the produced list must pair
up one-to-one with the expected list (any order unless `ordered`), so a missing
match, an extra one and a wrong value each show.  Pairing is a bipartite
matching (Kuhn's augmenting paths): greedy first-fit would report a failure when
an early loose expectation takes the record a later strict one needed.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from runtime.ruletest.spec import ExpectedMatch
from runtime.ruletest.timing import TimeTextError, describe_time, resolve_time
from runtime.ruletest.yamlnodes import Node

_MISSING = object()


@dataclass(frozen=True)
class TypedExpectation:
    """An expected match with its values typed against the rule's record columns."""

    source: ExpectedMatch
    values: dict[str, Any]  # field → expected value (or _MISSING when the records lack the field)

    @property
    def line(self) -> int:
        return self.source.where.line


def type_expectation(item: ExpectedMatch, schema: dict[str, pl.DataType], start: dt.datetime | None) -> TypedExpectation:
    values: dict[str, Any] = {}
    for name, node in item.fields.items():
        dtype = schema.get(name)
        values[name] = _MISSING if dtype is None else _typed(node, dtype, start)
    return TypedExpectation(item, values)


def _typed(node: Node, dtype: pl.DataType, start: dt.datetime | None) -> Any:
    if not node.is_scalar:
        node.fail(f"expected a single value for a {dtype} field, got {node.kind}")
    value = node.value()
    if value is None:
        return None
    if isinstance(dtype, pl.Datetime):
        try:
            return resolve_time(node.text if node.is_plain and not isinstance(value, dt.datetime) else value, start)
        except TimeTextError as e:
            node.fail(str(e))
    if dtype == pl.String:
        return node.text if node.is_plain else str(value)
    if dtype == pl.Boolean:
        if not isinstance(value, bool):
            node.fail(f"expected true or false, got {node.kind}")
        return value
    if dtype.is_integer():
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            node.fail(f"expected an integer, got {node.kind}")
        return value
    if dtype.is_float():
        if isinstance(value, str) and value.strip().lower() in ("inf", "+inf", "-inf", "nan"):
            return float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            node.fail(f"expected a number, got {node.kind}")
        return float(value)
    return value


def same_value(expected: Any, actual: Any) -> bool:
    if expected is None or actual is None:
        return expected is None and actual is None
    if isinstance(expected, float) or isinstance(actual, float):
        if isinstance(expected, bool) or isinstance(actual, bool):
            return False
        e, a = float(expected), float(actual)
        if math.isnan(e) or math.isnan(a):
            return math.isnan(e) and math.isnan(a)
        return math.isclose(e, a, rel_tol=1e-9, abs_tol=1e-9)  # aggregates are sums of floats
    return bool(expected == actual)


def fits(expected: TypedExpectation, record: dict[str, Any]) -> bool:
    for name, want in expected.values.items():
        if want is _MISSING or not same_value(want, record.get(name)):
            return False
    return True


def pair_up(n_expected: int, n_actual: int, ok: Callable[[int, int], bool]) -> list[int | None]:
    """A maximum one-to-one pairing: for each expected index, its actual index or None."""
    adj = [[j for j in range(n_actual) if ok(i, j)] for i in range(n_expected)]
    owner: list[int | None] = [None] * n_actual

    def augment(i: int, seen: set[int]) -> bool:
        for j in adj[i]:
            if j in seen:
                continue
            seen.add(j)
            if owner[j] is None or augment(owner[j], seen):  # type: ignore[arg-type]
                owner[j] = i
                return True
        return False

    for i in range(n_expected):
        augment(i, set())
    result: list[int | None] = [None] * n_expected
    for j, i in enumerate(owner):
        if i is not None:
            result[i] = j
    return result


# --------------------------------------------------------------------------- showing values


def show_value(value: Any, start: dt.datetime | None) -> str:
    if value is _MISSING:
        return "(no such field)"
    if isinstance(value, dt.datetime):
        return describe_time(value, start)
    if value is None:
        return "null"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, float):
        return f"{value:.10g}"
    return str(value)


_HIDDEN = ("rule",)


def show_record(record: dict[str, Any], start: dt.datetime | None, first: Sequence[str] = ()) -> str:
    names = [n for n in first if n in record] + [n for n in record if n not in first and n not in _HIDDEN]
    return "{" + ", ".join(f"{n}: {show_value(record[n], start)}" for n in names) + "}"


def show_expected(expected: TypedExpectation, start: dt.datetime | None) -> str:
    return (
        "{"
        + ", ".join(
            f"{n}: {show_value(v, start) if v is not _MISSING else expected.source.fields[n].text}" for n, v in expected.values.items()
        )
        + "}"
    )


def field_differences(
    expected: TypedExpectation, record: dict[str, Any], start: dt.datetime | None, columns: Sequence[str]
) -> list[str]:
    out = []
    for name, want in expected.values.items():
        if want is _MISSING:
            out.append(f"`{name}` is not a field of these records (fields: {', '.join(columns)})")
        elif not same_value(want, record.get(name)):
            out.append(f"{name}: expected {show_value(want, start)}, got {show_value(record.get(name), start)}")
    return out


def nearest(expected: TypedExpectation, records: Sequence[dict[str, Any]], candidates: Sequence[int]) -> int | None:
    """The candidate record agreeing with the most expected fields (ties: the first)."""
    best, best_score = None, -1
    for j in candidates:
        score = sum(1 for n, v in expected.values.items() if v is not _MISSING and same_value(v, records[j].get(n)))
        if score > best_score:
            best, best_score = j, score
    return best
