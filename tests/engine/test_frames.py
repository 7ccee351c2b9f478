"""What `push` accepts: Polars, Arrow, pandas; struct columns; any timestamp unit and zone."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from cepdsl.engine import FrameError, conform
from cepdsl.types import Type
from tests.support.plans import stream

S = stream(fields=(("ts", Type.TIMESTAMP), ("data.avg", Type.FLOAT), ("n", Type.INT), ("ok", Type.BOOL)))
EXPECTED = pl.DataFrame(
    {"ts": [dt.datetime(2024, 1, 1, 12)], "data.avg": [1.5], "n": [3], "ok": [True]},
    schema=S.schema,
)


def test_engine_frames_pass_through_untouched() -> None:
    assert conform(S, EXPECTED) is EXPECTED


def test_struct_columns_give_dotted_fields_and_tz_aware_times_become_utc() -> None:
    src = pl.DataFrame(
        {
            "ts": [dt.datetime(2024, 1, 1, 13, tzinfo=dt.timezone(dt.timedelta(hours=1)))],
            "data": [{"avg": 1.5, "other": "x"}],
            "n": pl.Series([3], dtype=pl.Int32),
            "ok": [True],
            "extra": ["ignored"],
        }
    )
    assert conform(S, src).equals(EXPECTED)


def test_arrow_tables_batches_and_any_time_unit() -> None:
    table = pa.table(
        {
            "ts": pa.array([1_704_110_400], type=pa.timestamp("s")),
            "data": pa.array([{"avg": 1.5}]),
            "n": pa.array([3], type=pa.int16()),
            "ok": [True],
        }
    )
    assert conform(S, table).equals(EXPECTED)
    assert conform(S, table.to_batches()[0]).equals(EXPECTED)


def test_pandas_frames_with_naive_ns_times_are_utc() -> None:
    df = pd.DataFrame({"ts": [pd.Timestamp("2024-01-01 12:00")], "data.avg": [1.5], "n": [3], "ok": [True]})
    assert conform(S, df).equals(EXPECTED)


def test_rfc3339_strings_are_read_as_times() -> None:
    src = EXPECTED.with_columns(pl.lit("2024-01-01T13:00:00+01:00").alias("ts"))
    assert conform(S, src).equals(EXPECTED)


def test_a_missing_field_or_a_wrong_type_names_the_field() -> None:
    with pytest.raises(FrameError, match="`data.avg` is missing"):
        conform(S, EXPECTED.drop("data.avg"))
    with pytest.raises(FrameError, match="`n`.*expected int"):
        conform(S, EXPECTED.with_columns(pl.lit("x").alias("n")))
