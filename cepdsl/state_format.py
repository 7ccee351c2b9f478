"""The checkpoint format: typed, versioned data that cannot run code (never pickle).

Whoever can write the state store (Redis, a SQLite file) must not be able to run code in
the engine by writing a checkpoint, so checkpoints are msgpack with a fixed set of types
behind a header, with numpy arrays' bytes kept out of the msgpack part (as pickle's
protocol 5 does, so a checkpoint costs one copy of its arrays):

    b"CEPS" | format (u8) | msgpack length (u64, little-endian) | msgpack VALUE | array bytes

VALUE is built from None, bool, int, float, str, bytes, list and dict (msgpack's own
types) plus these extension types, each decoded by a function that builds data only:

    1 tuple        a msgpack array of values
    2 ndarray      msgpack [dtype string, shape]; its bytes are the next ones after the
                   msgpack part, in the order the arrays appear. Numbers, bools,
                   datetime64 and timedelta64 only (object arrays refused both ways)
    3 datetime     ISO 8601 text          4 date   ISO 8601 text
    5 timedelta    [days, seconds, microseconds]
    6 big integer  decimal text (beyond 64 bits)
    7 set          a msgpack array of values (frozensets come back as sets)

Anything else is refused when writing (`StateFormatError`), so an executor that starts
keeping a new kind of value fails its tests instead of writing something unreadable.
Polars frames travel as Arrow IPC bytes (the executors' `state()` do that already).
Old pickled checkpoints are converted by `cep state migrate` (runtime/cli/state.py),
which the operator runs; the engine never reads a pickle.
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Callable
from typing import Any

import msgpack
import numpy as np

MAGIC = b"CEPS"
#: Bumped when the layout above changes.
STATE_FORMAT = 1
_HEAD = struct.Struct("<4sBQ")
_TUPLE, _NDARRAY, _DATETIME, _DATE, _TIMEDELTA, _BIGINT, _SET = range(1, 8)
#: numpy kinds an array may have: bool, signed, unsigned, float, complex, datetime64, timedelta64.
_ARRAY_KINDS = frozenset("biufcMm")
_INT64 = (-(2**63), 2**64 - 1)


class StateFormatError(ValueError):
    """A payload that is not a checkpoint in this format (or a value it cannot hold)."""


def _packer(buffers: list[memoryview]) -> Callable[[Any], bytes]:
    """A packb whose arrays' bytes go to `buffers` (in the order met)."""

    def pack(value: Any) -> bytes:
        return msgpack.packb(value, default=default, use_bin_type=True, strict_types=True)

    def default(value: Any) -> Any:
        if isinstance(value, tuple):
            return msgpack.ExtType(_TUPLE, pack(list(value)))
        if isinstance(value, np.ndarray):
            if value.dtype.kind not in _ARRAY_KINDS or value.dtype.hasobject:
                raise StateFormatError(f"an array of {value.dtype} cannot be checkpointed")
            arr = np.ascontiguousarray(value)
            buffers.append(memoryview(arr.reshape(-1).view(np.uint8)))
            return msgpack.ExtType(_NDARRAY, pack([arr.dtype.str, list(arr.shape)]))
        if isinstance(value, np.generic):  # a numpy scalar: as the Python value it holds
            return value.item()
        if isinstance(value, dt.datetime):
            return msgpack.ExtType(_DATETIME, value.isoformat().encode())
        if isinstance(value, dt.date):
            return msgpack.ExtType(_DATE, value.isoformat().encode())
        if isinstance(value, dt.timedelta):
            return msgpack.ExtType(_TIMEDELTA, pack([value.days, value.seconds, value.microseconds]))
        if isinstance(value, bool):  # strict_types: subclasses come here
            return bool(value)
        if isinstance(value, int):
            if _INT64[0] <= value <= _INT64[1]:
                return int(value)
            return msgpack.ExtType(_BIGINT, str(int(value)).encode())
        if isinstance(value, (set, frozenset)):
            return msgpack.ExtType(_SET, pack(list(value)))
        if isinstance(value, float):
            return float(value)
        if isinstance(value, str):
            return str(value)
        if isinstance(value, (bytes, bytearray, memoryview)):
            return bytes(value)
        if isinstance(value, dict):
            return dict(value)
        if isinstance(value, list):
            return list(value)
        raise StateFormatError(f"a {type(value).__module__}.{type(value).__name__} cannot be checkpointed")

    return pack


def encode_state(value: Any) -> bytes:
    """`value` (plain data, see the module doc) as a checkpoint payload."""
    buffers: list[memoryview] = []
    head = _packer(buffers)(value)
    return b"".join((_HEAD.pack(MAGIC, STATE_FORMAT, len(head)), head, *buffers))


def decode_state(payload: bytes) -> Any:
    """The value of a checkpoint payload. Raises `StateFormatError` for anything else: an old
    pickle (convert it with `cep state migrate`), a newer format, or damaged bytes."""
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise StateFormatError("a checkpoint payload is bytes")
    payload = bytes(payload)
    if not payload.startswith(MAGIC) or len(payload) < _HEAD.size:
        if is_pickle(payload):
            raise StateFormatError("this checkpoint is an old pickle: convert it with `cep state migrate`")
        raise StateFormatError("not a cep checkpoint")
    _, fmt, head_len = _HEAD.unpack_from(payload)
    if fmt != STATE_FORMAT:
        raise StateFormatError(f"checkpoint format {fmt}, expected {STATE_FORMAT}")
    end = _HEAD.size + head_len
    if end > len(payload):
        raise StateFormatError("damaged checkpoint: shorter than its header says")
    view = memoryview(payload)
    at = [end]  # where the next array's bytes start

    def unpack(data: bytes) -> Any:
        return msgpack.unpackb(data, ext_hook=ext, raw=False, strict_map_key=False, use_list=True)

    def ext(code: int, data: bytes) -> Any:
        if code == _TUPLE:
            return tuple(unpack(data))
        if code == _NDARRAY:
            dtype_text, shape = unpack(data)
            dtype = np.dtype(str(dtype_text))
            if dtype.kind not in _ARRAY_KINDS or dtype.hasobject:
                raise StateFormatError(f"arrays of {dtype} are not checkpoint data")
            shape = tuple(int(n) for n in shape)
            count = int(np.prod(shape, dtype=np.int64))
            if any(n < 0 for n in shape) or at[0] + count * dtype.itemsize > len(payload):
                raise StateFormatError("array size does not match the checkpoint")
            arr = np.frombuffer(view, dtype=dtype, count=count, offset=at[0]).reshape(shape).copy()  # writable
            at[0] += count * dtype.itemsize
            return arr
        if code == _DATETIME:
            return dt.datetime.fromisoformat(data.decode())
        if code == _DATE:
            return dt.date.fromisoformat(data.decode())
        if code == _TIMEDELTA:
            days, seconds, micros = unpack(data)
            return dt.timedelta(days=days, seconds=seconds, microseconds=micros)
        if code == _BIGINT:
            return int(data.decode())
        if code == _SET:
            return set(unpack(data))
        raise StateFormatError(f"unknown extension type {code} in a checkpoint")

    try:
        value = unpack(view[_HEAD.size : end])
    except StateFormatError:
        raise
    except Exception as e:  # noqa: BLE001 - damaged or crafted bytes: say so, never crash on them
        raise StateFormatError(f"damaged checkpoint: {type(e).__name__}: {e}") from None
    if at[0] != len(payload):
        raise StateFormatError("damaged checkpoint: bytes left over after its arrays")
    return value


def is_pickle(payload: bytes) -> bool:
    """Whether `payload` looks like a pickle (protocol 2 or later starts with PROTO, 0x80)."""
    return len(payload) >= 2 and payload[0] == 0x80 and payload[1] <= 5
