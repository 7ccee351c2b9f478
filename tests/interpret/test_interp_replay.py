"""Replay (§6) and filter rules (§5.1): ordering, null times, schemas, input shapes."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from cepdsl.interpret import run, run_detailed
from tests.interpret.interp_helpers import SCHEMA, at, compile_rules, events, matches, records

HIGH = "rule high from m where cpu > 80\n"


def test_filter_emits_one_match_per_true_row_in_time_order() -> None:
    frame = events(
        {"ts": 30, "host": "c", "cpu": 90.0},
        {"ts": 10, "host": "a", "cpu": 95.0},
        {"ts": 20, "host": "b", "cpu": 50.0},  # cpu ≤ 80: no match
    )
    assert matches(HIGH, frame, "ts", "host") == [{"ts": 10, "host": "a"}, {"ts": 30, "host": "c"}]


def test_ties_in_time_keep_input_order() -> None:
    frame = events(
        {"ts": 5, "host": "z", "cpu": 90.0},
        {"ts": 1, "host": "y", "cpu": 90.0},
        {"ts": 5, "host": "a", "cpu": 90.0},
        {"ts": 5, "host": "m", "cpu": 90.0},
    )
    assert [r["host"] for r in matches(HIGH, frame, "host")] == ["y", "z", "a", "m"]


def test_rows_with_null_time_are_skipped() -> None:
    frame = events({"ts": None, "host": "a", "cpu": 99.0}, {"ts": 1, "host": "b", "cpu": 99.0})
    assert matches(HIGH, frame, "host") == [{"host": "b"}]


def test_where_null_drops_the_row() -> None:
    frame = events({"ts": 1, "host": "a", "cpu": None}, {"ts": 2, "host": "b", "cpu": 81.0})
    assert matches(HIGH, frame, "host") == [{"host": "b"}]


def test_filter_record_has_exactly_the_output_columns_and_dtypes() -> None:
    frame = events({"ts": 1, "host": "a", "cpu": 99.0, "n": 3, "status": "up"})
    out = run(compile_rules("rule high from m where cpu > 80 severity high\n"), {"m": frame})["high"]
    assert out.schema == pl.Schema(
        {
            "rule": pl.String,
            "ts": pl.Datetime("us"),
            "severity": pl.String,
            "host": pl.String,
            "cpu": pl.Float64,
            "n": pl.Int64,
            "status": pl.String,
        }
    )
    assert out.row(0) == ("high", at(1), "high", "a", 99.0, 3, "up")


def test_empty_result_has_the_right_schema() -> None:
    program = compile_rules(HIGH + "rule win from m window tumbling 1m\n")
    out = run(program, {"m": events({"ts": 1, "cpu": 1.0})})
    assert out["high"].height == 0
    assert out["high"].columns == ["rule", "ts", "severity", "host", "cpu", "n", "status"]
    assert out["win"].height == 1  # the window rule still sees the row


def test_stream_missing_from_data_has_no_rows() -> None:
    result = run_detailed(compile_rules(HIGH), {})
    assert result.matches["high"].height == 0 and result.suppressed == {"high": 0}


def test_extra_columns_are_ignored_and_narrow_types_widened() -> None:
    frame = pl.DataFrame(
        {"ts": [at(1)], "host": ["a"], "cpu": [99.0], "n": [7], "status": ["x"], "extra": [1]},
        schema={"ts": pl.Datetime("ms"), "host": pl.String, "cpu": pl.Float32, "n": pl.Int32, "status": pl.String, "extra": pl.Int8},
    )
    out = run(compile_rules(HIGH), {"m": frame})["high"]
    assert out["n"].dtype == pl.Int64 and out["cpu"].dtype == pl.Float64
    assert records(out, "ts", "n") == [{"ts": 1, "n": 7}]


def test_declared_field_missing_from_data_is_an_error_naming_it() -> None:
    frame = events({"ts": 1}).drop("status")
    with pytest.raises(ValueError, match="status"):
        run(compile_rules(HIGH), {"m": frame})


def test_timezone_aware_timestamps_are_converted_to_utc() -> None:
    # 02:00:01 at UTC+2 is 00:00:01 UTC = T0 + 1 s.
    local = dt.datetime(2024, 1, 1, 2, 0, 1, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    frame = events({"ts": 0, "host": "a", "cpu": 99.0}).with_columns(
        pl.Series("ts", [local], dtype=pl.Datetime("us", "Europe/Berlin"))
    )
    assert records(run(compile_rules(HIGH), {"m": frame})["high"], "ts") == [{"ts": 1}]


def test_dotted_fields_from_flat_or_struct_columns() -> None:
    streams = "stream d (ts: timestamp, data.avg: float)\n"
    program = compile_rules("rule big from d where data.avg > 1\n", streams)
    flat = pl.DataFrame({"ts": [at(1), at(2)], "data.avg": [0.5, 2.0]})
    nested = pl.DataFrame({"ts": [at(1), at(2)], "data": [{"avg": 0.5}, {"avg": 2.0}]})
    for frame in (flat, nested):
        out = run(program, {"d": frame})["big"]
        assert out.columns == ["rule", "ts", "severity", "data.avg"]
        assert records(out, "ts", "data.avg") == [{"ts": 2, "data.avg": 2.0}]


def test_stream_without_time_field_keeps_input_order_and_null_ts() -> None:
    streams = "stream k (id: int, v: float)\n"
    program = compile_rules("rule pos from k where v > 0\n", streams)
    frame = pl.DataFrame({"id": [3, 1, 2], "v": [1.0, -1.0, 2.0]})
    out = run(program, {"k": frame})["pos"]
    assert out["id"].to_list() == [3, 2]
    assert out["ts"].to_list() == [None, None]


def test_every_rule_of_the_program_gets_a_frame() -> None:
    program = compile_rules(HIGH + "rule low from m where cpu < 10\n")
    out = run(program, {"m": events({"ts": 1, "cpu": 5.0}, schema=SCHEMA)})
    assert set(out) == {"high", "low"}
    assert (out["high"].height, out["low"].height) == (0, 1)


def test_rules_on_several_streams() -> None:
    streams = "stream m (ts: timestamp, host: str, cpu: float, n: int, status: str)\nstream auth (ts: timestamp, user: str)\n"
    program = compile_rules(HIGH + 'rule root from auth where user == "root"\n', streams)
    auth = pl.DataFrame({"ts": [at(3), at(1)], "user": ["root", "root"]})
    out = run(program, {"m": events({"ts": 2, "cpu": 90.0}), "auth": auth})
    assert records(out["high"], "ts") == [{"ts": 2}]
    assert records(out["root"], "ts", "user") == [{"ts": 1, "user": "root"}, {"ts": 3, "user": "root"}]
