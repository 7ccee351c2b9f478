"""Issue 12 item 1 end to end: `cep run` on a followed file with a SQLite state survives a
4 MB line and restarts from its saved offset without dying again.

Before: the line ended the process (RecursionError in block_to_frame), the good lines of
its batch were lost, and every restart resumed at the saved offset and died again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.support.live import wait_for

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)
RULES = "stream ev (ts: timestamp, v: int, note: str)\nrule all from ev\n"

pytestmark = pytest.mark.timeout(180)


def line(v: int, note: str = "ok") -> bytes:
    ts = (T0 + timedelta(seconds=v)).isoformat() + "Z"
    return json.dumps({"ts": ts, "v": v, "note": note}).encode() + b"\n"


def start(tmp: Path, events: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "runtime.cli",
            "run",
            str(tmp / "r.cep"),
            "--source",
            f"ev=jsonl:{events}",
            "--out",
            str(tmp / "out"),
            "--outbox",
            str(tmp / "outbox.sqlite"),
            "--state",
            f"sqlite:{tmp / 'state.sqlite'}",
            "--checkpoint-every",
            "0.2",
            "--no-stats",
        ],
        cwd=tmp,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def matched(tmp: Path) -> list[int]:
    path = tmp / "out" / "all.jsonl"
    if not path.exists():
        return []
    return [json.loads(x)["v"] for x in path.read_text().splitlines() if x.strip()]


def dead(tmp: Path) -> list[str]:
    path = tmp / "out" / "_dead_letter.jsonl"
    if not path.exists():
        return []
    return [json.loads(x)["reason"] for x in path.read_text().splitlines() if x.strip()]


def test_a_huge_line_is_a_dead_letter_and_restarts_resume(tmp_path: Path) -> None:
    (tmp_path / "r.cep").write_text(RULES)
    events = tmp_path / "events.jsonl"
    events.write_bytes(line(1) + line(2) + line(3, "n" * (4 << 20)) + line(4))
    proc = start(tmp_path, events)
    try:
        assert wait_for(lambda: matched(tmp_path) == [1, 2, 4] or proc.poll() is not None, timeout=90)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert wait_for(lambda: len(dead(tmp_path)) == 1, timeout=30)
        assert dead(tmp_path)[0].startswith("event too large: 4194")
        wait_for(lambda: (tmp_path / "state.sqlite").exists(), timeout=10)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        # Restart at the saved offset, with the huge line once more after it.
        with open(events, "ab") as f:
            f.write(line(5, "m" * (4 << 20)) + line(6))
        proc = start(tmp_path, events)
        assert wait_for(lambda: 6 in matched(tmp_path) or proc.poll() is not None, timeout=90)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert matched(tmp_path) == [1, 2, 4, 6]  # nothing read twice, nothing lost
        assert len(dead(tmp_path)) == 2
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
