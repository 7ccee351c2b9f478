"""The README's first command runs examples/demo.py: it must keep working."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.services import free_port

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
    assert "examples/demo.py --serve" in out  # the way on to the live console (issue 15)


def _summary(url: str) -> dict:
    r = httpx.get(url + "/cep/events/summary", timeout=10)
    r.raise_for_status()
    return r.json()


def _wait_for(predicate, until: float, what: str, out: Path):  # noqa: ANN001, ANN202
    last = None
    while time.monotonic() < until:
        try:
            last = predicate()
            if last:
                return last
        except httpx.HTTPError as e:  # still starting: the API is not up yet
            last = e
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})\n{out.read_text()[-3000:]}")


@pytest.mark.timeout(90)
def test_live_demo_serves_alerts_that_keep_coming_until_ctrl_c(tmp_path: Path) -> None:
    """`demo.py --serve`: the console's API shows alerts of several rules, their count grows
    while it runs, and Ctrl-C (SIGINT to the terminal's process group) stops the feed and
    the server: exit 0, the port free again."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    out = tmp_path / "demo.log"
    start = time.monotonic()
    with out.open("w") as log:
        demo = subprocess.Popen(
            [sys.executable, "examples/demo.py", "--serve", "--listen", f"127.0.0.1:{port}", "--seconds", "80"],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a terminal gives it: Ctrl-C reaches cep serve too
            env={k: v for k, v in os.environ.items() if k != "CEP_LOG"},  # the demo's own quiet default
        )
    try:
        # A cold Numba cache (a fresh clone) compiles the JSON scanner on the first batch: ~20 s.
        first = _wait_for(
            lambda: (s := _summary(url))["by_rule"].keys() >= {"brute_force", "high_cpu"} and s,
            start + 55,
            "alerts of brute_force and high_cpu",
            out,
        )
        assert {"critical", "high"} <= first["by_severity"].keys(), first
        assert f"open {url}/ in a browser" in out.read_text()
        time.sleep(5)
        later = _wait_for(lambda: (s := _summary(url))["total"] > first["total"] and s, start + 72, "more alerts", out)
        assert sum(later["by_rule"].values()) == later["total"] > first["total"]
        assert demo.poll() is None, "the demo stopped while it should still be feeding"
        os.killpg(demo.pid, signal.SIGINT)
        assert demo.wait(timeout=15) == 0, out.read_text()[-3000:]
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
    text = out.read_text()
    assert "stopped: " in text and "cep serve exited with 0" in text, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    assert "cep.api.access" not in text  # the polls above are not logged: the terminal shows alerts, not requests
    with socket.socket() as s:  # nothing listens there any more
        assert s.connect_ex(("127.0.0.1", port)) != 0
    lines = [json.loads(x) for x in (ROOT / "out" / "live" / "auth.jsonl").read_text().splitlines()]
    assert any(x["event_type"] == "login_failed" for x in lines) and all(x["ts"].endswith("Z") for x in lines)


@pytest.mark.timeout(60)
def test_live_demo_on_a_busy_port_says_so_in_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = subprocess.run(
            [sys.executable, "examples/demo.py", "--serve", "--listen", f"127.0.0.1:{port}", "--seconds", "1"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=50,
        )
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.strip() == f"error: 127.0.0.1:{port} is already in use; pick another port with --listen 127.0.0.1:PORT"
