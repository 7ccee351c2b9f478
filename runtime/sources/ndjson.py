"""Columnar fast path for JSON lines: a whole block parsed by Polars' Rust NDJSON reader.

`parse_json_lines` + `records_to_frame` (records.py) define what a line becomes;
this module must give exactly the same good frame and dead letters, only faster
(`json.loads` per line is ~130k lines/s; the Rust reader is ~10× that).

Polars' reader, given the declared schema, is strict about numbers, bools,
nesting, grammar and control characters: any such problem makes it raise, and
the whole block goes the per-line way. Where it is *not* the same as the
per-line path, we look for the difference and send only the rows concerned
through the per-line path:

- a `str` (or `timestamp`, read as text) field holding a number, bool, array or
  object: Polars turns it into text (`1e5` → "100000", where the per-line path
  says "100000.0", and refuses arrays and objects) — found by a regex on the key;
- duplicate keys: Polars keeps the first, `json.loads` the last — found by
  counting key occurrences (block-wide first, per line only when they differ);
- escaped keys (`"\\u0068ost"`) and lone surrogate escapes (`"\\ud800"`, which
  Polars turns into NUL) — found by regex when the block holds a backslash;
- values the typing refuses (a null or unparseable time, an out-of-range epoch):
  their dead-letter reasons are the per-line path's.

Everything is checked on the bytes or in Polars; clean blocks (the common case)
do no per-line Python work at all.
"""

from __future__ import annotations

import functools
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from cepdsl.plan import StreamPlan
from cepdsl.types import Type
from runtime.dead_letter_writer import concat_dead_letters, empty_dead_letters
from runtime.sources import jsonscan
from runtime.sources.records import (
    _MAX_EPOCH_MS,
    DEFAULT_MAX_EVENT_BYTES,
    _parse_rfc3339,
    parse_json_lines,
    records_to_frame,
    type_rows,
)

#: Polars dtype each declared type is read as (timestamps as text: RFC 3339 or epoch ms).
_READ_AS: dict[Type, pl.DataType] = {
    Type.INT: pl.Int64(),
    Type.FLOAT: pl.Float64(),
    Type.STR: pl.String(),
    Type.BOOL: pl.Boolean(),
    Type.TIMESTAMP: pl.String(),
}
#: Bytes of JSON lines typed per Polars call (see `block_to_frame`).
_PIECE = 2 << 20
_WS = rb"[ \t\r]*"
#: A JSON number as text: for these, Python's float() and Polars' cast agree exactly.
_JSON_NUMBER = r"^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?$"
_LONE_SURROGATE = rb"\\u[dD][89a-fA-F]"
#: From a backslash to the end of a key: catches every key written with an escape.
_ESCAPED_KEY = rb'\\(?:[^"\\\n]|\\.)*"' + _WS + rb":"

#: Re-parses the rows at the given indices the slow way: (records, raws).
Reparse = Callable[[list[int]], tuple[list[Any], list[Any]]]


@dataclass(frozen=True)
class _Layout:  # noqa: PLW1641 - cached per stream
    schema: dict[str, pl.DataType]
    columns: list[pl.Expr]  # one per declared field, in order, read type
    keys: dict[bytes, list[pl.Expr]]  # quoted key → the read columns it fills (non-null ⇒ key present)
    text_exprs: list[pl.Expr]  # the read columns of `str` fields
    text_keys: list[bytes]  # quoted keys of `str` fields (Polars stringifies other JSON there;
    # timestamps need no such check: text that is neither RFC 3339 nor a number is refused anyway)

    @functools.cached_property
    def flat(self) -> bool:
        """Every field a top-level key: jsonscan.py reads the block in one pass."""
        return all("." not in name for name in self.schema) and all(not isinstance(t, pl.Struct) for t in self.schema.values())

    @functools.cached_property
    def key_table(self) -> tuple[np.ndarray, np.ndarray]:
        """The declared names as one byte buffer and its offsets, in field order."""
        names = [name.encode() for name in self.schema]
        return np.frombuffer(b"".join(names), dtype=np.uint8), np.cumsum([0] + [len(n) for n in names], dtype=np.int64)

    @functools.cached_property
    def present(self) -> list[pl.Expr]:
        """Per key role: how many rows hold it non-null."""
        return [e.is_not_null().sum().alias(str(i)) for i, e in enumerate(e for es in self.keys.values() for e in es)]

    @functools.cached_property
    def each_key_re(self) -> list[str]:
        return [re.escape(k.decode()) + _WS.decode() + ":" for k in self.keys]

    @functools.cached_property
    def text_re(self) -> str | None:
        """A `str` field's key followed by something other than a string or null."""
        if not self.text_keys:
            return None
        alts = "|".join(re.escape(k.decode()[1:-1]) for k in self.text_keys)
        return '"(?:' + alts + ')"' + _WS.decode() + ":" + _WS.decode() + '[^"n \t\r]'


@functools.lru_cache(maxsize=256)
def _layout(stream: StreamPlan) -> _Layout | None:
    """How to read `stream` with Polars, or None when its field names cannot be one schema."""
    tree: dict[str, Any] = {}  # name → dtype, or a dict for a struct
    flat: dict[str, pl.DataType] = {}
    keys: dict[bytes, list[pl.Expr]] = {}
    text_keys: list[bytes] = []
    text_exprs: list[pl.Expr] = []
    columns: list[pl.Expr] = []

    def q(k: str) -> bytes:
        return b'"' + k.encode() + b'"'

    for f in stream.fields:
        dtype = _READ_AS[f.type]
        parts = f.name.split(".")
        node = tree
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                return None
        if parts[-1] in node:
            return None
        node[parts[-1]] = dtype
        expr = pl.col(parts[0])
        for depth, p in enumerate(parts[1:], 1):
            roles = keys.setdefault(q(parts[depth - 1]), [])
            if not any(r.meta.eq(expr) for r in roles):  # `data` of `data.avg` and `data.tag`: one role
                roles.append(expr)
            expr = expr.struct.field(p)
        keys.setdefault(q(parts[-1]), []).append(expr)
        if f.type is Type.STR:
            text_keys.append(q(parts[-1]))
            text_exprs.append(expr)
        if len(parts) > 1:
            # `{"data.avg": 3}` counts too; the nested form wins (as in records.py).
            flat[f.name] = dtype
            keys.setdefault(q(f.name), []).append(pl.col(f.name))
            if f.type is Type.STR:
                text_keys.append(q(f.name))
                text_exprs.append(pl.col(f.name))
            expr = pl.coalesce(expr, pl.col(f.name))
        columns.append(expr.alias(f.name))
    if set(flat) & set(tree):
        return None

    def build(node: dict[str, Any]) -> dict[str, pl.DataType]:
        return {k: pl.Struct(build(v)) if isinstance(v, dict) else v for k, v in node.items()}

    schema = build(tree)
    schema.update(flat)
    return _Layout(schema, columns, keys, text_exprs, text_keys)


def split_lines(block: bytes) -> list[bytes]:
    """The lines of `block` as the per-line path sees them (`\\r` of CRLF removed)."""
    lines = block.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    return [ln.rstrip(b"\r") for ln in lines]


def blocks_to_frame(
    stream: StreamPlan, blocks: list[bytes], max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """`block_to_frame(stream, b"".join(blocks))`, joining only up to ~2 MB at a time
    (each block must end at a line end)."""
    goods, deads = [], []
    piece: list[bytes] = []
    size = 0
    for i, b in enumerate(blocks):
        piece.append(b)
        size += len(b)
        if size >= _PIECE or i == len(blocks) - 1:
            g, d = block_to_frame(stream, piece[0] if len(piece) == 1 else b"".join(piece), max_event_bytes)
            goods.append(g)
            deads.append(d)
            piece, size = [], 0
    if not goods:
        return pl.DataFrame(schema=stream.schema), empty_dead_letters()
    return (pl.concat(goods) if len(goods) > 1 else goods[0]), concat_dead_letters(deads)


def block_to_frame(
    stream: StreamPlan, block: bytes, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """JSON lines (newline-separated, blank lines skipped) → (good rows, dead letters),
    exactly as `records_to_frame(stream, *parse_json_lines(split_lines(block), max_event_bytes))`.

    Big buffers cost more than they save (allocation and page faults dominate, and
    Polars' reader gains nothing past a few MB): ~2 MB pieces cut at line ends are typed
    one by one. A loop, not recursion: a piece may be one line longer than the cut."""
    if len(block) <= 2 * _PIECE:
        return _piece_to_frame(stream, block, max_event_bytes)
    goods, deads = [], []
    start = 0
    while start < len(block):
        end = block.find(b"\n", start + _PIECE) + 1 or len(block)
        g, d = _piece_to_frame(stream, block[start:end], max_event_bytes)
        goods.append(g)
        deads.append(d)
        start = end
    return pl.concat(goods), concat_dead_letters(deads)


def _piece_to_frame(stream: StreamPlan, block: bytes, max_event_bytes: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    if not block or block.isspace():  # not .strip(): that copies the block
        return pl.DataFrame(schema=stream.schema), empty_dead_letters()
    if len(block) > max_event_bytes and _longest_line(block) > max_event_bytes:
        # An oversized line is never handed to a parser: the per-line path refuses it by
        # its length and types the other lines of the piece as usual.
        return records_to_frame(stream, *parse_json_lines(split_lines(block), max_event_bytes))
    lines: list[bytes] | None = None

    def reparse(rows: list[int]) -> tuple[list[Any], list[Any]]:
        nonlocal lines
        if lines is None:
            lines = [ln for ln in split_lines(block) if ln.strip()]
        return parse_json_lines([lines[i] for i in rows])

    fast = fast_block(stream, block, reparse)
    if fast is not None:
        return fast
    return records_to_frame(stream, *parse_json_lines(split_lines(block)))  # every line within the limit


def _longest_line(block: bytes) -> int:
    """Length of the longest line of `block`, its line end not counted."""
    ends = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 10)
    bounds = np.concatenate(([-1], ends, [len(block)]))
    return int(np.diff(bounds).max()) - 1


def fast_block(
    stream: StreamPlan, block: bytes, reparse: Reparse, expect_rows: int | None = None
) -> tuple[pl.DataFrame, pl.DataFrame] | None:
    """The columnar path, or None when the block must go the per-line way as a whole
    (Polars refused it: a malformed line, a type error, or a schema we cannot express).

    `reparse(rows)` gives the slow-path records of the given non-blank rows; `expect_rows`,
    when given, is how many rows the block must hold (else None is returned).
    """
    layout = _layout(stream)
    if layout is None:
        return None
    if layout.flat:
        return _scan_block(stream, block, reparse, expect_rows)
    try:
        raw = pl.read_ndjson(io.BytesIO(block), schema=layout.schema)
    except Exception:  # noqa: BLE001 - any refusal means: do it line by line
        return None
    if expect_rows is not None and raw.height != expect_rows:
        return None
    suspects = _suspect_rows(layout, block, raw)
    if suspects is None:
        return None
    typed = raw.select(layout.columns)
    columns: list[pl.Series] = []
    bad = suspects
    for f in stream.fields:
        col = typed.get_column(f.name)
        if f.type is Type.TIMESTAMP:
            col, refused = _timestamps(col)
            bad = bad | refused
            if f.name == stream.time_field:
                bad = bad | col.is_null()
        columns.append(col)
    typed = pl.DataFrame(columns)
    if not bad.any():
        return typed, empty_dead_letters()
    return _merge(stream, typed, bad.arg_true().to_list(), reparse)


#: The value kinds a field takes on the columnar path; any other kind defers the row.
_ACCEPTS: dict[Type, tuple[int, ...]] = {
    Type.INT: (jsonscan.INT,),
    Type.FLOAT: (jsonscan.INT, jsonscan.NUMBER, jsonscan.SLOW_NUMBER),
    Type.STR: (jsonscan.STRING,),
    Type.BOOL: (jsonscan.TRUE, jsonscan.FALSE),
    Type.TIMESTAMP: (jsonscan.STRING, jsonscan.TIME, jsonscan.INT, jsonscan.NUMBER, jsonscan.SLOW_NUMBER),
}
_WANT = {Type.INT: jsonscan.AS_INT, Type.FLOAT: jsonscan.AS_FLOAT, Type.TIMESTAMP: jsonscan.AS_TIME}


@functools.lru_cache(maxsize=256)
def _scan_tables(stream: StreamPlan) -> tuple[np.ndarray, np.ndarray]:
    """Per field: which value kinds it accepts, and what the kernel computes of its numbers."""
    accept = np.zeros((len(stream.fields), jsonscan.TIME + 1), dtype=np.bool_)
    accept[:, [jsonscan.MISSING, jsonscan.NULL]] = True
    for j, f in enumerate(stream.fields):
        accept[j, list(_ACCEPTS[f.type])] = True
    want = np.array([_WANT.get(f.type, jsonscan.SPAN) for f in stream.fields], dtype=np.int8)
    return accept, want


def _scan_block(
    stream: StreamPlan, block: bytes, reparse: Reparse, expect_rows: int | None
) -> tuple[pl.DataFrame, pl.DataFrame] | None:
    """`fast_block` for a flat schema: one kernel pass finds every value and computes the
    numbers (jsonscan.py), the rest is typed column by column in bulk, and the rows the
    kernel deferred go the per-line way."""
    if not block.isascii():
        try:
            block.decode()
        except UnicodeDecodeError:
            return None  # json.loads decodes with surrogatepass: let the general path decide
    data = np.frombuffer(block, dtype=np.uint8)
    cap = int(np.count_nonzero(data == 10)) + 1  # ~10x bytes.count here
    nf = len(stream.fields)
    kind = np.empty((nf, cap), dtype=np.uint8)
    start = np.empty((nf, cap), dtype=np.int64)
    stop = np.empty((nf, cap), dtype=np.int64)
    num = np.empty((nf, cap), dtype=np.int64)
    deferred = np.empty(cap, dtype=np.bool_)
    key_data, key_off = _layout(stream).key_table  # type: ignore[union-attr]
    accept, want = _scan_tables(stream)
    rows = jsonscan.scan(data, key_data, key_off, accept, want, kind, start, stop, num, deferred)
    if expect_rows is not None and rows != expect_rows:
        return None
    columns: list[pl.Series] = []
    bad = deferred[:rows]
    for j, f in enumerate(stream.fields):
        k = kind[j, :rows]
        if f.type is Type.STR:
            col = _text_column(f.name, data, start[j, :rows], stop[j, :rows], k == jsonscan.STRING)
        elif f.type is Type.BOOL:
            col = _with_nulls(pl.Series(f.name, k == jsonscan.TRUE, dtype=pl.Boolean), k <= jsonscan.NULL)
        elif f.type is Type.INT:
            col = _with_nulls(pl.Series(f.name, num[j, :rows]), k <= jsonscan.NULL)
        elif f.type is Type.FLOAT:
            col = _numbers(f.name, data, k, start[j, :rows], stop[j, :rows], num[j, :rows])
        else:  # timestamp: RFC 3339 text (parsed by the kernel when of the usual shape), epoch ms
            parsed_us = k == jsonscan.TIME
            text = k == jsonscan.STRING
            col = _with_nulls(pl.Series(f.name, num[j, :rows]), ~parsed_us).cast(pl.Datetime("us"))
            if not (parsed_us | text | (k <= jsonscan.NULL)).all():
                ms, refused = _epoch_us(_numbers(f.name, data, k, start[j, :rows], stop[j, :rows], num[j, :rows]))
                col = col.fill_null(ms)
                bad = bad | refused.to_numpy()
            if text.any():
                parsed, refused = _timestamps(_text_column(f.name, data, start[j, :rows], stop[j, :rows], text))
                col = col.fill_null(parsed)
                bad = bad | refused.to_numpy()
        if f.name == stream.time_field:
            bad = bad | (k <= jsonscan.NULL)
        columns.append(col.alias(f.name))
    typed = pl.DataFrame(columns)
    if not bad.any():
        return typed, empty_dead_letters()
    return _merge(stream, typed, np.flatnonzero(bad).tolist(), reparse)


def _numbers(name: str, data: np.ndarray, k: np.ndarray, start: np.ndarray, stop: np.ndarray, num: np.ndarray) -> pl.Series:
    """A float column from the kernel's values, the few it left exact-cast from their text."""
    col = _with_nulls(pl.Series(name, num.view(np.float64)), (k != jsonscan.INT) & (k != jsonscan.NUMBER))
    slow = k == jsonscan.SLOW_NUMBER
    if slow.any():
        col = col.fill_null(_text_column(name, data, start, stop, slow).cast(pl.Float64, strict=True))
    return col


def _with_nulls(col: pl.Series, null: np.ndarray) -> pl.Series:
    return col.scatter(np.flatnonzero(null), None) if null.any() else col


def _epoch_us(ms: pl.Series) -> tuple[pl.Series, pl.Series]:
    """Epoch milliseconds → Datetime(us) as records.py types them, and the rows refused
    (not finite or out of range; null stays null and is not refused)."""
    ok = (ms.is_finite() & (ms.abs() <= _MAX_EPOCH_MS)).fill_null(False)
    us = pl.select(pl.when(ok).then((ms * 1000).round()).otherwise(None).cast(pl.Int64)).to_series()
    return us.cast(pl.Datetime("us")).alias(ms.name), (ms.is_not_null() & ~ok).alias("refused")


def _text_column(name: str, data: np.ndarray, start: np.ndarray, stop: np.ndarray, take: np.ndarray) -> pl.Series:
    """The byte spans of the taken rows as a String column (null elsewhere)."""
    offsets, chars = jsonscan.gather(data, start, stop, take)
    validity = None if take.all() else pa.py_buffer(np.packbits(take, bitorder="little"))
    arr = pa.LargeStringArray.from_buffers(len(take), pa.py_buffer(offsets), pa.py_buffer(chars), validity)
    return pl.Series(name, arr)


def _timestamps(text: pl.Series) -> tuple[pl.Series, pl.Series]:
    """Timestamp text → Datetime(us) as records.py types it, and the rows left to the slow path
    (neither RFC 3339 nor plainly a number, or out of range: their reasons are the slow path's).
    A JSON number reaches us as Polars' shortest round-trip text of it, so it parses back
    exactly. No RFC 3339 text looks like a JSON number, so the order of the two tries only
    matters for speed: the kind of the first value goes first."""
    first = text.drop_nulls().head(1).to_list()
    if not (first and re.match(_JSON_NUMBER, first[0])):
        parsed, failed = _parse_rfc3339(text)
        if not failed:
            return parsed.alias(text.name), pl.Series("refused", [False] * text.len(), dtype=pl.Boolean)
    is_num = text.str.contains(_JSON_NUMBER).fill_null(False)
    us, refused = _epoch_us(pl.select(pl.when(is_num).then(text.cast(pl.Float64, strict=False))).to_series())
    rest = text.is_not_null() & ~is_num
    if rest.any():
        parsed, _ = _parse_rfc3339(pl.select(pl.when(rest).then(text)).to_series())
        refused = refused | (rest & parsed.is_null())
        us = parsed.fill_null(us)
    return us.alias(text.name), refused.alias("refused")


def _suspect_rows(layout: _Layout, block: bytes, raw: pl.DataFrame) -> pl.Series | None:
    """Rows where Polars may read differently from `json.loads` (see the module doc).

    Cheap block-wide tests first (numpy byte counts, a regex on short values); the lines
    are looked at one by one only when one of them turns something up.
    """
    n = raw.height
    escapes = b"\\" in block and bool(re.search(_LONE_SURROGATE, block) or re.search(_ESCAPED_KEY, block))
    dup = _maybe_duplicate_keys(layout, block, raw, escapes)
    # Polars turns a number, array or object in a `str` field into text; such text starts
    # with a digit, '-', '[' or '{' (bools give "true"/"false", as json.dumps does).
    odd_text = (
        any(raw.select(pl.any_horizontal([e.str.contains(r"^[-0-9\[{]").any() for e in layout.text_exprs])).row(0))
        if layout.text_exprs and n
        else False
    )
    if not (dup or odd_text or escapes):
        return pl.Series(values=[False] * n, dtype=pl.Boolean)
    try:
        text = block.decode()
    except UnicodeDecodeError:
        return None
    lines = pl.Series([text]).str.split("\n").explode()
    lines = lines.filter(lines.str.contains(r"[^ \t\r]"))
    if lines.len() != n:
        return None  # Polars and we disagree on what a row is: play safe
    col = pl.col("l")
    exprs = []
    if odd_text:
        exprs.append(col.str.contains(layout.text_re))
    if escapes:
        exprs += [col.str.contains(_LONE_SURROGATE.decode()), col.str.contains(_ESCAPED_KEY.decode())]
    if dup:
        exprs += [col.str.count_matches(k) > 1 for k in layout.each_key_re]
    return lines.to_frame("l").select(pl.any_horizontal(exprs)).to_series()


def _maybe_duplicate_keys(layout: _Layout, block: bytes, raw: pl.DataFrame, escapes: bool) -> bool:
    """False when no row can hold one of our keys twice (Polars keeps the first, json.loads
    the last). Each row holding a key non-null needs one occurrence of it, so when the block
    holds exactly as many keys as that, there is no room for a duplicate."""
    if not raw.height:
        return False
    want = sum(raw.select(layout.present).row(0))
    if not escapes and b"\\" not in block:
        # Without backslashes, `":` only ever ends a key: count every key in one numpy pass.
        a = np.frombuffer(block, dtype=np.uint8)
        if int(np.count_nonzero((a[:-1] == 34) & (a[1:] == 58))) == want:
            return False
    seen = 0
    for key in layout.keys:
        c = block.count(key)
        if c != block.count(key + b":"):
            c = len(re.findall(re.escape(key) + _WS + b":", block))
        seen += c
    return seen != want


def _merge(stream: StreamPlan, typed: pl.DataFrame, rows: list[int], reparse: Reparse) -> tuple[pl.DataFrame, pl.DataFrame]:
    """`typed` with `rows` replaced by what the per-line path makes of them (kept or dead)."""
    records, raws = reparse(rows)
    slow, reasons, dead = type_rows(stream, records, raws)
    keep_slow = [i for i in range(len(rows)) if i not in reasons]
    idx = "__row"
    mask = pl.Series(values=[False] * typed.height, dtype=pl.Boolean).scatter(rows, True)
    fast = typed.with_row_index(idx).filter(~mask)
    kept = slow.gather(keep_slow).with_columns(pl.Series(idx, [rows[i] for i in keep_slow], dtype=pl.UInt32))
    good = pl.concat([fast, kept.select(fast.columns)]).sort(idx).drop(idx)
    return good, dead
