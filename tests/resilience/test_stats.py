"""Operational visibility: per-rule stats as a Python object, and the live table of `cep run --stats`."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from cepdsl.frontend import compile_source
from runtime.run import render_stats
from runtime.sources import open_source
from runtime.state import MemoryStore
from runtime.stream_loop import StreamingEngine
from tests.support.live import ROOT, append, iso, replay

pytestmark = pytest.mark.timeout(60)

RULES = """
stream auth (ts: timestamp, user: str, event_type: str)

rule failed "Failed login"
  from auth
  where event_type == "login_failed"
  group by user
  throttle 1h

rule per_minute "Logins per minute"
  from auth
  window tumbling 1m
"""

T0 = datetime(2026, 1, 5, 12, 0, 0)


def rows() -> list[dict]:
    out = [
        {"ts": iso(T0 + timedelta(seconds=20 * i)), "user": f"u{i % 2}", "event_type": "login_failed"} for i in range(9)
    ]  # 12:00:00 … 12:02:40, two users
    out.append({"ts": iso(T0 + timedelta(seconds=5)), "user": "u9", "event_type": "login_ok"})  # late: 12:00 closed
    return out


def cells(line: str) -> list[str]:
    return line.replace("│", " ").replace("┃", " ").split()


def test_stats_object_counts_what_happened(tmp_path: Path) -> None:
    src = tmp_path / "auth.jsonl"
    append(src, rows()[:9])
    program = compile_source(RULES, "auth.cep")
    engine = StreamingEngine(
        program,
        {"auth#0": open_source(f"jsonl:{src}?follow=false&max_rows=3", program.stream("auth"))},
        store=MemoryStore(),
    )
    engine.start()
    while len(engine._finished) < 1:
        engine.step()
    late = open_source(f"jsonl:{tmp_path / 'late.jsonl'}?follow=false", program.stream("auth"))
    append(tmp_path / "late.jsonl", rows()[9:])
    engine.feed("late#0", next(iter(late)))
    engine.checkpoint()
    stats = engine.stats()
    want = replay(RULES, {"auth": rows()[:9]})
    failed, per_minute = stats["rules"]["failed"], stats["rules"]["per_minute"]
    assert failed["events_in"] == 10 and per_minute["events_in"] == 10  # the late row came in too
    assert failed["matches"] == len(want["failed"]) == 2  # one per user, the rest throttled
    assert failed["suppressed"] == 7
    # 12:00 and 12:01 are closed by the 12:02:40 row; 12:02 stays open until the input ends.
    assert (
        per_minute["matches"]
        == len([m for m in want["per_minute"] if m["window_end"] < iso(T0 + timedelta(minutes=2, seconds=1))])
        == 2
    )
    assert per_minute["late"] == 1 and failed["late"] == 0  # only the window it missed calls it late
    assert stats["engine"]["dead_letters"] == 1
    snap = engine.session.snapshot()
    for rid in ("failed", "per_minute"):
        row = stats["rules"][rid]
        assert row["batches"] >= 3
        assert 0 < row["mean_eval_ms"] and row["mean_eval_ms"] <= row["p99_eval_ms"] * row["batches"]
        assert row["state_bytes"] == len(snap[rid]) > 0
    assert stats["health"]["degraded"] is False

    text = render_stats(stats)
    lines = {cells(line)[0]: cells(line) for line in text.splitlines() if cells(line)[:1] in (["failed"], ["per_minute"])}
    assert lines["failed"][1:5] == ["10", "2", "7", "0"]  # events in, matches, suppressed, late
    assert lines["per_minute"][1:5] == ["10", "2", "0", "1"]
    assert lines["failed"][-2:] == [f"{len(snap['failed']):,}", "B"]
    assert "1 dead letters" in text


def test_cep_run_stats_draws_the_table_on_a_terminal(tmp_path: Path) -> None:
    src = tmp_path / "auth.jsonl"
    append(src, rows()[:9])
    rules = tmp_path / "rules.cep"
    rules.write_text(RULES)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "runtime.cli",
            "run",
            str(rules),
            "--source",
            f"auth=jsonl:{src}?follow=false",
            "--state",
            f"sqlite:{tmp_path / 'state.sqlite'}",
            "--outbox",
            str(tmp_path / "outbox.sqlite"),
        ],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=slave,
        env={**os.environ, "PYTHONPATH": str(ROOT), "TERM": "xterm", "COLUMNS": "160"},
    )
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif p.poll() is not None:
            break
    p.wait(10)
    os.close(master)
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode("utf-8", "replace"))
    assert p.returncode == 0, screen
    assert "events in" in screen and "p99 ms" in screen and "state" in screen
    # The last frame drawn: the finite input is complete, so 12:02 was flushed too.
    want = {r: len(m) for r, m in replay(RULES, {"auth": rows()[:9]}).items()}
    final = {}
    for line in screen.splitlines():
        parts = cells(line)
        if parts and parts[0] in ("failed", "per_minute"):
            final[parts[0]] = parts[1:5]
    assert final == {"failed": ["9", str(want["failed"]), "7", "0"], "per_minute": ["9", str(want["per_minute"]), "0", "0"]}
