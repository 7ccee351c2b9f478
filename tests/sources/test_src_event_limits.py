"""Issue 12 item 1: one huge event is a dead letter with its reason, never a crash.

Before: a JSON line of ~4 MB made `block_to_frame` call itself on the same block
(RecursionError), the good lines of the batch were lost, and a followed file with a
saved offset crashed again on every restart.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import redis

from runtime.sources import ManualClock, open_source
from runtime.sources.errors import SourceSpecError
from runtime.sources.jsonl import JsonlSource
from runtime.sources.ndjson import block_to_frame, blocks_to_frame
from runtime.sources.records import DEFAULT_MAX_EVENT_BYTES, parse_json_lines
from runtime.sources.spec import parse_size_bytes

from src_helpers import plan

pytestmark = pytest.mark.timeout(60)
S = plan("ev", ts="timestamp", v="int", note="str")
NESTED = plan("ev", ts="timestamp", **{"d.v": "int", "note": "str"})


def good(v: int) -> bytes:
    return json.dumps({"ts": 1000 * v, "v": v, "note": "ok"}).encode() + b"\n"


def huge(size: int) -> bytes:
    """A well-formed JSON line of about `size` bytes."""
    return b'{"ts": 5000, "v": 5, "note": "' + b"x" * size + b'"}\n'


def test_default_limit_is_one_megabyte() -> None:
    assert DEFAULT_MAX_EVENT_BYTES == 1 << 20


@pytest.mark.parametrize("stream", [S, NESTED], ids=["flat", "nested"])
@pytest.mark.parametrize("size", [4 << 20, 9 << 20])
def test_a_line_over_the_limit_is_a_dead_letter_and_its_neighbours_are_kept(stream, size: int) -> None:
    block = good(1) + good(2) + huge(size) + good(3)
    frame, dead = block_to_frame(stream, block)
    assert frame.height == 3
    assert dead.height == 1
    reason = dead["reason"][0]
    assert reason.startswith("event too large:") and "1048576" in reason
    assert len(dead["raw"][0]) < 2000 and dead["raw"][0].endswith("bytes, truncated]")


def test_a_single_line_longer_than_a_piece_does_not_recurse() -> None:
    # The old cut loop handed a one-line block straight back to itself.
    line = huge(5 << 20)
    frame, dead = block_to_frame(S, line, max_event_bytes=16 << 20)
    assert frame["v"].to_list() == [5] and dead.height == 0
    frame, dead = blocks_to_frame(S, [good(1), line, good(2)], max_event_bytes=16 << 20)
    assert frame["v"].to_list() == [1, 5, 2] and dead.height == 0


def test_per_line_parser_refuses_by_length_without_parsing() -> None:
    deep = b"[" * 3000 + b"]" * 3000  # would be a RecursionError if parsed; refused by size first
    records, raws = parse_json_lines([deep, b'{"a": 1}'], max_event_bytes=100)
    assert records[0].reason.startswith("event too large: 6000 bytes") and records[1] == {"a": 1}


def test_followed_file_with_a_huge_line_then_restart_from_every_saved_offset(tmp_path: Path) -> None:
    p = tmp_path / "e.jsonl"
    p.write_bytes(good(1) + good(2) + huge(4 << 20) + good(3) + good(4))
    src = JsonlSource(S, p, follow=False, max_rows=2, clock=ManualClock())
    batches = list(src)
    assert [v for b in batches for v in b.frame["v"].to_list()] == [1, 2, 3, 4]
    assert [r for b in batches for r in b.dead["reason"].to_list()][0].startswith("event too large: 4194")
    assert batches[-1].offsets["pos"] == p.stat().st_size
    # A restart at any saved offset (as from a SQLite checkpoint) resumes, never dies again.
    for b in batches:
        rest = list(JsonlSource(S, p, follow=False, start_offsets=b.offsets, clock=ManualClock()))
        assert all(r.startswith("event too large") for x in rest for r in x.dead["reason"].to_list())


def test_a_line_without_end_is_not_buffered_past_the_limit(tmp_path: Path) -> None:
    p = tmp_path / "e.jsonl"
    p.write_bytes(good(1))
    src = JsonlSource(S, p, max_rows=100, max_delay_s=1.0, poll_s=0.1, max_event_bytes=10_000, clock=ManualClock())
    it = iter(src)
    assert next(it).frame["v"].to_list() == [1]
    with open(p, "ab") as f:
        for _ in range(50):  # 5 MB without a newline: only a preview is kept
            f.write(b"y" * 100_000)
    b = next(it)
    assert b.empty and len(src._partial) == 0 and src._skipping is not None
    with open(p, "ab") as f:
        f.write(b"\n" + good(2))
    got = [next(it) for _ in range(2)]
    dead = [r for b in got for r in b.dead["reason"].to_list()]
    assert dead == ["event too large: 5000000 bytes, over the limit of 10000 bytes (max_event_bytes)"]
    assert [v for b in got for v in b.frame["v"].to_list()] == [2]
    assert got[-1].offsets["pos"] == p.stat().st_size


def test_spec_option_and_size_parsing(tmp_path: Path) -> None:
    assert parse_size_bytes("1MB") == 1 << 20 and parse_size_bytes("512kb") == 512 << 10 and parse_size_bytes("70") == 70
    with pytest.raises(SourceSpecError):
        parse_size_bytes("lots")
    p = tmp_path / "e.jsonl"
    p.write_bytes(good(1) + huge(3000) + good(2))
    src = open_source(f"jsonl:{p}?follow=false&max_event=2KB", S, clock=ManualClock())
    assert src.max_event_bytes == 2048
    batches = list(src)
    assert [v for b in batches for v in b.frame["v"].to_list()] == [1, 2]
    assert sum(b.dead.height for b in batches) == 1


def test_redis_entry_over_the_limit(redis_server, redis_client: redis.Redis) -> None:
    redis_client.xadd("big", {"data": good(1).decode()})
    redis_client.xadd("big", {"data": huge(50_000).decode()})
    redis_client.xadd("big", {"ts": "3000", "v": "3", "note": "z" * 50_000})  # flat fields count too
    redis_client.xadd("big", {"data": good(4).decode()})
    src = open_source(f"{redis_server.url}?stream=big&group=g&consumer=c&max_event=10KB", S, max_delay_s=0.2)
    b = next(x for x in iter(src) if not x.empty)
    assert b.frame["v"].to_list() == [1, 4]
    assert [r.split(":")[0] for r in b.dead["reason"].to_list()] == ["event too large"] * 2
    src.close()


class _BigBody(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        body = json.dumps({"v": 1, "note": "n" * 3_000_000}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()  # no Content-Length: the size is only known by reading
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def big_server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _BigBody)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def test_http_poll_body_over_the_limit(big_server: str) -> None:
    src = open_source(big_server + "?interval=1s", S, clock=ManualClock())
    b = next(x for x in iter(src) if not x.empty)
    assert b.frame.height == 0 and b.dead["reason"][0].startswith(f"poll {big_server}: event too large")
    assert src.errors == 1
    src.close()
