"""The hostile-events corpus (issue 12): sizes, encodings, nesting, timestamps, numbers.

Each entry is one JSON line (without its newline) for the stream
`ev (ts: timestamp, v: int, note: str)`. What each line should become is not written
here: the per-line reference path (`parse_json_lines` + `records_to_frame`) is the oracle,
and every source must agree with it. Used by tests/sources/test_hostile_events.py and
bench/bench_hostile.py.
"""

from __future__ import annotations

import json

MB = 1 << 20


def _line(v: int, ts: object = "2024-01-01T00:00:00Z", note: object = "ok", **extra: object) -> bytes:
    return json.dumps({"ts": ts, "v": v, "note": note, **extra}, ensure_ascii=False).encode()


def hostile_lines() -> list[bytes]:
    v = iter(range(1, 10_000))
    lines = [
        # -- plain good lines, to be kept around the bad ones
        _line(next(v)),
        _line(next(v), note="emoji 🙂, RTL \u202e, line sep \u2028, nul \u0000"),
        _line(next(v), note='quotes " and \\ backslashes'),
        _line(next(v), extra={"deep": [[[[[[[[[[1]]]]]]]]]]}),
        _line(next(v), ts=1704067200000),
        _line(next(v), ts="1704067200000"),
        _line(next(v), ts=1704067200000.5),
        _line(next(v), ts="9999-12-31T23:59:59Z"),
        _line(next(v), ts="1970-01-01T00:00:00Z"),
        _line(next(v), ts="2024-01-01T00:00:00+14:00"),
        _line(next(v), ts="2024-01-01 00:00:00"),
        _line(next(v), ts="2024-01-01t00:00:00.123456789z"),
        _line(next(v), ts="2016-12-31T23:59:60Z"),
        _line(next(v), ts="0001-01-01T00:00:00Z"),
        _line(next(v), ts=-62135596800000),
        # -- timestamps that cannot be
        _line(next(v), ts="2024-13-45T00:00:00Z"),
        _line(next(v), ts="2024-01-01T00:00:00+25:00"),
        _line(next(v), ts=1e30),
        _line(next(v), ts="NaN"),
        _line(next(v), ts=None),
        _line(next(v), ts=True),
        _line(next(v), ts=[2024]),
        _line(next(v), ts={"t": 1}),
        _line(next(v), ts=""),
        _line(next(v), ts="10000-01-01T00:00:00Z"),
        _line(next(v), ts="2024-01-01T00:00:00Z" + "0" * 10_000),
        # -- numbers
        _line(next(v)).replace(b'"v": ', b'"v": 1e400, "x": '),
        b'{"ts": "2024-01-01T00:00:00Z", "v": 18446744073709551616, "note": "big"}',
        b'{"ts": "2024-01-01T00:00:00Z", "v": -0, "note": "minus zero"}',
        b'{"ts": "2024-01-01T00:00:00Z", "v": 3.0, "note": "integral float"}',
        b'{"ts": "2024-01-01T00:00:00Z", "v": 3.5, "note": "fraction"}',
        b'{"ts": "2024-01-01T00:00:00Z", "v": "7", "note": "numeric text"}',
        b'{"ts": "2024-01-01T00:00:00Z", "v": 0x10, "note": "hex"}',
        b'{"ts": "2024-01-01T00:00:00Z", "v": NaN, "note": "nan"}',
        b'{"ts": "2024-01-01T00:00:00Z", "v": ' + b"9" * 5000 + b', "note": "5000 digits"}',
        # -- keys
        b'{"ts": "2024-01-01T00:00:00Z", "v": 1, "v": 77, "note": "duplicate key, last wins"}',
        b'{"ts": "2024-01-01T00:00:00Z", "\\u0076": 78, "note": "escaped key"}',
        b'{"ts": "2024-01-01T00:00:00Z", "v": 79, "note": "\\ud800 lone surrogate"}',
        b'{"ts": "2024-01-01T00:00:00Z", "v": 80, "note": {"nested": "object"}}',
        b'{"ts": "2024-01-01T00:00:00Z", "v": 81, "note": 12345}',
        # -- encodings
        b'{"ts": "2024-01-01T00:00:00Z", "v": 82, "note": "latin-1 \xe9"}',
        b"\xef\xbb\xbf" + _line(83),
        _line(84).decode().encode("utf-16"),
        b'{"ts": "2024-01-01T00:00:00Z", "v": 85, "note": "raw nul \x00 inside"}',
        b"\x00" * 64,
        b"\xff\xfe\xfd",
        # -- shape
        b"[1, 2, 3]",
        b'"just a string"',
        b"42",
        b"null",
        b"{}",
        b"{",
        b'{"ts": "2024-01-01T00:00:00Z", "v": 86, "note": "trailing comma",}',
        b'{"ts": "2024-01-01T00:00:00Z", "v": 87} {"ts": "2024-01-01T00:00:00Z", "v": 88}',
        b"   ",
        b"\t" + _line(89) + b"  \r",
        # -- nesting
        b"[" * 100_000 + b"]" * 100_000,
        b'{"ts": "2024-01-01T00:00:00Z", "v": 90, "x": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        b'{"a":' * 20_000 + b"1" + b"}" * 20_000,
        # -- sizes
        _line(91, note="n" * (MB - 200)),  # just under the 1 MB limit
        _line(92, note="n" * (MB + 10)),  # just over
        _line(93, note="n" * (4 * MB)),  # the 4 MB line
        b'{"ts": "2024-01-01T00:00:00Z", "v": 94, "note": "' + b"\\u00e9" * 300_000 + b'"}',
        _line(next(v)),
    ]
    return lines
