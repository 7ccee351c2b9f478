"""`cep run` as a real process: finite input ≡ replay, kill -9 and restart, hot reload.

Notifications go to a real HTTP receiver on 127.0.0.1 that records the
Idempotency-Key of every delivery, so "no lost, no duplicate notification"
is checked on what a receiver actually got.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import polars as pl
import pytest

import cepdsl
from tests.support.live import append, wait_for

ROOT = Path(__file__).resolve().parents[2]
# Live events carry live times: a silent stream's watermark follows the wall clock
# (LANGUAGE.md §6), so history-dated rows would rightly be late here.
T0 = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0) + timedelta(minutes=30)  # within --max-future (1 h)

pytestmark = pytest.mark.timeout(180)


def rules_text(hook: str, extra: str = "") -> str:
    return f"""
stream auth (ts: timestamp, user: str, event_type: str)

channel hook = webhook(url = "{hook}/alerts")

rule failed "Failed login"
  from auth
  where event_type == "login_failed"
  severity low
  notify hook

rule brute_force "Three failures, then a success"
  from auth
  group by user
  pattern fail{{3,}} ok within 10m
  define fail as event_type == "login_failed",
         ok   as event_type == "login_ok"
  severity critical
  notify hook
{extra}
"""


def events(n_users: int, start: int = 0) -> list[dict]:
    out = []
    for i in range(n_users):
        user = f"u{start + i}"
        base = T0 + timedelta(minutes=start + i)
        for k, kind in enumerate(["login_failed"] * 3 + ["login_ok"]):
            out.append({"ts": (base + timedelta(seconds=k)).isoformat() + "Z", "user": user, "event_type": kind})
    return out


class Receiver(BaseHTTPRequestHandler):
    got: list[tuple[str, dict]] = []
    lock = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
        with Receiver.lock:
            Receiver.got.append((self.headers.get("Idempotency-Key", ""), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.got = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    t.join(5)


def start_run(tmp: Path, rules: Path, source: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "runtime.cli",
            "run",
            str(rules),
            "--source",
            source,
            "--out",
            str(tmp / "out"),
            "--outbox",
            str(tmp / "outbox.sqlite"),
            "--checkpoint-every",
            "0.2",
            "--allow-host",
            "127.0.0.1",
            "--no-stats",
            *extra,
        ],
        cwd=tmp,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def keys_by_rule() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    with Receiver.lock:
        for key, body in Receiver.got:
            rule = json.dumps(body)
            name = "brute_force" if "brute_force" in rule else "failed"
            out.setdefault(name, set()).add(key)
    return out


def expected_counts(text: str, rows: list[dict]) -> dict[str, int]:
    frame = pl.DataFrame(rows).with_columns(pl.col("ts").str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_unit="us"))
    return {rule: f.height for rule, f in cepdsl.compile(text).replay({"auth": frame}).items()}


def test_finite_input_gives_the_same_matches_as_replay(tmp_path: Path, receiver: str) -> None:
    rules = tmp_path / "rules.cep"
    rules.write_text(rules_text(receiver))
    src = tmp_path / "auth.jsonl"
    rows = events(5)
    append(src, rows)
    with open(src, "a") as f:
        f.write("{not json\n")  # malformed: dead letter, the stream goes on
    p = start_run(tmp_path, rules, f"auth=jsonl:{src}?follow=false", "--state", f"sqlite:{tmp_path / 'state.sqlite'}")
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    want = expected_counts(rules.read_text(), rows)
    got = {r: len((tmp_path / "out" / f"{r}.jsonl").read_text().splitlines()) for r in ("failed", "brute_force")}
    assert got == want == {"failed": 15, "brute_force": 5}
    dead = [json.loads(x) for x in (tmp_path / "out" / "_dead_letter.jsonl").read_text().splitlines()]
    assert len(dead) == 1 and dead[0]["raw"] == "{not json"
    assert wait_for(lambda: sum(len(v) for v in keys_by_rule().values()) == 20)
    assert {k: len(v) for k, v in keys_by_rule().items()} == {"failed": 15, "brute_force": 5}


def test_kill_9_and_restart_lose_and_duplicate_no_notification(tmp_path: Path, receiver: str, redis_server) -> None:
    if redis_server.proc is None:
        redis_server.start()
    rules = tmp_path / "rules.cep"
    rules.write_text(rules_text(receiver))
    src = tmp_path / "auth.jsonl"
    src.touch()
    state = f"{redis_server.url}?prefix=cep:killtest:{os.getpid()}:"
    first, second = events(6), events(6, start=6)
    p = start_run(tmp_path, rules, f"auth=jsonl:{src}", "--state", state)
    try:
        append(src, first)
        assert wait_for(lambda: len(keys_by_rule().get("brute_force", ())) >= 6), p.stderr
        time.sleep(0.5)  # let a checkpoint land, and maybe not: both must be safe
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait(10)
    append(src, second)
    p = start_run(tmp_path, rules, f"auth=jsonl:{src}", "--state", state)
    try:
        assert wait_for(lambda: len(keys_by_rule().get("brute_force", ())) >= 12), p.stderr
        assert wait_for(lambda: len(keys_by_rule().get("failed", ())) >= 36)
        time.sleep(1.0)  # anything duplicated would arrive by now
    finally:
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=60)
    want = expected_counts(rules.read_text(), first + second)
    keys = keys_by_rule()
    assert {k: len(v) for k, v in keys.items()} == want == {"failed": 36, "brute_force": 12}
    # Every delivery carried a key; at most the deliveries in flight at the kill were repeated, with the same key.
    with Receiver.lock:
        assert all(k for k, _ in Receiver.got)
        assert len(Receiver.got) - sum(len(v) for v in keys.values()) <= 100


def test_hot_reload_takes_a_clean_file_and_refuses_a_broken_one(tmp_path: Path, receiver: str) -> None:
    rules = tmp_path / "rules.cep"
    rules.write_text(rules_text(receiver))
    src = tmp_path / "auth.jsonl"
    src.touch()
    p = start_run(tmp_path, rules, f"auth=jsonl:{src}", "--state", f"sqlite:{tmp_path / 'state.sqlite'}")
    out_dir = tmp_path / "out"

    def lines(rule: str) -> int:
        f = out_dir / f"{rule}.jsonl"
        return len(f.read_text().splitlines()) if f.exists() else 0

    try:
        append(src, events(2))
        assert wait_for(lambda: lines("brute_force") == 2), p.stderr
        extra = 'rule ok_login "Any success"\n  from auth\n  where event_type == "login_ok"\n'
        rules.write_text(rules_text(receiver, extra))
        time.sleep(1.5)  # the file is polled between steps
        append(src, events(2, start=2))
        assert wait_for(lambda: lines("ok_login") == 2), p.stderr
        assert wait_for(lambda: lines("brute_force") == 4)
        rules.write_text(rules_text(receiver, extra) + "\nrule broken from nowhere\n")
        time.sleep(1.5)
        append(src, events(1, start=4))
        assert wait_for(lambda: lines("ok_login") == 3 and lines("brute_force") == 5)
    finally:
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=60)
    assert "reloaded" in err
    assert "does not check" in err and "unknown stream `nowhere`" in err
    assert p.returncode == 0
