"""The README's first command runs examples/demo.py: it must keep working."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(300)
def test_demo_runs_and_finds_the_stories_in_the_example_data(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "examples/demo.py"], cwd=ROOT, capture_output=True, text=True, timeout=280)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    out = r.stdout
    assert "checked 1 file: 6 rules, no errors" in out
    assert "unknown field `cpux`" in r.stdout + r.stderr
    assert "brute_force: 1 match(es)" in out
    assert "heartbeat_lost: 1 match(es)" in out
    assert "mallory logged in from 203.0.113.9 after 4 failures" in out + r.stderr
    assert "dead letters: 1" in out
