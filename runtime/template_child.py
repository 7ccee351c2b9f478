"""The process that renders message templates for the notifier (runtime/notify/render_worker.py).

A template is code a rule author wrote. The sandbox (cepdsl/templates.py) refuses what it
can see coming and stops loops at the time budget, but a single C-level step (a regex, a
sort, a conversion) cannot be interrupted from Python. So templates that are not plain
text with holes are rendered here, in a process the notifier kills when the time limit
passes, under an address-space limit (`RLIMIT_AS`: the interpreter as loaded plus
`memory_mb`) so no render can take more than that.

Protocol on stdin/stdout: frames of a 4-byte big-endian length and a msgpack body.
Request `{"t": template, "r": record, "c": max_chars, "s": max_seconds}` (times, dates,
durations and decimals as msgpack extension types, see `ext_encode`), reply `{"ok": text}`
or `{"err": reason}`. The child writes `READY` once set up. Kept import-light: this module
is not inside `runtime.notify`, whose package imports Polars.

    python -m runtime.template_child MEMORY_MB
"""

from __future__ import annotations

import datetime as dt
import decimal
import os
import resource
import struct
import sys
from typing import Any, BinaryIO

import msgpack

READY = b"READY\n"
_HEADER = struct.Struct(">I")
_DATETIME, _DATE, _TIME, _TIMEDELTA, _DECIMAL, _BIGINT = range(1, 7)


def ext_encode(value: Any) -> Any:
    """msgpack `default`: the record values JSON has no type for."""
    if isinstance(value, dt.datetime):
        return msgpack.ExtType(_DATETIME, value.isoformat().encode())
    if isinstance(value, dt.date):
        return msgpack.ExtType(_DATE, value.isoformat().encode())
    if isinstance(value, dt.time):
        return msgpack.ExtType(_TIME, value.isoformat().encode())
    if isinstance(value, dt.timedelta):
        return msgpack.ExtType(_TIMEDELTA, msgpack.packb([value.days, value.seconds, value.microseconds]))
    if isinstance(value, decimal.Decimal):
        return msgpack.ExtType(_DECIMAL, str(value).encode())
    if isinstance(value, (set, frozenset)):
        return list(value)
    if isinstance(value, int):  # beyond 64 bits
        return msgpack.ExtType(_BIGINT, str(value).encode())
    return str(value)


def ext_decode(code: int, data: bytes) -> Any:
    if code == _DATETIME:
        return dt.datetime.fromisoformat(data.decode())
    if code == _DATE:
        return dt.date.fromisoformat(data.decode())
    if code == _TIME:
        return dt.time.fromisoformat(data.decode())
    if code == _TIMEDELTA:
        days, seconds, micros = msgpack.unpackb(data)
        return dt.timedelta(days=days, seconds=seconds, microseconds=micros)
    if code == _DECIMAL:
        return decimal.Decimal(data.decode())
    if code == _BIGINT:
        return int(data.decode())
    raise ValueError(f"unknown extension type {code}")


def write_frame(out: BinaryIO, body: bytes) -> None:
    out.write(_HEADER.pack(len(body)) + body)
    out.flush()


def read_exactly(inp: BinaryIO, n: int) -> bytes:
    data = inp.read(n)
    if data is None or len(data) != n:
        raise EOFError
    return data


def vm_bytes() -> int:
    """This process's address space now (VmSize), in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def main(argv: list[str]) -> int:
    from cepdsl.templates import TemplateError, render

    memory_mb = int(argv[0]) if argv else 64
    render("{% for x in [1] %}{{ x }}{% endfor %}", {})  # load everything a render needs first
    if memory_mb > 0:
        cap = vm_bytes() + memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing a template does can write into the protocol
    out.write(READY)
    out.flush()
    while True:
        try:
            (n,) = _HEADER.unpack(read_exactly(inp, _HEADER.size))
            req = msgpack.unpackb(read_exactly(inp, n), ext_hook=ext_decode, strict_map_key=False)
        except EOFError:
            return 0
        try:
            reply: dict[str, str] = {"ok": render(req["t"], req["r"], max_chars=req["c"], max_seconds=req["s"])}
        except TemplateError as e:
            reply = {"err": str(e)}
        except MemoryError:
            reply = {"err": "template used too much memory"}
        except Exception as e:  # noqa: BLE001 - reported to the notifier as the template's failure
            reply = {"err": f"{type(e).__name__}: {e}"}
        try:
            write_frame(out, msgpack.packb(reply))
        except MemoryError:
            write_frame(out, msgpack.packb({"err": "template used too much memory"}))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main(sys.argv[1:]))
