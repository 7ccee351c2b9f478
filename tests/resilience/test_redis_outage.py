"""Redis (the state store) dies under a running `cep run`: mid-stream, and across a kill -9.

The process must keep running on in-memory state, say so once, show `degraded` on
/cep/health, retry with backoff, and write the current state back when Redis returns;
the matches and the notifications must be exactly replay's.
"""

from __future__ import annotations

import json
import signal
from datetime import timedelta
from pathlib import Path

import pytest

from cepdsl.engine import ENGINE_STATE_VERSION
from tests.support.live import (
    Receiver,
    append,
    as_multiset,
    get_json,
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
from tests.support.services import free_port

pytestmark = pytest.mark.timeout(90)

RULES = ("failed", "brute_force")


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def offsets_in_redis(client, prefix: str) -> dict:
    raw = client.hget(f"{prefix}offsets", "offsets")  # the offsets key of its own (not an empty rule id)
    return json.loads(raw) if raw else {}


def saved_pos(client, prefix: str) -> int | None:
    offs = offsets_in_redis(client, prefix)
    return next((o.get("pos") for o in offs.values()), None)


def test_redis_down_mid_stream_keeps_running_and_writes_state_back(tmp_path: Path, receiver: Receiver) -> None:
    t0 = now_utc() + timedelta(minutes=30)  # ahead of the wall clock (within --max-future, 1 h): never late
    rules = tmp_path / "rules.cep"
    rules.write_text(login_rules(receiver.url))
    src = tmp_path / "auth.jsonl"
    src.touch()
    api = f"127.0.0.1:{free_port()}"
    health_url = f"http://{api}/cep/health"
    prefix = "cep:"
    batches = [logins(t0, range(0, 4)), logins(t0, range(4, 8)), logins(t0, range(8, 12))]
    with killable_redis(tmp_path) as rds:
        state = f"{rds.url}?backoff=100ms&backoff_max=500ms"
        p = start_run(
            tmp_path,
            rules,
            "--source",
            f"auth=jsonl:{src}",
            "--state",
            state,
            "--out",
            str(tmp_path / "out"),
            "--outbox",
            str(tmp_path / "outbox.sqlite"),
            "--checkpoint-every",
            "0.2",
            "--no-stats",
            "--api",
            api,
        )
        try:
            append(src, batches[0])
            assert wait_for(lambda: len(written(tmp_path / "out", "brute_force")) == 4), stderr_of(p)
            assert wait_for(lambda: (get_json(health_url) or {}).get("status") == "ok")
            client = rds.client()
            assert wait_for(lambda: saved_pos(client, prefix) == src.stat().st_size)

            rds.kill()  # Redis gone; events keep coming
            for chunk, failed_so_far in ((batches[1][:8], 18), (batches[1][8:], 24)):
                append(src, chunk)
                assert wait_for(lambda n=failed_so_far: len(written(tmp_path / "out", "failed")) == n), stderr_of(p)
            assert wait_for(lambda: len(written(tmp_path / "out", "brute_force")) == 8), stderr_of(p)
            # The next checkpoint (every 0.2 s) is what finds Redis gone.
            assert wait_for(lambda: (get_json(health_url) or {}).get("status") == "degraded")
            assert wait_for(lambda: (get_json(health_url) or {}).get("state_store", {}).get("failures", 0) >= 2)
            health = get_json(health_url)
            assert health is not None and health["status"] == "degraded" and health["degraded"] is True
            store = health["state_store"]
            assert store["degraded"] is True and store["kind"] == "RedisStore"
            assert "refused" in store["last_error"].lower() or "connect" in store["last_error"].lower()
            assert store["failures"] >= 2  # it kept retrying
            stats = get_json(f"http://{api}/cep/stats")
            assert stats["engine"]["degraded"] is True
            assert stats["rules"]["failed"]["events_in"] == 32
            assert p.poll() is None  # still running

            rds.start()  # back, and empty (no persistence): the engine must write its state back
            append(src, batches[2])
            assert wait_for(lambda: len(written(tmp_path / "out", "brute_force")) == 12), stderr_of(p)
            assert wait_for(lambda: (get_json(health_url) or {}).get("status") == "ok", timeout=10)
            client = rds.client()
            size = src.stat().st_size
            assert wait_for(lambda: saved_pos(client, prefix) == size)
            for rule in RULES:
                key = f"{prefix}rule:{rule}:state"
                assert int(client.hget(key, "version")) == ENGINE_STATE_VERSION
                assert client.hstrlen(key, "payload") > 0
            assert client.exists(f"{prefix}rule:stream:auth:state")
        finally:
            code, err = stop_process(p)
    assert code == 0, err
    # One line per outage and one when it ends, not one per event or per retry.
    assert err.count("state store unavailable") == 1, err
    assert err.count("state store available again") == 1, err
    text = rules.read_text()
    want = replay(text, {"auth": [r for b in batches for r in b]})
    for rule in RULES:
        assert as_multiset(written(tmp_path / "out", rule)) == as_multiset(want[rule])
    assert wait_for(lambda: {r: receiver.count(r) for r in RULES} == {r: len(want[r]) for r in RULES})
    assert set(receiver.deliveries_per_key().values()) == {1}


def test_redis_down_at_kill_9_restores_the_last_checkpoint_that_reached_it(tmp_path: Path, receiver: Receiver) -> None:
    t0 = now_utc() + timedelta(minutes=30)  # ahead of the wall clock, within --max-future (1 h)
    rules = tmp_path / "rules.cep"
    rules.write_text(login_rules(receiver.url))
    src = tmp_path / "auth.jsonl"
    src.touch()
    prefix = "cep:"
    out = tmp_path / "out"
    first, second, third = logins(t0, range(0, 4)), logins(t0, range(4, 8)), logins(t0, range(8, 12))
    with killable_redis(tmp_path, persist=True) as rds:
        args = (
            "--source",
            f"auth=jsonl:{src}",
            "--state",
            f"{rds.url}?backoff=100ms&backoff_max=500ms",
            "--out",
            str(out),
            "--outbox",
            str(tmp_path / "outbox.sqlite"),
            "--checkpoint-every",
            "0.2",
            "--no-stats",
        )
        p = start_run(tmp_path, rules, *args)
        try:
            append(src, first)
            assert wait_for(lambda: receiver.count("brute_force") == 4 and receiver.count("failed") == 12), stderr_of(p)
            client = rds.client()
            end_of_first = src.stat().st_size
            assert wait_for(lambda: saved_pos(client, prefix) == end_of_first)

            rds.kill()
            append(src, second)  # matched and notified while Redis is down; never checkpointed to it
            assert wait_for(lambda: receiver.count("brute_force") == 8 and receiver.count("failed") == 24), stderr_of(p)
            assert wait_for(lambda: len(written(out, "failed")) == 24)
            assert wait_for(lambda: outbox_sent(tmp_path / "outbox.sqlite") == 32)
        finally:
            p.send_signal(signal.SIGKILL)
            p.wait(10)

        rds.start()
        client = rds.client()
        assert saved_pos(client, prefix) == end_of_first  # what reached Redis survived it
        append(src, third)
        p = start_run(tmp_path, rules, *args)
        try:
            assert wait_for(lambda: receiver.count("brute_force") == 12 and receiver.count("failed") == 36), stderr_of(p)
            assert wait_for(lambda: saved_pos(client, prefix) == src.stat().st_size)
        finally:
            code, err = stop_process(p)
    assert code == 0, err
    want = replay(rules.read_text(), {"auth": first + second + third})
    # The second batch was recomputed from the checkpoint's source offsets: it is in the
    # `--out` file twice (that sink does not dedupe) ...
    for rule in RULES:
        got = as_multiset(written(out, rule))
        again = as_multiset(replay(rules.read_text(), {"auth": first + second})[rule]) - as_multiset(
            replay(rules.read_text(), {"auth": first})[rule]
        )
        assert got == as_multiset(want[rule]) + again
    # ... but notified exactly once per key: the outbox knew the keys.
    assert {r: receiver.count(r) for r in RULES} == {r: len(want[r]) for r in RULES}
    assert set(receiver.deliveries_per_key().values()) == {1}
