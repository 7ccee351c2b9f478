"""The Redis Streams source end to end through `cep run`: XACK only once the batch's
matches are in the outbox, and a killed consumer's pending entries claimed by another."""

from __future__ import annotations

import json
import signal
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from tests.support.live import (
    Receiver,
    as_multiset,
    killable_redis,
    login_rules,
    logins,
    now_utc,
    outbox_sent,
    replay,
    start_run,
    stderr_of,
    stop_process,
    wait_for,
    written,
)

pytestmark = pytest.mark.timeout(90)

RULES = ("failed", "brute_force")
PREFIX = "cep:state:"


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def outbox_rows(path: Path) -> int:
    if not path.exists():
        return 0
    with sqlite3.connect(path) as db:
        return db.execute("SELECT count(DISTINCT notification_id) FROM deliveries").fetchone()[0]


def test_xack_after_outbox_and_a_dead_consumers_entries_are_claimed(tmp_path: Path, receiver: Receiver) -> None:
    t0 = now_utc() + timedelta(minutes=30)  # ahead of the wall clock, within --max-future (1 h)
    rules = tmp_path / "rules.cep"
    rules.write_text(login_rules(receiver.url))
    outbox = tmp_path / "outbox.sqlite"
    batches = [logins(t0, range(0, 4)), logins(t0, range(4, 8)), logins(t0, range(8, 12))]
    with killable_redis(tmp_path) as rds:
        r = rds.client()

        def xadd(rows: list[dict]) -> None:
            for row in rows:
                r.xadd("events", {"json": json.dumps(row)})

        def pending() -> int:
            return int(r.xpending("events", "cep")["pending"])

        def source(consumer: str, claim_idle: str = "60s") -> str:
            return f"{rds.url}?stream=events&group=cep&consumer={consumer}&claim_idle={claim_idle}&max_delay=50ms"

        common = ("--state", f"{rds.url}?prefix={PREFIX}", "--outbox", str(outbox), "--no-stats")
        # c1 never checkpoints on its own (an interval far beyond the test): whatever it acks, it
        # acks at the final checkpoint of a clean stop, so what XPENDING shows does not race a timer.
        c1_args = ("--source", source("c1"), "--out", str(tmp_path / "out1"), "--checkpoint-every", "1000", *common)
        c1 = start_run(tmp_path, rules, *c1_args)
        try:
            xadd(batches[0])
            assert wait_for(lambda: len(written(tmp_path / "out1", "brute_force")) == 4), stderr_of(c1)
            # Matches out and in the outbox, entries still pending: nothing is acked before that.
            # (Each rule's matches go to the file, then to the outbox: wait for both rules'.)
            assert wait_for(lambda: outbox_rows(outbox) == 16)
            assert pending() == 16
        finally:
            code, err = stop_process(c1)
        assert code == 0, err
        assert pending() == 0  # acked once the final checkpoint covered them

        c1 = start_run(tmp_path, rules, *c1_args)  # c1 again, from that checkpoint
        try:
            xadd(batches[1])
            assert wait_for(lambda: len(written(tmp_path / "out1", "brute_force")) == 8), stderr_of(c1)
            assert wait_for(lambda: outbox_rows(outbox) == 32)
            assert pending() == 16
            assert wait_for(lambda: outbox_sent(outbox) == 32)
        finally:
            c1.send_signal(signal.SIGKILL)  # dies with batch 2 pending
            c1.wait(10)
        consumers = {c["name"]: c["pending"] for c in r.xinfo_consumers("events", "cep")}
        assert consumers == {"c1": 16}

        c2 = start_run(
            tmp_path, rules, "--source", source("c2", "300ms"), "--out", str(tmp_path / "out2"), "--checkpoint-every", "0.2", *common
        )
        try:
            # c2 starts from c1's last checkpoint (batch 1) and claims batch 2 from the dead c1.
            assert wait_for(lambda: len(written(tmp_path / "out2", "brute_force")) == 4), stderr_of(c2)
            xadd(batches[2])
            assert wait_for(lambda: len(written(tmp_path / "out2", "brute_force")) == 8), stderr_of(c2)
            assert wait_for(lambda: pending() == 0, timeout=10)
            assert {c["name"]: c["pending"] for c in r.xinfo_consumers("events", "cep")} == {"c1": 0, "c2": 0}
            assert wait_for(lambda: receiver.count("brute_force") == 12 and receiver.count("failed") == 36)
        finally:
            code, err = stop_process(c2)
    assert code == 0, err
    text = rules.read_text()
    want = replay(text, {"auth": [row for b in batches for row in b]})
    later = replay(text, {"auth": batches[0]})
    for rule in RULES:
        one, two = as_multiset(written(tmp_path / "out1", rule)), as_multiset(written(tmp_path / "out2", rule))
        assert one == as_multiset(replay(text, {"auth": batches[0] + batches[1]})[rule])  # c1: batches 1 and 2
        assert two == as_multiset(want[rule]) - as_multiset(later[rule])  # c2: batch 2 (claimed) and 3
        assert receiver.count(rule) == len(want[rule])
    assert set(receiver.deliveries_per_key().values()) == {1}  # batch 2 twice through the engine, once out
