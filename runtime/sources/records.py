"""Raw JSON records → a frame typed to the stream schema, plus dead letters.

Every live source (JSON lines, Redis Streams, HTTP polls) ends up with a list of
parsed JSON values; this module is the single place that decides what fits a
declared field. The common case (every value already of the right JSON type) is
handled column by column with one C-speed pass to gather the values and one
Polars build; only a column that holds something unusual takes the slow path,
which coerces value by value and writes down why a value was refused.

Coercions (documented in docs/sources-and-state.md):

- int: JSON integers; floats with an integral value (3.0); numeric strings
  ("5", "5.0"). Not bools, not 3.5, not values outside int64.
- float: JSON numbers; numeric strings ("3.5", "nan"). Not bools.
- str: strings; numbers and bools become their JSON text (5 → "5",
  1.5 → "1.5", true → "true"). Objects and arrays are refused.
- bool: true/false; the strings "true"/"false" (any case). Not 0/1.
- timestamp: RFC 3339 strings (`Z`, an offset, or none = UTC; `T`, `t` or a
  space between date and time), or epoch milliseconds as a number or a
  numeric string. A null or missing time field is a dead letter.

A row goes to the dead letters with the reason of its first failing field in
declaration order; every other field may be null.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from cepdsl.plan import FieldPlan, StreamPlan
from cepdsl.types import Type
from runtime.dead_letter_writer import dead_letters, empty_dead_letters
from runtime.sources import rfc3339

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
# Epoch milliseconds that still fit int64 microseconds.
_MAX_EPOCH_MS = _INT64_MAX // 1000
_NONE = type(None)

#: Largest event (one JSON line, stream entry or poll body) a source types, in bytes:
#: a bigger one is a dead letter, so one huge line can neither exhaust memory nor stall
#: a batch (docs/security.md). Sources take `max_event_bytes=` to change it.
DEFAULT_MAX_EVENT_BYTES = 1 << 20
#: How much of an oversized event its dead letter keeps (the rest is counted, not stored).
OVERSIZE_PREVIEW_BYTES = 1024


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record that never became a JSON object (bad JSON, failed poll): its reason travels with it."""

    reason: str


@dataclass(frozen=True, slots=True)
class _NotObject:
    """A dotted path ran into a non-object value part way down (`data` is 5 in `data.avg`)."""

    prefix: str
    value: Any


def oversize(size: int, limit: int) -> Rejected:
    """The dead-letter reason of an event of `size` bytes over `limit`."""
    return Rejected(f"event too large: {size} bytes, over the limit of {limit} bytes (max_event_bytes)")


def oversize_raw(raw: str | bytes, size: int | None = None) -> str:
    """What an oversized event's dead letter keeps: its first bytes and its size."""
    head = raw[:OVERSIZE_PREVIEW_BYTES]
    text = head.decode("utf-8", errors="replace") if isinstance(head, bytes) else head
    return f"{text}... [{size if size is not None else len(raw)} bytes, truncated]"


def parse_json_lines(lines: Sequence[str | bytes], max_event_bytes: int | None = None) -> tuple[list[Any], list[str | bytes]]:
    """Parse JSON lines; blank lines are skipped, bad ones become `Rejected`, and so do lines
    longer than `max_event_bytes` (never parsed; their raw text is cut to a preview).

    Returns the records and the raw lines they came from (kept undecoded: only
    dead letters ever need the text).
    """
    records: list[Any] = []
    raws: list[str | bytes] = []
    loads = json.loads
    for line in lines:
        if not line.strip():
            continue
        if max_event_bytes is not None and len(line) > max_event_bytes:
            records.append(oversize(len(line), max_event_bytes))
            raws.append(oversize_raw(line))
            continue
        try:
            records.append(loads(line))
        except ValueError as e:  # JSONDecodeError and UnicodeDecodeError both are
            records.append(Rejected(f"malformed JSON: {e}"))
        except RecursionError:
            records.append(Rejected("malformed JSON: nested too deeply"))
        raws.append(line)
    return records, raws


def records_to_frame(
    stream: StreamPlan,
    records: Sequence[Any],
    raws: Sequence[str | bytes] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Type `records` to `stream`'s schema: (good rows, dead letters).

    `raws[i]` is the original text of `records[i]` (JSON-encoded from the record
    when not given). Never raises on bad data: every record ends up in exactly
    one of the two frames, in input order.
    """
    frame, reasons, dead = type_rows(stream, records, raws)
    if not reasons:
        return frame, dead
    mask = pl.Series(values=[False] * len(records), dtype=pl.Boolean).scatter(sorted(reasons), True)
    return frame.filter(~mask), dead


def type_rows(
    stream: StreamPlan,
    records: Sequence[Any],
    raws: Sequence[str | bytes] | None = None,
) -> tuple[pl.DataFrame, dict[int, str], pl.DataFrame]:
    """`records_to_frame` before the bad rows are dropped: (a frame of every record,
    {index: reason} of the refused ones, their dead letters)."""
    reasons: dict[int, str] = {}
    rows: Sequence[Any] = records
    if set(map(type, records)) - {dict}:
        rows = []
        for i, r in enumerate(records):
            if type(r) is dict:
                rows.append(r)
            else:
                reasons[i] = r.reason if isinstance(r, Rejected) else f"not a JSON object: got {_describe(r)}"
                rows.append({})

    columns: list[pl.Series] = []
    for f in stream.fields:
        series, bad = _typed_column(f, _extract(rows, f.name))
        for i, why in bad.items():
            reasons.setdefault(i, why)
        if f.name == stream.time_field:
            for i in series.is_null().arg_true().to_list():
                reasons.setdefault(i, f"missing time field '{f.name}'")
        columns.append(series)

    frame = pl.DataFrame(columns)
    if not reasons:
        return frame, reasons, empty_dead_letters()
    bad_rows = sorted(reasons)
    dead = dead_letters(
        stream.name,
        [reasons[i] for i in bad_rows],
        [_raw_text(records[i], raws[i] if raws is not None else None) for i in bad_rows],
    )
    return frame, reasons, dead


# --------------------------------------------------------------------------- extraction


def _extract(rows: Sequence[dict], name: str) -> list[Any]:
    """The values at `name` in every row; a dotted name walks nested objects, else a flat key."""
    if "." not in name:
        return [r.get(name) for r in rows]
    parts = name.split(".")
    vals = [r.get(parts[0]) for r in rows]
    for depth in range(1, len(parts)):
        key = parts[depth]
        prefix = ".".join(parts[:depth])
        vals = [v.get(key) if type(v) is dict else (v if v is None or type(v) is _NotObject else _NotObject(prefix, v)) for v in vals]
    # `{"data.avg": 3}` is accepted too; the nested form wins when both are present.
    flat = [r.get(name) for r in rows]
    return [v if f is None or (v is not None and type(v) is not _NotObject) else f for v, f in zip(vals, flat)]


# --------------------------------------------------------------------------- typing

_FAST_KINDS: dict[Type, frozenset[type]] = {
    Type.INT: frozenset({int, _NONE}),
    Type.FLOAT: frozenset({int, float, _NONE}),
    Type.STR: frozenset({str, _NONE}),
    Type.BOOL: frozenset({bool, _NONE}),
}


def _typed_column(f: FieldPlan, vals: list[Any]) -> tuple[pl.Series, dict[int, str]]:
    kinds = set(map(type, vals))
    if f.type is Type.TIMESTAMP:
        return _timestamp_column(f, vals, kinds)
    if kinds <= _FAST_KINDS[f.type]:
        try:
            return pl.Series(f.name, vals, dtype=f.dtype, strict=True), {}
        except (TypeError, OverflowError, UnicodeEncodeError, pl.exceptions.PolarsError):
            pass  # e.g. an int beyond int64, a lone surrogate: let the slow path name it
    coerce = _COERCERS[f.type]
    out: list[Any] = []
    bad: dict[int, str] = {}
    for i, v in enumerate(vals):
        if v is None:
            out.append(None)
            continue
        ok, value = coerce(v) if type(v) is not _NotObject else (False, None)
        if ok:
            out.append(value)
        else:
            out.append(None)
            bad[i] = _type_reason(f, v)
    return pl.Series(f.name, out, dtype=f.dtype, strict=True), bad


def _timestamp_column(f: FieldPlan, vals: list[Any], kinds: set[type]) -> tuple[pl.Series, dict[int, str]]:
    bad: dict[int, str] = {}
    if kinds <= {str, _NONE}:
        strings, numbers = vals, None
    elif kinds <= {int, float, _NONE}:
        strings, numbers = None, vals
    else:  # mixed: split by kind, parse each side in bulk, refuse the rest
        strings, numbers = [], []
        for i, v in enumerate(vals):
            t = type(v)
            strings.append(v if t is str else None)
            if (t is int or t is float) and t is not bool:
                numbers.append(v)
            else:
                numbers.append(None)
                if v is not None and t is not str:
                    bad[i] = _type_reason(f, v)
    parts: list[pl.Series] = []
    if strings is not None:
        try:
            text = pl.Series(strings, dtype=pl.String)
        except UnicodeEncodeError:  # a lone surrogate ("\ud800" in JSON): refuse that value
            for i, v in enumerate(strings):
                if v is not None and not _is_text(v):
                    bad[i] = _type_reason(f, v)
            strings = [v if v is None or _is_text(v) else None for v in strings]
            text = pl.Series(strings, dtype=pl.String)
        parsed, rescued = _parse_rfc3339(text)
        # Strings that are not RFC 3339 may still be epoch milliseconds ("1700000000000").
        if rescued:
            extra: list[Any] = [None] * len(vals)
            for i in rescued:
                try:
                    extra[i] = float(strings[i])
                except ValueError:
                    bad[i] = _type_reason(f, strings[i])
            ms, more_bad = _epoch_ms(extra)
            for i in more_bad:
                bad.setdefault(i, _type_reason(f, strings[i]))
            parsed = parsed.fill_null(ms)
        parts.append(parsed)
    if numbers is not None:
        ms, more_bad = _epoch_ms(numbers)
        for i in more_bad:
            bad.setdefault(i, _type_reason(f, vals[i]))
        parts.append(ms)
    col = parts[0] if len(parts) == 1 else parts[0].fill_null(parts[1])
    return col.alias(f.name).cast(pl.Datetime("us")), bad


def _parse_rfc3339(s: pl.Series) -> tuple[pl.Series, list[int]]:
    """RFC 3339 strings → naive UTC datetimes, and the rows that did not parse."""
    parsed, status, missed = rfc3339.parse_common(s)
    if not missed:
        return parsed, []
    rest, failed = _parse_rfc3339_general(pl.select(pl.when(pl.Series(status == rfc3339.NOT_HANDLED)).then(s)).to_series())
    return parsed.fill_null(rest), failed


def _parse_rfc3339_general(s: pl.Series) -> tuple[pl.Series, list[int]]:
    # The usual form (`T`, `Z`) parses directly, ~4× faster than normalising; any other
    # form anywhere in the column takes the general path for all of it.
    quick = s.str.to_datetime("%Y-%m-%dT%H:%M:%S%.fZ", strict=False, time_unit="us")
    if quick.null_count() == s.null_count():
        return quick, []
    norm = s.str.replace(r"[zZ]$", "+00:00").str.replace(r"^(\d{4}-\d{2}-\d{2})[ tT]", "${1}T")
    has_offset = norm.str.contains(r"[+-]\d{2}:?\d{2}$")
    norm = pl.select(pl.when(has_offset).then(norm).otherwise(norm + "+00:00")).to_series()
    parsed = (
        norm.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%z", strict=False, time_unit="us")
        .dt.convert_time_zone("UTC")
        .dt.replace_time_zone(None)
    )
    failed = (parsed.is_null() & s.is_not_null()).arg_true().to_list()
    return parsed, failed


def _epoch_ms(vals: list[Any]) -> tuple[pl.Series, list[int]]:
    """Epoch milliseconds (int or float, may hold None) → Datetime(us), and the rows out of range."""
    try:
        f = pl.Series(vals, dtype=pl.Float64, strict=True)
    except (TypeError, OverflowError, pl.exceptions.PolarsError):
        f = pl.Series([float(v) if v is not None and _finite_num(v) else None for v in vals], dtype=pl.Float64)
    # Large int milliseconds lose nothing below 2**53 ms (year 285,000): float math is exact enough here.
    ok = f.is_finite() & (f.abs() <= _MAX_EPOCH_MS)
    bad = (f.is_not_null() & ~ok).arg_true().to_list()
    nonnull_in = pl.Series([v is not None for v in vals], dtype=pl.Boolean)
    bad += (nonnull_in & f.is_null()).arg_true().to_list()
    us = pl.select(pl.when(ok).then((f * 1000).round()).otherwise(None).cast(pl.Int64)).to_series()
    return us.cast(pl.Datetime("us")), bad


def _finite_num(v: Any) -> bool:
    try:
        return math.isfinite(float(v))
    except (OverflowError, ValueError, TypeError):
        return False


# --------------------------------------------------------------------------- slow-path coercions


def _to_int(v: Any) -> tuple[bool, Any]:
    t = type(v)
    if t is int:
        return _INT64_MIN <= v <= _INT64_MAX, v
    if t is float:
        if v.is_integer() and _INT64_MIN <= v <= _INT64_MAX:
            return True, int(v)
        return False, None
    if t is str:
        try:
            return _to_int(int(v))
        except ValueError:
            try:
                return _to_int(float(v))
            except ValueError:
                return False, None
    return False, None


def _to_float(v: Any) -> tuple[bool, Any]:
    t = type(v)
    try:
        if t is float:
            return True, v
        if t is int or t is str:
            return True, float(v)
    except (ValueError, OverflowError):
        pass
    return False, None


def _is_text(v: str) -> bool:
    """False for strings Arrow cannot hold (lone surrogates, from `"\\ud800"` in JSON)."""
    try:
        v.encode()
    except UnicodeEncodeError:
        return False
    return True


def _to_str(v: Any) -> tuple[bool, Any]:
    t = type(v)
    if t is str:
        return _is_text(v), v
    if t is int or t is float or t is bool:
        return True, json.dumps(v)
    return False, None


def _to_bool(v: Any) -> tuple[bool, Any]:
    t = type(v)
    if t is bool:
        return True, v
    if t is str and v.lower() in ("true", "false"):
        return True, v.lower() == "true"
    return False, None


_COERCERS = {Type.INT: _to_int, Type.FLOAT: _to_float, Type.STR: _to_str, Type.BOOL: _to_bool}

# --------------------------------------------------------------------------- reasons

_JSON_KIND = {dict: "object", list: "array", str: "str", int: "int", float: "float", bool: "bool", _NONE: "null"}


def _describe(v: Any) -> str:
    kind = _JSON_KIND.get(type(v), type(v).__name__)
    try:
        text = json.dumps(v, ensure_ascii=False, default=repr)
    except ValueError:
        text = repr(v)
    if not _is_text(text):  # a lone surrogate: show it escaped
        text = json.dumps(v, default=repr)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{kind} {text}"


def _type_reason(f: FieldPlan, v: Any) -> str:
    if type(v) is _NotObject:
        return f"field '{f.name}': expected an object at '{v.prefix}', got {_describe(v.value)}"
    if type(v) is str and not _is_text(v):
        return f"field '{f.name}': invalid text (lone surrogate), got {_describe(v)}"
    return f"field '{f.name}': expected {f.type}, got {_describe(v)}"


def _raw_text(record: Any, raw: str | bytes | None) -> str:
    if raw is None:
        try:
            return json.dumps(record, ensure_ascii=False, default=repr)
        except ValueError:
            return repr(record)
    if isinstance(raw, bytes):
        return raw.decode("utf-8", errors="replace")
    return raw
