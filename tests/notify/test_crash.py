"""kill -9 between enqueue and send, and in the middle of delivery: a restart delivers everything,
and the receiver sees each dedup key (its Idempotency-Key) exactly once after deduplication."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from receiver import Answer

pytestmark = pytest.mark.timeout(60)

CHILD = str(Path(__file__).with_name("crash_child.py"))
N = 60


def spawn(outbox: Path, url: str, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, CHILD, str(outbox), url, str(N), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )


def resume(outbox: Path, url: str) -> dict:
    child = spawn(outbox, url, "resume")
    out, err = child.communicate(timeout=45)
    assert child.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def keys(receiver) -> Counter[str]:
    return Counter(r.headers["idempotency-key"] for r in receiver.received("/hook"))


def test_kill_between_enqueue_and_send_loses_nothing(tmp_path, receiver):
    outbox = tmp_path / "outbox.sqlite"
    child = spawn(outbox, receiver.url + "/hook", "enqueue")
    assert child.stdout is not None and child.stdout.readline().strip() == "enqueued"
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    assert receiver.received() == []
    stats = resume(outbox, receiver.url + "/hook")
    assert stats["drained"] and stats["sent"] == N
    assert stats["suppressed_duplicates"] == N  # the re-emitted matches were already in the outbox
    got = keys(receiver)
    assert len(got) == N and set(got.values()) == {1}


def test_kill_mid_delivery_then_restart_delivers_each_key(tmp_path, receiver):
    # A slow receiver keeps deliveries in flight when the kill lands.
    receiver.script("/hook", *[Answer(delay=0.05)] * (N * 3))
    outbox = tmp_path / "outbox.sqlite"
    child = spawn(outbox, receiver.url + "/hook", "deliver")
    assert child.stdout is not None and child.stdout.readline().strip() == "started"
    deadline = time.monotonic() + 20
    while len(receiver.received("/hook")) < N // 3 and time.monotonic() < deadline:
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    before = len(keys(receiver))
    assert 0 < before < N  # killed mid-way

    stats = resume(outbox, receiver.url + "/hook")
    assert stats["drained"] and stats["queue_depth"] == 0
    got = keys(receiver)
    assert len(got) == N  # every notification arrived
    # At-least-once: only deliveries in flight at the kill (≤ max_in_flight = 8) may repeat, and they
    # repeat with the same key, so a deduplicating receiver (PagerDuty dedup_key) sees each once.
    repeats = sum(c - 1 for c in got.values())
    assert repeats <= 8, got.most_common(3)
