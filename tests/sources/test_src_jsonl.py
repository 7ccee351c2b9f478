"""JSON lines: files being appended to, partial lines, rotation, truncation, resume, stdin."""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

from runtime.sources import ManualClock
from runtime.sources.jsonl import JsonlSource

from src_helpers import plan

pytestmark = pytest.mark.timeout(30)
S = plan("ev", ts="timestamp", v="int")


def line(ts: int, v: int) -> bytes:
    return (json.dumps({"ts": ts, "v": v}) + "\n").encode()


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def test_finite_file_without_follow(tmp_path: Path) -> None:
    p = tmp_path / "e.jsonl"
    p.write_bytes(line(0, 1) + b"not json\n\n" + line(1000, 2) + b'{"ts": 2000, "v": 3}')  # no final newline
    src = JsonlSource(S, p, follow=False, max_rows=2, clock=ManualClock())
    batches = list(src)
    rows = [r for b in batches for r in b.frame.rows()]
    assert rows == [(datetime(1970, 1, 1), 1), (datetime(1970, 1, 1, 0, 0, 1), 2), (datetime(1970, 1, 1, 0, 0, 2), 3)]
    dead = [r for b in batches for r in b.dead.rows()]
    assert len(dead) == 1 and dead[0][2] == "not json" and dead[0][1].startswith("malformed JSON")
    assert batches[-1].offsets["pos"] == p.stat().st_size
    assert all(b.frame.height + b.dead.height <= 2 for b in batches)


def test_tail_partial_line_time_flush_and_idle_ticks(tmp_path: Path) -> None:
    p = tmp_path / "e.jsonl"
    p.write_bytes(b"")
    clock = ManualClock()
    src = JsonlSource(S, p, max_rows=100, max_delay_s=1.0, poll_s=0.1, clock=clock)
    it = iter(src)
    append(p, line(0, 1) + b'{"ts": 1000, "v"')
    b1 = next(it)  # flushed by time: only the complete line
    assert b1.frame["v"].to_list() == [1]
    assert b1.offsets["pos"] == len(line(0, 1))
    b2 = next(it)  # nothing new: an empty idle tick after max_delay_s
    assert b2.empty and b2.offsets["pos"] == len(line(0, 1))
    append(p, b': 2}\n')
    b3 = next(it)
    assert b3.frame["v"].to_list() == [2]
    assert b3.offsets["pos"] == p.stat().st_size


def test_flush_by_size(tmp_path: Path) -> None:
    p = tmp_path / "e.jsonl"
    p.write_bytes(b"".join(line(i, i) for i in range(10)))
    clock = ManualClock()
    it = iter(JsonlSource(S, p, max_rows=4, max_delay_s=100, clock=clock))
    start = clock.now
    sizes = [next(it).frame.height for _ in range(2)]
    assert sizes == [4, 4] and clock.now == start  # size flushes do not wait


def test_resume_from_offsets(tmp_path: Path) -> None:
    p = tmp_path / "e.jsonl"
    p.write_bytes(line(0, 1) + line(0, 2))
    first = next(iter(JsonlSource(S, p, follow=False, max_rows=1, clock=ManualClock())))
    assert first.frame["v"].to_list() == [1]
    append(p, line(0, 3))
    rest = list(JsonlSource(S, p, follow=False, start_offsets=first.offsets, clock=ManualClock()))
    assert [v for b in rest for v in b.frame["v"].to_list()] == [2, 3]
    # An offset from another file (other inode) is ignored: start from the beginning.
    q = tmp_path / "other.jsonl"
    q.write_bytes(line(0, 9))
    again = list(JsonlSource(S, q, follow=False, start_offsets=first.offsets, clock=ManualClock()))
    assert [v for b in again for v in b.frame["v"].to_list()] == [9]


def test_truncation_restarts_at_zero(tmp_path: Path) -> None:
    p = tmp_path / "e.jsonl"
    p.write_bytes(line(0, 1) + line(0, 2))
    it = iter(JsonlSource(S, p, max_rows=10, max_delay_s=1.0, poll_s=0.1, clock=ManualClock()))
    assert next(it).frame["v"].to_list() == [1, 2]
    with open(p, "wb") as f:  # copytruncate-style rotation
        f.write(line(0, 3))
    assert next(it).frame["v"].to_list() == [3]


def test_rotation_drains_old_file_then_follows_new(tmp_path: Path) -> None:
    p = tmp_path / "e.jsonl"
    p.write_bytes(line(0, 1))
    it = iter(JsonlSource(S, p, max_rows=10, max_delay_s=1.0, poll_s=0.1, clock=ManualClock()))
    assert next(it).frame["v"].to_list() == [1]
    append(p, line(0, 2) + b'{"ts": 0, "v": 3}')  # unterminated tail, then the file is rotated
    os.rename(p, tmp_path / "e.jsonl.1")
    p.write_bytes(line(0, 4))
    got: list[int] = []
    while len(got) < 3:  # the old file's rest, its unterminated tail, then the new file
        b = next(it)
        got += b.frame["v"].to_list()
    assert got == [2, 3, 4]
    assert b.offsets["inode"] == p.stat().st_ino and b.offsets["pos"] == p.stat().st_size


def test_file_appearing_later(tmp_path: Path) -> None:
    p = tmp_path / "late.jsonl"
    it = iter(JsonlSource(S, p, max_delay_s=0.5, poll_s=0.1, clock=ManualClock()))
    assert next(it).empty
    p.write_bytes(line(0, 7))
    assert next(it).frame["v"].to_list() == [7]


def test_stdin_pipe_until_eof() -> None:
    r, w = os.pipe()

    def writer() -> None:
        os.write(w, line(0, 1) + b"[]\n" + line(0, 2)[:5])
        time.sleep(0.05)
        os.write(w, line(0, 2)[5:] + line(0, 3).rstrip(b"\n"))
        os.close(w)

    threading.Thread(target=writer, daemon=True).start()
    batches = list(JsonlSource(S, "-", stdin=r, max_rows=100, max_delay_s=5.0))
    os.close(r)
    assert [v for b in batches for v in b.frame["v"].to_list()] == [1, 2, 3]
    assert [reason for b in batches for reason in b.dead["reason"].to_list()] == ["not a JSON object: got array []"]
    assert batches[-1].offsets["path"] == "-"


async def _collect(src: JsonlSource) -> list:
    return [b async for b in src]


def test_async_iteration(tmp_path: Path) -> None:
    import asyncio

    p = tmp_path / "e.jsonl"
    p.write_bytes(line(0, 1) + line(0, 2))
    batches = asyncio.run(_collect(JsonlSource(S, p, follow=False, clock=ManualClock())))
    assert [v for b in batches for v in b.frame["v"].to_list()] == [1, 2]


def test_a_batch_is_cut_once_nothing_more_is_waiting_unless_told_to_wait(tmp_path: Path) -> None:
    p = tmp_path / "e.jsonl"
    p.write_bytes(line(0, 1) + line(0, 2))
    clock = ManualClock()
    it = iter(JsonlSource(S, p, max_rows=100, max_delay_s=5.0, poll_s=0.1, clock=clock))
    assert next(it).frame["v"].to_list() == [1, 2]
    assert clock.now == 1_700_000_000.0  # cut at once: no waiting out max_delay_s
    append(p, line(0, 3))
    waiting = iter(JsonlSource(S, p, max_rows=100, max_delay_s=5.0, poll_s=0.1, clock=clock, flush_when_caught_up=False))
    assert next(waiting).frame["v"].to_list() == [1, 2, 3]
    assert clock.now >= 1_700_000_005.0  # held for max_delay_s
