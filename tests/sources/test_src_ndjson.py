"""The columnar JSON-lines path (ndjson.py) ≡ the per-line path, for any mix of lines."""

from __future__ import annotations

import datetime as dt
import json
import math
import os

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from runtime.sources.ndjson import block_to_frame, split_lines
from runtime.sources.records import parse_json_lines, records_to_frame

from src_helpers import METRICS, plan

settings.register_profile("ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")

S = plan("ev", ts="timestamp", n="int", x="float", s="str", b="bool", **{"data.avg": "float", "data.tag": "str"})
#: Only top-level keys: read by the one-pass kernel (jsonscan.py) instead of Polars' reader.
FLAT = plan("ev", ts="timestamp", n="int", x="float", s="str", b="bool")
BOTH = pytest.mark.parametrize("schema", [S, FLAT], ids=["nested", "flat"])


def per_line(stream, block: bytes) -> tuple[pl.DataFrame, pl.DataFrame]:
    return records_to_frame(stream, *parse_json_lines(split_lines(block)))


def same(stream, block: bytes) -> tuple[pl.DataFrame, pl.DataFrame]:
    good, dead = block_to_frame(stream, block)
    want_good, want_dead = per_line(stream, block)
    assert_frame_equal(good, want_good)
    assert_frame_equal(dead, want_dead)
    return good, dead


# --------------------------------------------------------------------------- examples


def test_clean_block_is_typed_without_dead_letters() -> None:
    block = b"".join(
        json.dumps(
            {"ts": "2024-01-01T00:00:0%dZ" % i, "n": i, "x": i / 2, "s": f"h{i}", "b": i % 2 == 0, "data": {"avg": 1.5, "tag": "t"}}
        ).encode()
        + b"\n"
        for i in range(5)
    )
    good, dead = same(S, block)
    assert good.height == 5 and dead.height == 0
    assert good["n"].to_list() == [0, 1, 2, 3, 4] and good["data.avg"].to_list() == [1.5] * 5


@pytest.mark.parametrize(
    "line",
    [
        b'{"ts": 0, "s": 1e5}',  # Polars would say "100000", json.dumps says "100000.0"
        b'{"ts": 0, "s": [1]}',  # an array where text is expected: refused
        b'{"ts": 0, "n": 1, "n": 2}',  # duplicate key: the last one counts
        b'{"ts": 0, "s": "\\ud800"}',  # lone surrogate
        b'{"ts": 0, "\\u006e": 7}',  # escaped key
        b'{"ts": 0, "n": 3.0}',  # integral float for int: accepted
        b'{"ts": 0, "n": 3.5}',
        b'{"ts": 1e300}',  # out-of-range epoch
        b'{"ts": "1700000000000"}',  # epoch ms as a string
        b'{"ts": "1_000"}',  # Python float() takes it; so must we
        b'{"ts": true}',
        b'{"n": 1}',  # missing time
        b'{"ts": 0, "data": 5}',
        b'{"ts": 0, "data.avg": 2, "data": {"tag": "z"}}',
        b'{"ts": 0, "data": null, "data.avg": 3}',
        b'{"ts": 0, "x": NaN}',
        b'{"ts": 0, "x": 1e400}',
        b'{"ts": 0, "b": "TRUE"}',
        b"[1, 2]",
        b"not json",
        b'{"ts": 0, "s": "tab\there"}',
        b'\xef\xbb\xbf{"ts": 0}',
        b'{"ts": 0, "s": "\xff"}',
        b'{"ts": "2024-01-01 00:00:00+0100", "x": -0}',
        b"\x0c",
        b'\x0b{"ts": 0}',  # blank to bytes.strip, not whitespace to json.loads
        b'{"ts": 0, "x": 0.1000000000000000055511151231257827021181583404541015625}',  # > 19 digits
        b'{"ts": 0, "x": 123456789012345678901234567890, "n": 123456789012345678}',
        b'{"ts": 0, "x": 5e-324, "n": -9223372036854775808}',  # subnormal; int64 min (19 digits)
        b'{"ts": 1.7e12, "x": -0.0, "n": -0}',
        b'{"ts": 0, "x": 2.5, "n": 1E2}',
        b'{"ts": 0, "meta": {"n": 5}, "n": 1}',
    ],
)
@BOTH
def test_each_odd_line_among_good_ones(schema, line: bytes) -> None:  # noqa: ANN001
    good_line = b'{"ts": 1000, "n": 1, "x": 2.5, "s": "a", "b": true, "data": {"avg": 1.0, "tag": "q"}}'
    same(schema, b"\n".join([good_line, line, good_line, b"", b"  ", good_line]) + b"\n")
    same(schema, line + b"\r\n" + good_line)


def test_blank_and_empty_blocks() -> None:
    good, dead = same(S, b"\n \n\t\n")
    assert good.height == 0 and dead.height == 0


# --------------------------------------------------------------------------- property

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6),
    st.sampled_from(
        ["5", "2.5", "true", "FALSE", "2024-01-01T00:00:00Z", "2024-01-01T00:00:00.5+02:00", "1700000000000", "nan", " 7"]
    ),
)
_values = st.one_of(
    _scalars, st.lists(_scalars, max_size=2), st.dictionaries(st.sampled_from(["avg", "tag", "n"]), _scalars, max_size=2)
)


@st.composite
def _line(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["good", "good", "good", "random", "text", "dup", "blank", "mutated", "mutated"]))
    if kind == "good":
        rec = {
            "ts": draw(st.one_of(st.integers(0, 2**41), st.sampled_from(["2024-03-01T10:00:00Z", "2024-03-01T10:00:00.123456Z"]))),
            "n": draw(st.integers(-(2**63), 2**63 - 1)),
            "x": draw(st.floats(allow_nan=False, allow_infinity=False)),
            "s": draw(st.text(max_size=8)),
            "b": draw(st.booleans()),
            "data": {"avg": draw(st.floats(allow_nan=False, allow_infinity=False)), "tag": draw(st.text(max_size=3))},
        }
        for k in draw(st.sets(st.sampled_from(list(rec)), max_size=2)):
            del rec[k]
        return json.dumps(rec, ensure_ascii=draw(st.booleans())).encode()
    if kind == "random":
        keys = st.sampled_from(["ts", "n", "x", "s", "b", "data", "data.avg", "other"])
        return json.dumps(draw(st.dictionaries(keys, _values, max_size=6))).encode()
    if kind == "dup":
        a, b = draw(st.sampled_from(["n", "s", "ts", "data"])), draw(_scalars)
        return b'{"ts": 5, "%s": %s, "%s": %s}' % (a.encode(), json.dumps(draw(_scalars)).encode(), a.encode(), json.dumps(b).encode())
    if kind == "mutated":  # a good line with a few bytes changed: grammar edge cases
        rec = {"ts": 5, "n": 1, "x": -0.5e-3, "s": "h", "b": False, "other": {"k": [1, "a", None, {"z": True}]}, "o2": []}
        text = bytearray(json.dumps(rec, separators=draw(st.sampled_from([(",", ":"), (", ", ": ")]))).encode())
        for _ in range(draw(st.integers(1, 3))):
            at = draw(st.integers(0, len(text)))
            op = draw(st.sampled_from(["insert", "delete", "replace"]))
            ch = draw(st.sampled_from(b'{}[]":,\\ntfule0123456789.-+ \t\x0b\x00\x1fNI'))
            if op == "insert":
                text.insert(at, ch)
            elif at < len(text):
                if op == "delete":
                    del text[at]
                else:
                    text[at] = ch
        return bytes(text)
    if kind == "blank":
        return draw(st.sampled_from([b"", b" ", b"\t", b"\r"]))
    return draw(st.one_of(st.binary(max_size=12), st.text(max_size=12).map(str.encode)))


@BOTH
@given(lines=st.lists(_line(), max_size=12), eol=st.sampled_from([b"\n", b"\r\n"]), final_eol=st.booleans())
def test_any_mix_of_lines_gives_the_per_line_result(schema, lines: list[bytes], eol: bytes, final_eol: bool) -> None:  # noqa: ANN001
    block = eol.join(ln.replace(b"\n", b" ") for ln in lines) + (eol if final_eol else b"")
    same(schema, block)


@given(st.lists(_line(), max_size=8))
def test_metrics_schema_too(lines: list[bytes]) -> None:
    same(METRICS, b"\n".join(ln.replace(b"\n", b" ") for ln in lines))


def test_the_columnar_path_is_taken_and_odd_rows_alone_go_line_by_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import runtime.sources.ndjson as nd

    calls: list[int] = []
    real = nd.parse_json_lines

    def counting(lines):  # type: ignore[no-untyped-def]
        calls.append(len(lines))
        return real(lines)

    monkeypatch.setattr(nd, "parse_json_lines", counting)
    good_line = b'{"ts": 1000, "n": 1, "s": "a"}'
    nd.block_to_frame(S, b"\n".join([good_line] * 50))
    assert calls == []  # clean: no per-line parsing at all
    good, dead = nd.block_to_frame(S, b"\n".join([good_line] * 50 + [b'{"ts": 0, "s": 5, "n": 2}', b'{"n": 1}']))
    assert calls == [2]  # only the two odd rows
    assert good.height == 51 and good["s"].to_list()[-1] == "5"
    assert dead["reason"].to_list() == ["missing time field 'ts'"]
    nd.block_to_frame(S, b"\n".join([good_line] * 50 + [b"{bad"]))
    assert calls[-1] == 51  # Polars refused the block: all of it line by line


def test_flat_schemas_take_the_one_pass_kernel_and_only_odd_rows_go_line_by_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import runtime.sources.ndjson as nd

    calls: list[int] = []
    real = nd.parse_json_lines
    monkeypatch.setattr(nd, "parse_json_lines", lambda lines: calls.append(len(lines)) or real(lines))
    monkeypatch.setattr(nd.pl, "read_ndjson", None)  # the kernel path must not need Polars' reader
    good_line = b'{"ts": "2024-01-01T00:00:00.25Z", "n": 1, "x": -0, "s": "a", "b": true, "extra": {"deep": [1, {"y": null}]}}'
    good, dead = nd.block_to_frame(FLAT, b"\n".join([good_line] * 50) + b"\n\n")
    assert calls == [] and good.height == 50 and dead.height == 0
    assert good.row(0) == (dt.datetime(2024, 1, 1, 0, 0, 0, 250_000), 1, 0.0, "a", True)
    assert math.copysign(1, good["x"][0]) == 1  # the integer -0 is 0.0, as json.loads has it
    odd = [b'{"ts": 0, "s": "tab\\u0009", "n": 2}', b'{"ts": 0, "n": 3, "n": 4}', b'{"ts": NaN}', b'{"n": 1}']
    good, dead = nd.block_to_frame(FLAT, b"\n".join([good_line] * 10 + odd))
    assert calls == [4]
    assert good["s"].to_list()[-2:] == ["tab\t", None] and good["n"].to_list()[-1] == 4
    assert [r.split(":")[0] for r in dead["reason"].to_list()] == ["field 'ts'", "missing time field 'ts'"]  # json.loads takes NaN


def test_epoch_ms_numbers_and_rfc3339_strings_in_one_block() -> None:
    good, _ = same(S, b'{"ts": 1500}\n{"ts": "1970-01-01T00:00:02Z"}\n{"ts": 2500.5}\n')
    assert good["ts"].cast(pl.Int64).to_list() == [1_500_000, 2_000_000, 2_500_500]


def test_a_big_block_is_typed_in_pieces_with_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    import runtime.sources.ndjson as nd

    monkeypatch.setattr(nd, "_PIECE", 64)  # pieces of a line or two
    lines = [b'{"ts": %d, "n": %d, "s": "v%d"}' % (i, i, i) for i in range(40)]
    lines[7] = b"{broken"
    lines[23] = b'{"ts": 5, "s": 12}'
    good, dead = same(S, b"\n".join(lines) + b"\n")
    assert good.height == 39 and dead["raw"].to_list() == ["{broken"]
