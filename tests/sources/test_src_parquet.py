"""Reading Parquet history: units, time zones, structs, projection, paths, errors."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from runtime.sources import NoInputError, SchemaError, count_rows, iter_parquet, resolve_paths
from runtime.sources.parquet import scan

from src_helpers import plan

pytestmark = pytest.mark.timeout(60)


def write(path: Path, table: pa.Table, **kw: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, **kw)
    return path


def read_all(stream, paths, **kw) -> pl.DataFrame:
    frames = list(iter_parquet(stream, paths, **kw))
    return pl.concat(frames) if frames else pl.DataFrame(schema=stream.schema)


@pytest.mark.parametrize(("unit", "per_s"), [("s", 1), ("ms", 1_000), ("us", 1_000_000), ("ns", 1_000_000_000)])
@pytest.mark.parametrize("tz", [None, "UTC", "Asia/Seoul", "America/New_York"])
def test_timestamps_of_any_unit_and_zone_become_naive_utc_us(tmp_path: Path, unit: str, per_s: int, tz: str | None) -> None:
    instant = 1_714_557_600  # 2024-05-01T10:00:00Z
    values = [instant * per_s, (instant + 1) * per_s, None]
    path = write(tmp_path / "t.parquet", pa.table({"ts": pa.array(values, pa.timestamp(unit, tz=tz))}))
    out = read_all(plan(ts="timestamp"), [path])
    assert out.schema == pl.Schema({"ts": pl.Datetime("us")})
    assert out["ts"].to_list() == [datetime(2024, 5, 1, 10), datetime(2024, 5, 1, 10, 0, 1), None]


def test_sub_microsecond_nanoseconds_truncate(tmp_path: Path) -> None:
    path = write(tmp_path / "t.parquet", pa.table({"ts": pa.array([1_500], pa.timestamp("ns"))}))
    assert read_all(plan(ts="timestamp"), [path])["ts"].to_list() == [datetime(1970, 1, 1, 0, 0, 0, 1)]


def test_declared_fields_in_declaration_order_extra_columns_ignored(tmp_path: Path) -> None:
    table = pa.table(
        {
            "extra": ["x", "y"],
            "cpu": pa.array([1, 2], pa.int32()),
            "host": ["a", "b"],
            "ts": pa.array([0, 1000], pa.timestamp("ms")),
            "flag": [True, None],
            "n": pa.array([7, 8], pa.uint16()),
        }
    )
    path = write(tmp_path / "t.parquet", table)
    s = plan(ts="timestamp", host="str", cpu="float", flag="bool", n="int")
    out = read_all(s, [path])
    assert out.columns == ["ts", "host", "cpu", "flag", "n"]
    assert out.schema == pl.Schema(s.schema)
    assert out.rows() == [(datetime(1970, 1, 1), "a", 1.0, True, 7), (datetime(1970, 1, 1, 0, 0, 1), "b", 2.0, None, 8)]


def test_projection_reads_only_declared_columns(tmp_path: Path) -> None:
    table = pa.table({"ts": pa.array([0], pa.timestamp("us")), "blob": pa.array([{"k": [1, 2]}]), "c": [1]})
    path = write(tmp_path / "t.parquet", table)
    assert "PROJECT 1/3 COLUMNS" in scan(plan(ts="timestamp"), path).explain()
    assert read_all(plan(ts="timestamp"), [path]).height == 1


def test_struct_and_nested_struct_fields(tmp_path: Path) -> None:
    table = pa.table(
        {
            "ts": pa.array([0, 1], pa.timestamp("s")),
            "data": pa.array([{"avg": 1.5, "max": 9, "inner": {"v": 1, "w": "x"}}, {"avg": None, "max": 3, "inner": None}]),
            "flat.key": [10, 20],
        }
    )
    path = write(tmp_path / "t.parquet", table)
    s = plan(ts="timestamp", **{"data.avg": "float", "data.inner.v": "int", "flat.key": "float"})
    out = read_all(s, [path])
    assert out.columns == ["ts", "data.avg", "data.inner.v", "flat.key"]
    assert out.select("data.avg", "data.inner.v", "flat.key").rows() == [(1.5, 1, 10.0), (None, None, 20.0)]


def test_missing_field_names_field_stream_and_file(tmp_path: Path) -> None:
    path = write(tmp_path / "m.parquet", pa.table({"ts": pa.array([0], pa.timestamp("s"))}))
    with pytest.raises(SchemaError) as e:
        list(iter_parquet(plan("metrics", ts="timestamp", cpu="float"), [path]))
    msg = str(e.value)
    assert "'cpu'" in msg and "'metrics'" in msg and str(path) in msg


def test_missing_struct_child_is_a_missing_field(tmp_path: Path) -> None:
    path = write(tmp_path / "m.parquet", pa.table({"ts": pa.array([0], pa.timestamp("s")), "data": pa.array([{"max": 1}])}))
    with pytest.raises(SchemaError, match=r"'data\.avg'.*missing"):
        list(iter_parquet(plan(ts="timestamp", **{"data.avg": "float"}), [path]))


@pytest.mark.parametrize(
    ("declared", "column", "found"),
    [
        ("int", pa.array(["5"]), "String"),
        ("float", pa.array(["x"]), "String"),
        ("bool", pa.array([1]), "Int64"),
        ("timestamp", pa.array([1]), "Int64"),
        ("str", pa.array([1.5]), "Float64"),
        ("int", pa.array([1.5]), "Float64"),
    ],
)
def test_incompatible_type_names_field_file_found_and_expected(tmp_path: Path, declared: str, column: pa.Array, found: str) -> None:
    path = write(tmp_path / "bad.parquet", pa.table({"v": column}))
    with pytest.raises(SchemaError) as e:
        list(iter_parquet(plan(time_field=None, v=declared), [path]))
    msg = str(e.value)
    assert "'v'" in msg and str(path) in msg and found in msg and f"expected {declared}" in msg


def test_batches_are_bounded_and_keep_order(tmp_path: Path) -> None:
    n = 25_000
    path = write(tmp_path / "big.parquet", pa.table({"i": pa.array(range(n), pa.int64())}), row_group_size=7_000)
    frames = list(iter_parquet(plan(time_field=None, i="int"), [path], batch_rows=4_000))
    assert all(f.height <= 7_000 for f in frames) and len(frames) >= 4
    assert pl.concat(frames)["i"].to_list() == list(range(n))


def test_resolve_file_dir_glob_and_errors(tmp_path: Path) -> None:
    t = pa.table({"i": [1]})
    a = write(tmp_path / "d" / "b.parquet", t)
    b = write(tmp_path / "d" / "a.parquet", t)
    c = write(tmp_path / "d" / "sub" / "c.parquet", t)
    (tmp_path / "d" / "notes.txt").write_text("x")
    assert resolve_paths(str(a)) == [a]
    assert resolve_paths(str(tmp_path / "d")) == [b, a, c]
    assert resolve_paths(str(tmp_path / "d" / "*.parquet")) == [b, a]
    assert resolve_paths(str(tmp_path / "d" / "**" / "*.parquet")) == [b, a, c]
    for spec in (tmp_path / "nothing*.parquet", tmp_path / "missing.parquet"):
        with pytest.raises(NoInputError, match="nothing|missing"):
            resolve_paths(str(spec))
    (tmp_path / "empty").mkdir()
    with pytest.raises(NoInputError, match="empty"):
        resolve_paths(str(tmp_path / "empty"))
    assert count_rows([a, b, c]) == 3


def test_several_files_in_order_and_per_file_schemas(tmp_path: Path) -> None:
    write(tmp_path / "1.parquet", pa.table({"ts": pa.array([0], pa.timestamp("ms")), "v": pa.array([1], pa.int8())}))
    write(tmp_path / "2.parquet", pa.table({"v": [2.5], "ts": pa.array([5], pa.timestamp("s", tz="UTC"))}))
    out = read_all(plan(ts="timestamp", v="float"), resolve_paths(str(tmp_path)))
    assert out.rows() == [(datetime(1970, 1, 1), 1.0), (datetime(1970, 1, 1, 0, 0, 5), 2.5)]


def test_not_a_parquet_file(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    path.write_bytes(b"not parquet")
    with pytest.raises(SchemaError, match="not a readable Parquet file"):
        list(iter_parquet(plan(time_field=None, v="int"), [path]))
