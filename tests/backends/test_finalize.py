"""`finalize`: match records cast and ordered to the rule's output schema.

It builds the output Series by Series (no Polars query), so these pin what the
query used to do: constants added, missing columns null, casts, `sources`."""

from __future__ import annotations

from datetime import datetime

import polars as pl
from polars.testing import assert_frame_equal

from cepdsl.executor import TIME, finalize
from cepdsl.frontend import compile_source

SRC = """
stream s (ts: timestamp, host: str, cpu: float)
rule r
  from s
  severity high
  group by host
  pattern a b
  define a as cpu > 1, b as cpu > 2
"""


def _rule():  # type: ignore[no-untyped-def]
    return compile_source(SRC, "t.cep").rules[0]


def test_constants_casts_missing_columns_and_order() -> None:
    rule = _rule()
    frame = pl.DataFrame(
        {"extra": [1, 2], "cpu": [1, 2], "ts": [0, 1_000_000], "host": ["x", None], "rule": ["no", "no"]},
        schema={"extra": pl.Int64, "cpu": pl.Int64, "ts": pl.Int64, "host": pl.String, "rule": pl.String},
    )
    out = finalize(rule, frame)
    assert out.columns == list(rule.output_schema)
    assert out.dtypes == list(rule.output_schema.values())
    assert out["rule"].to_list() == ["r", "r"]  # the frame's own `rule` column is replaced
    assert out["severity"].to_list() == ["high", "high"]
    assert out["ts"].to_list() == [datetime(1970, 1, 1), datetime(1970, 1, 1, 0, 0, 1)]
    assert out["cpu"].to_list() == [1.0, 2.0]
    assert out["host"].to_list() == ["x", None]
    assert out["match_start"].to_list() == [None, None]  # missing: null of the output dtype
    assert out["a_count"].dtype == pl.Int64 and out["a_count"].to_list() == [None, None]


def test_sources_take_a_column_under_another_name() -> None:
    rule = _rule()
    frame = pl.DataFrame({"ts": [datetime(2000, 1, 1)], TIME: [5], "host": ["h"], "cpu": [3.0]})
    out = finalize(rule, frame, {"ts": TIME})
    assert out["ts"].to_list() == [datetime(1970, 1, 1, 0, 0, 0, 5)]
    assert TIME not in out.columns


def test_no_rows_and_no_columns() -> None:
    rule = _rule()
    assert_frame_equal(finalize(rule, pl.DataFrame()), rule.empty_output())
    empty = pl.DataFrame(schema={"host": pl.String, "ts": pl.Int64})
    assert_frame_equal(finalize(rule, empty), rule.empty_output())


def test_a_changed_rule_object_gets_its_own_constants() -> None:
    rule = _rule()
    frame = pl.DataFrame({"host": ["h"]})
    assert finalize(rule, frame)["severity"].to_list() == ["high"]
    other = compile_source(SRC.replace("severity high", "severity low"), "t.cep").rules[0]
    assert finalize(other, frame)["severity"].to_list() == ["low"]
    assert finalize(rule, frame)["severity"].to_list() == ["high"]
