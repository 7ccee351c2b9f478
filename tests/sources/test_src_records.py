"""records_to_frame: typing JSON records to the stream, dead letters with reasons."""

from __future__ import annotations

import json
import math
import time
from datetime import datetime

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.sources.records import Rejected, parse_json_lines, records_to_frame

from src_helpers import METRICS, plan

pytestmark = pytest.mark.timeout(60)

S = plan(ts="timestamp", n="int", x="float", s="str", b="bool")


def test_clean_records_are_typed_in_declaration_order() -> None:
    good, dead = records_to_frame(
        S,
        [{"b": True, "s": "a", "x": 1, "n": 2, "ts": "2024-05-01T10:00:00Z", "extra": [1]}, {"ts": 1714557600000, "n": None}],
    )
    assert dead.height == 0
    assert good.schema == pl.Schema({"ts": pl.Datetime("us"), "n": pl.Int64, "x": pl.Float64, "s": pl.String, "b": pl.Boolean})
    assert good.rows() == [
        (datetime(2024, 5, 1, 10), 2, 1.0, "a", True),
        (datetime(2024, 5, 1, 10), None, None, None, None),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T10:00:00Z", datetime(2024, 5, 1, 10)),
        ("2024-05-01T10:00:00.123456Z", datetime(2024, 5, 1, 10, 0, 0, 123456)),
        ("2024-05-01T12:00:00+02:00", datetime(2024, 5, 1, 10)),
        ("2024-05-01T05:30:00-0430", datetime(2024, 5, 1, 10)),
        ("2024-05-01T10:00:00", datetime(2024, 5, 1, 10)),  # naive = UTC
        ("2024-05-01 10:00:00.5z", datetime(2024, 5, 1, 10, 0, 0, 500000)),
        ("1714557600000", datetime(2024, 5, 1, 10)),  # epoch ms as a string (Redis flat fields)
        (1714557600000, datetime(2024, 5, 1, 10)),
        (1714557600000.5, datetime(2024, 5, 1, 10, 0, 0, 500)),
    ],
)
def test_timestamps(text: object, expected: datetime) -> None:
    good, dead = records_to_frame(plan(ts="timestamp"), [{"ts": text}])
    assert dead.height == 0, dead["reason"].to_list()
    assert good["ts"].to_list() == [expected]


def test_mixed_timestamp_kinds_in_one_batch() -> None:
    good, dead = records_to_frame(plan(ts="timestamp"), [{"ts": 0}, {"ts": "1970-01-01T00:00:01Z"}, {"ts": True}])
    assert good["ts"].to_list() == [datetime(1970, 1, 1), datetime(1970, 1, 1, 0, 0, 1)]
    assert dead["reason"].to_list() == ["field 'ts': expected timestamp, got bool true"]


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("n", 3.0, 3),
        ("n", "5", 5),
        ("n", "5.0", 5),
        ("n", 2**63 - 1, 2**63 - 1),
        ("x", 3, 3.0),
        ("x", "3.5", 3.5),
        ("x", -0.0, -0.0),
        ("s", 5, "5"),
        ("s", 1.5, "1.5"),
        ("s", True, "true"),
        ("b", False, False),
        ("b", "TRUE", True),
        ("b", "false", False),
    ],
)
def test_lossless_coercions(field: str, value: object, expected: object) -> None:
    good, dead = records_to_frame(S, [{"ts": 0, field: value}])
    assert dead.height == 0, dead["reason"].to_list()
    assert good[field].to_list() == [expected]


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("x", "abc", "field 'x': expected float, got str \"abc\""),
        ("x", True, "field 'x': expected float, got bool true"),
        ("n", True, "field 'n': expected int, got bool true"),
        ("n", 3.5, "field 'n': expected int, got float 3.5"),
        ("n", 2**64, f"field 'n': expected int, got int {2**64}"),
        ("s", {"a": 1}, "field 's': expected str, got object {\"a\": 1}"),
        ("s", [1], "field 's': expected str, got array [1]"),
        ("b", 1, "field 'b': expected bool, got int 1"),
        ("ts", "yesterday", "field 'ts': expected timestamp, got str \"yesterday\""),
        ("ts", None, "missing time field 'ts'"),
        ("ts", 1e300, "field 'ts': expected timestamp, got float 1e+300"),
    ],
)
def test_refused_values_go_to_dead_letters_with_reason(field: str, value: object, reason: str) -> None:
    rec = {"ts": 0, "n": 1, field: value}
    good, dead = records_to_frame(S, [{"ts": 0}, rec, {"ts": 1}], ['{"ts": 0}', "RAW", '{"ts": 1}'])
    assert good.height == 2
    assert dead.rows() == [("metrics", reason, "RAW")]


def test_missing_time_field_and_non_objects() -> None:
    records, raws = parse_json_lines([b'{"n": 1}', b"[1, 2]", b"{bad json", b"  ", b"42", b'{"ts": 5}'])
    good, dead = records_to_frame(S, records, raws)
    assert good["ts"].to_list() == [datetime(1970, 1, 1, 0, 0, 0, 5000)]
    reasons = dead["reason"].to_list()
    assert reasons[0] == "missing time field 'ts'"
    assert reasons[1] == "not a JSON object: got array [1, 2]"
    assert reasons[2].startswith("malformed JSON:")
    assert reasons[3] == "not a JSON object: got int 42"
    assert dead["raw"].to_list() == ['{"n": 1}', "[1, 2]", "{bad json", "42"]


def test_stream_without_time_field_keeps_rows_with_null_everything() -> None:
    good, dead = records_to_frame(plan(time_field=None, a="int"), [{}, {"a": 1}])
    assert dead.height == 0 and good["a"].to_list() == [None, 1]


def test_dotted_fields_nested_and_flat() -> None:
    s = plan(ts="timestamp", **{"data.avg": "float", "data.inner.n": "int"})
    good, dead = records_to_frame(
        s,
        [
            {"ts": 0, "data": {"avg": 3, "inner": {"n": 7}}},
            {"ts": 0, "data.avg": 1.5, "data.inner.n": 2},
            {"ts": 0, "data": None},
            {"ts": 0, "data": {"inner": 5}},
        ],
    )
    assert good.columns == ["ts", "data.avg", "data.inner.n"]
    assert good.select("data.avg", "data.inner.n").rows() == [(3.0, 7), (1.5, 2), (None, None)]
    assert dead["reason"].to_list() == ["field 'data.inner.n': expected an object at 'data.inner', got int 5"]


def test_rejected_marker_keeps_its_reason() -> None:
    good, dead = records_to_frame(S, [Rejected("poll failed: boom")], ["boom"])
    assert good.height == 0 and dead.rows() == [("metrics", "poll failed: boom", "boom")]


def test_raw_defaults_to_json_of_the_record() -> None:
    _, dead = records_to_frame(S, [{"ts": "x"}])
    assert dead["raw"].to_list() == ['{"ts": "x"}']


def test_throughput_seven_field_stream() -> None:
    n = 200_000
    recs = [
        {
            "ts": 1_700_000_000_000 + i,
            "host": f"h{i % 50}",
            "cpu": i % 100 + 0.5,
            "memory": 40 + i % 7,
            "status": "ok",
            "latency_ms": 1.25,
            "event_type": "metric",
        }
        for i in range(n)
    ]
    records_to_frame(METRICS, recs[:1000])  # warm up
    best = float("inf")
    # CPU time, best of three: other processes on a shared machine must not fail this test.
    for _ in range(3):
        t = time.process_time()
        good, dead = records_to_frame(METRICS, recs)
        best = min(best, time.process_time() - t)
    rate = n / best
    assert good.height == n and dead.height == 0
    assert good["memory"].dtype == pl.Float64
    assert rate >= 300_000, f"{rate:,.0f} records/s"


# --------------------------------------------------------------------------- property

json_scalars = st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats() | st.text(max_size=8)
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=6
)
field_values = json_values | st.sampled_from(
    ["2024-01-01T00:00:00Z", "2024-01-01 00:00:00+05:00", "12", "3.5", "true", "nan", "1e400"]
)
records_st = st.lists(
    st.one_of(
        st.fixed_dictionaries(
            {},
            optional={
                "ts": field_values,
                "n": field_values,
                "x": field_values,
                "s": field_values,
                "b": field_values,
                "data": json_values | st.fixed_dictionaries({"avg": field_values}),
            },
        ),
        json_values,
    ),
    max_size=25,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records_st)
def test_property_every_record_lands_exactly_once(records: list) -> None:
    s = plan(ts="timestamp", n="int", x="float", s="str", b="bool", **{"data.avg": "float"})
    good, dead = records_to_frame(s, records)
    assert good.height + dead.height == len(records)
    assert good.schema == pl.Schema(s.schema)
    assert good["ts"].null_count() == 0
    assert dead["reason"].null_count() == 0 and dead["raw"].null_count() == 0
    # Whatever survived the float column is a float or null; NaN is allowed ("nan" is a float).
    assert all(v is None or isinstance(v, float) for v in good["x"].to_list())
    # Pure-dict records with a valid integer ts and nothing else always survive.
    if all(isinstance(r, dict) and set(r) == {"ts"} and type(r["ts"]) is int and abs(r["ts"]) < 2**50 for r in records):
        assert dead.height == 0
    json.dumps(dead.rows())  # reasons and raws are plain text
    assert not any(isinstance(v, float) and math.isinf(v) for v in good["n"].to_list())
