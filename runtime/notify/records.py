"""Match records on their way to a message: frame → dicts, outbox codec, JSON for receivers, dedup keys."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

import polars as pl

from cepdsl.plan import RuleKind, RulePlan

Record = dict[str, Any]

_EPOCH = dt.datetime(1970, 1, 1)


#: Columns that hold a record back from the channels while it stays in the output:
#: `silenced` (LANGUAGE.md §9.4: the silence's name) and `suppressed` (§9.3: a throttled
#: firing record, or a resolved record whose firing record was not notified).
HOLD_COLUMNS = ("silenced", "suppressed")


def notified(frame: pl.DataFrame) -> pl.DataFrame:
    """The records of `frame` that go to the rule's channels (the others stay in the output only)."""
    conds = []
    if "silenced" in frame.columns:
        conds.append(pl.col("silenced").is_null())
    if "suppressed" in frame.columns:
        conds.append(~pl.col("suppressed").fill_null(False))
    if not conds or frame.height == 0:
        return frame
    return frame.filter(pl.all_horizontal(conds))


def frame_records(frame: pl.DataFrame) -> list[Record]:
    # Polars gives naive datetimes for UTC timestamps (LANGUAGE.md: naive = UTC); kept as they are.
    return frame.to_dicts()


# --------------------------------------------------------------------------- outbox codec (lossless)


def _tag(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$date": value.isoformat()}
    if isinstance(value, dt.timedelta):
        return {"$td": [value.days, value.seconds, value.microseconds]}
    if isinstance(value, decimal.Decimal):
        return {"$dec": str(value)}
    if isinstance(value, bytes):
        return {"$b64": base64.b64encode(value).decode()}
    if isinstance(value, float) and not math.isfinite(value):
        return {"$f": repr(value)}
    if isinstance(value, dict):
        return {k: _tag(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_tag(v) for v in value]
    return value


def _untag(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        ((k, v),) = obj.items()
        if k == "$dt":
            return dt.datetime.fromisoformat(v)
        if k == "$date":
            return dt.date.fromisoformat(v)
        if k == "$td":
            return dt.timedelta(days=v[0], seconds=v[1], microseconds=v[2])
        if k == "$dec":
            return decimal.Decimal(v)
        if k == "$b64":
            return base64.b64decode(v)
        if k == "$f":
            return float(v)
    return obj


def encode_record(record: Mapping[str, Any]) -> str:
    """The record as stored in the outbox: JSON that decodes back to the same Python values."""
    return json.dumps(_tag(dict(record)), separators=(",", ":"), allow_nan=False)


def decode_record(text: str) -> Record:
    return json.loads(text, object_hook=_untag)


# --------------------------------------------------------------------------- JSON for receivers


def iso_utc(value: dt.datetime) -> str:
    if value.tzinfo is None:
        return value.isoformat() + "Z"
    return value.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def json_safe(value: Any) -> Any:
    """Plain JSON values for receivers: timestamps as RFC 3339 UTC, durations as seconds, inf as a string."""
    cls = value.__class__
    if cls is str or cls is int or cls is bool or value is None:  # the common case, without isinstance chains
        return value
    if cls is float:
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, dt.datetime):
        return iso_utc(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


# --------------------------------------------------------------------------- idempotency


def _key_columns(rule: RulePlan, record: Mapping[str, Any]) -> list[str]:
    # One match per event (filter, anomaly): the event itself identifies it, so every column counts.
    # Otherwise a match is unique per (group key, window / match time), as LANGUAGE.md §5 defines.
    if rule.kind in (RuleKind.FILTER, RuleKind.ANOMALY):
        return sorted(record)
    extra = [c for c in ("window_start", "match_start", "last_seen") if c in record]
    # §9.3: a firing and a resolved record of one episode can share everything else.
    extra += [c for c in ("state", "firing_since") if c in record]
    return [*rule.group_keys, "ts", *extra]


def episode_key(rule: RulePlan, record: Mapping[str, Any]) -> str | None:
    """The key of the alert episode a lifecycle record belongs to (§9.3): derived from (rule,
    group key, `firing_since`), so the resolved record names the incident its firing opened
    (PagerDuty's `dedup_key`, the email thread).  None for records without a lifecycle."""
    if record.get("state") not in ("firing", "resolved"):
        return None
    pairs = [[k, json_safe(record.get(k))] for k in rule.group_keys]
    pairs.append(["firing_since", json_safe(record.get("firing_since"))])
    return _key_of(rule.id, [["episode", None], *pairs])


_KEY_ENCODER = json.JSONEncoder(separators=(",", ":"), sort_keys=False, default=str)
_RECORD_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def idempotency_key(rule: RulePlan, record: Mapping[str, Any]) -> str:
    """Same match → same key, across re-emission after a crash; receivers dedupe on it."""
    cols = _key_columns(rule, record)
    return _key_of(rule.id, [[c, json_safe(record.get(c))] for c in cols])


def _key_of(rule_id: str, pairs: list[list[Any]]) -> str:
    material = _KEY_ENCODER.encode([rule_id, pairs])
    return "cep-" + hashlib.sha256(material.encode()).hexdigest()[:32]


# --------------------------------------------------------------------------- a whole frame at once


_PLAIN_DTYPES = (
    pl.Int8,
    pl.Int16,
    pl.Int32,
    pl.Int64,
    pl.UInt8,
    pl.UInt16,
    pl.UInt32,
    pl.UInt64,
    pl.String,
    pl.Boolean,
    pl.Categorical,
    pl.Enum,
    pl.Null,
)


def _column(series: pl.Series, convert: Any) -> list[Any]:
    """The column as Python values passed through `convert` (skipped where it is the identity)."""
    values = series.to_list()
    dtype = series.dtype
    if isinstance(dtype, _PLAIN_DTYPES):
        return values
    if dtype.is_float() and bool(series.is_finite().fill_null(True).all()):
        return values
    return [None if v is None else convert(v) for v in values]


def frame_deliveries(rule: RulePlan, frame: pl.DataFrame) -> list[tuple[str, str]]:
    """(idempotency key, outbox encoding) of every row, built column by column.

    Byte for byte what `idempotency_key(rule, r)` and `encode_record(r)` give for each
    row dict `r` of `frame_records(frame)` (a property test holds them equal), without
    building a dict per row first or re-dispatching on each value's type.
    """
    names = frame.columns
    if frame.height == 0:
        return []
    stored = [_column(frame.get_column(c), _tag) for c in names]
    index = {c: i for i, c in enumerate(names)}
    key_cols = _key_columns(rule, index)
    safe_by_col: dict[str, list[Any]] = {}
    for c in key_cols:
        if c in index and c not in safe_by_col:
            safe_by_col[c] = _column(frame.get_column(c), json_safe)
    missing = [None] * frame.height
    key_values = [safe_by_col.get(c, missing) for c in key_cols]
    encode = _RECORD_ENCODER.encode
    out = []
    rows = zip(*stored) if stored else [()] * frame.height
    key_rows = zip(*key_values) if key_values else [()] * frame.height
    for row, key_row in zip(rows, key_rows):
        pairs = [[c, v] for c, v in zip(key_cols, key_row)]
        out.append((_key_of(rule.id, pairs), encode(dict(zip(names, row)))))
    return out
