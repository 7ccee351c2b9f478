"""Issue 12 item 10: the hostile-events corpus through every source: 0 crashes, every bad
line dead-lettered with its reason, every good line kept (and matched by a rule).

The per-line reference path is the oracle for what each line becomes (hostile_events.py).
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import redis

import cepdsl
from runtime.sources import ManualClock, open_source
from runtime.sources.jsonl import JsonlSource
from runtime.sources.ndjson import block_to_frame
from runtime.sources.parquet_dir import ParquetDirSource
from runtime.sources.records import DEFAULT_MAX_EVENT_BYTES, parse_json_lines, records_to_frame

from hostile_events import hostile_lines
from src_helpers import plan

pytestmark = pytest.mark.timeout(300)
S = plan("ev", ts="timestamp", v="int", note="str")
LINES = hostile_lines()


def oracle() -> tuple[pl.DataFrame, list[str]]:
    goods, reasons = [], []
    for line in LINES:
        good, dead = records_to_frame(S, *parse_json_lines([line], DEFAULT_MAX_EVENT_BYTES))
        goods.append(good)
        reasons += dead["reason"].to_list()
    return pl.concat(goods), reasons


GOOD, REASONS = oracle()


def test_the_corpus_has_both_kinds() -> None:
    assert len(LINES) >= 60
    assert GOOD.height >= 15 and len(REASONS) >= 30
    assert all(REASONS)
    assert sum(r.startswith("event too large") for r in REASONS) == 3
    assert "malformed JSON: nested too deeply" in REASONS


def collect(batches) -> tuple[pl.DataFrame, list[str]]:  # type: ignore[no-untyped-def]
    frames = [b.frame for b in batches if b.frame.height]
    reasons = [r for b in batches for r in b.dead["reason"].to_list()]
    return (pl.concat(frames) if frames else GOOD.clear()), reasons


def same_rows(got: pl.DataFrame) -> None:
    key = ["v", "ts"]
    assert got.sort(key, nulls_last=True).equals(GOOD.sort(key, nulls_last=True))


@pytest.mark.parametrize("max_rows", [1, 7, 10_000])
def test_json_lines_file(tmp_path: Path, max_rows: int) -> None:
    p = tmp_path / "hostile.jsonl"
    p.write_bytes(b"\n".join(LINES) + b"\n")
    got, reasons = collect(list(JsonlSource(S, p, follow=False, max_rows=max_rows, clock=ManualClock())))
    same_rows(got)
    assert sorted(reasons) == sorted(REASONS)
    # Every good line is matched by a rule that takes every event.
    rules = cepdsl.compile("stream ev (ts: timestamp, v: int, note: str)\nrule all from ev\n")
    assert rules.replay({"ev": got})["all"].height == GOOD.height


def test_json_lines_block_as_one(tmp_path: Path) -> None:
    got, dead = block_to_frame(S, b"\n".join(LINES) + b"\n")
    same_rows(got)
    assert sorted(dead["reason"].to_list()) == sorted(REASONS)


def test_json_lines_on_stdin() -> None:
    r, w = os.pipe()

    def feed() -> None:
        with os.fdopen(w, "wb") as f:
            for line in LINES:
                f.write(line + b"\n")

    threading.Thread(target=feed, daemon=True).start()
    src = JsonlSource(S, "-", stdin=r, max_rows=50, clock=ManualClock())
    got, reasons = collect(list(src))
    os.close(r)
    same_rows(got)
    assert sorted(reasons) == sorted(REASONS)


def test_redis_streams(redis_server, redis_client: redis.Redis) -> None:
    raw = redis.Redis.from_url(redis_server.url)
    pipe = raw.pipeline()
    for line in LINES:
        pipe.xadd("hostile", {"data": line})
    pipe.execute()
    src = open_source(f"{redis_server.url}?stream=hostile&group=g&consumer=c&max_delay=200ms", S)
    batches = []
    for b in src:
        batches.append(b)
        src.ack(b)
        if sum(x.frame.height + x.dead.height for x in batches) >= len(LINES):
            break
    src.close()
    got, reasons = collect(batches)
    same_rows(got)
    # A blank entry is skipped as a blank line but is a malformed entry in a stream.
    blank = sum(1 for ln in LINES if not ln.strip())
    assert len(reasons) == len(REASONS) + blank and all(reasons)
    assert sum("event too large" in r for r in reasons) == 3


class _Bodies(BaseHTTPRequestHandler):
    bodies: list[bytes] = []

    def do_GET(self) -> None:  # noqa: N802
        body = self.bodies.pop(0) if self.bodies else b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def bodies_server() -> Iterator[str]:
    _Bodies.bodies = list(LINES)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Bodies)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def test_http_poll(bodies_server: str) -> None:
    """Each body is one poll: one row or one dead letter each (the time is the poll's)."""
    src = open_source(bodies_server + "?interval=1s&max_rows=1", S, clock=ManualClock())
    rows = dead = 0
    reasons = []
    for b in src:
        rows += b.frame.height
        dead += b.dead.height
        reasons += b.dead["reason"].to_list()
        if rows + dead >= len(LINES):
            break
    src.close()
    assert rows + dead == len(LINES) and src.polls == len(LINES)
    assert all(reasons) and sum("event too large" in r for r in reasons) == 3


def test_parquet_dir(tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    t0 = dt.datetime(2024, 1, 1)
    schema = pa.schema([("ts", pa.timestamp("us")), ("v", pa.int64()), ("note", pa.string())])

    def write(name: str, rows: list[tuple]) -> None:  # type: ignore[type-arg]
        cols = list(zip(*rows)) if rows else [[], [], []]
        pq.write_table(pa.table([pa.array(c, t.type) for c, t in zip(cols, schema)], schema=schema), d / name)

    write("a.parquet", [(t0, 1, "ok"), (dt.datetime(9999, 12, 31), 2, "far"), (None, 3, "no time")])
    write("b.parquet", [(t0, 4, "n" * (2 << 20)), (t0, 5, "ok"), (t0, 6, None)])
    write("c.parquet", [])
    pq.write_table(pa.table({"ts": ["not a time"], "v": ["x"], "note": [1]}), d / "d.parquet")
    (d / "e.parquet").write_bytes(b"PAR1 this is not parquet" * 100)
    clock = ManualClock()
    src = ParquetDirSource(S, d, poll_s=0.1, settle_s=0.5, max_rows=2, clock=clock)
    batches = []
    it = iter(src)
    for _ in range(200):
        batches.append(next(it))
        if {"a.parquet", "b.parquet", "c.parquet", "d.parquet", "e.parquet"} <= set(src.done):
            break
    got, reasons = collect(batches)
    # The row without a time is kept by the source; the session dead-letters it (below).
    assert sorted(got["v"].to_list()) == [1, 2, 3, 5, 6]
    session = cepdsl.compile("stream ev (ts: timestamp, v: int, note: str)\nrule all from ev\n").session()
    session.push("ev", got)
    assert session.dead_letters()["reason"].to_list() == ["missing time"]
    assert any(r.startswith("event too large") for r in reasons)
    assert any("e.parquet" in r or "not a readable Parquet file" in r for r in reasons)
    assert len(reasons) == 3 and all(reasons)  # oversized row, d.parquet (types), e.parquet (not Parquet)
