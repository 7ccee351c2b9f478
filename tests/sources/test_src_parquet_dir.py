"""A watched directory of Parquet files: each read once, offsets resume, bad files dead-lettered."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from runtime.sources import ManualClock
from runtime.sources.parquet_dir import ParquetDirSource

from src_helpers import plan

pytestmark = pytest.mark.timeout(30)
S = plan("ev", ts="timestamp", v="int")


def put(d: Path, name: str, values: list[int]) -> None:
    pq.write_table(pa.table({"ts": pa.array(values, pa.timestamp("s")), "v": values, "x": values}), d / name)


def values(batches) -> list[int]:
    return [v for b in batches for v in b.frame["v"].to_list()]


def test_new_files_read_once_in_name_order(tmp_path: Path) -> None:
    put(tmp_path, "b.parquet", [3, 4])
    put(tmp_path, "a.parquet", [1, 2])
    (tmp_path / ".c.parquet").write_bytes(b"in progress")
    src = ParquetDirSource(S, tmp_path, max_rows=10, poll_s=0.1, max_delay_s=1.0, clock=ManualClock())
    it = iter(src)
    first = [next(it), next(it)]
    assert values(first) == [1, 2, 3, 4]
    assert first[1].offsets["done"] == ["a.parquet", "b.parquet"]
    assert next(it).empty  # idle tick: nothing re-read
    put(tmp_path, "c.parquet", [5])
    assert values([next(it)]) == [5]


def test_big_file_in_batches_and_resume_mid_file(tmp_path: Path) -> None:
    pq.write_table(
        pa.table({"ts": pa.array(range(10), pa.timestamp("s")), "v": list(range(10))}), tmp_path / "a.parquet", row_group_size=3
    )
    it = iter(ParquetDirSource(S, tmp_path, max_rows=3, clock=ManualClock()))
    b1, b2 = next(it), next(it)
    assert b2.offsets == {"done": [], "file": "a.parquet", "rows": b1.frame.height + b2.frame.height}
    rest = []
    it2 = iter(ParquetDirSource(S, tmp_path, max_rows=3, clock=ManualClock(), start_offsets=b2.offsets))
    while True:
        b = next(it2)
        rest.append(b)
        if b.offsets["done"]:
            break
    assert values([b1, b2]) + values(rest) == list(range(10))
    assert rest[-1].offsets == {"done": ["a.parquet"], "file": None, "rows": 0}


def test_schema_error_and_garbage_become_dead_letters(tmp_path: Path) -> None:
    pq.write_table(pa.table({"v": [1]}), tmp_path / "a.parquet")
    (tmp_path / "b.parquet").write_bytes(b"garbage that never becomes parquet")
    clock = ManualClock()
    it = iter(ParquetDirSource(S, tmp_path, poll_s=1.0, settle_s=3.0, max_delay_s=10.0, clock=clock))
    b = next(it)
    assert b.frame.height == 0 and "field 'ts'" in b.dead["reason"][0] and b.dead["raw"][0].endswith("a.parquet")
    b = next(it)  # after settle_s of an unchanged unreadable file
    assert "not a readable Parquet file" in b.dead["reason"][0]
    assert b.offsets["done"] == ["a.parquet", "b.parquet"]
