"""The Redis outbox against a real redis-server started for the tests."""

from __future__ import annotations

import time
import uuid

import pytest
import redis
from conftest import cpu_rows, matches, program

from runtime.notify.outbox import NewDelivery
from runtime.notify.redis_outbox import RedisOutbox

from receiver import Answer

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def redis_client(redis_server):
    if redis_server.proc is None:
        redis_server.start()
    client = redis.Redis(host="127.0.0.1", port=redis_server.port, socket_connect_timeout=1)
    prefix = f"cep:test-{uuid.uuid4().hex[:8]}:"
    yield client, prefix
    for key in client.scan_iter(prefix + "*"):
        client.delete(key)
    client.close()


SRC = """
channel hook = webhook(url = env("HOOK_URL"), retries = 2)
channel backup = webhook(url = env("BACKUP_URL"))
rule r from metrics where cpu > 1 group by host notify hook fallback backup message "{{ host }}"
"""


def test_delivery_dedup_retry_keys_and_failures(redis_client, receiver, make_notifier):
    client, prefix = redis_client
    receiver.script("/hook", Answer(503), Answer(500), Answer(500))  # the first match fails 3 times
    prog = program(SRC)
    n = make_notifier(
        prog,
        {"HOOK_URL": receiver.url + "/hook", "BACKUP_URL": receiver.url + "/backup"},
        outbox=RedisOutbox(client, prefix=prefix),
        max_in_flight=1,
    ).start()
    assert n.submit("r", matches(prog, "r", cpu_rows(1))) == 1
    assert n.drain(10)
    frame = matches(prog, "r", cpu_rows(2))
    assert n.submit("r", frame) == 1  # the first row is in the sent-log (failed → fallback) already
    assert n.drain(10)
    assert n.submit("r", frame) == 0
    assert len(receiver.received("/hook")) == 4 and len(receiver.received("/backup")) == 1
    (key,) = [k.decode() for k in client.scan_iter(prefix + "retry:*")]
    assert key.startswith(prefix + "retry:cep-") and key.endswith(":hook")
    assert 86000 < client.ttl(key) <= 86400
    assert client.hget(key, "attempts") == b"3" and client.hget(key, "last_error").startswith(b"HTTP 500")
    (failure,) = n.failures()
    assert failure["channel"] == "hook" and failure["fallback"] == "backup" and failure["reason"].startswith("HTTP 500")
    assert client.zcard(prefix + "outbox:due") == 0 and client.zcard(prefix + "outbox:inflight") == 0
    assert n.stats()["suppressed_duplicates"] == 3


def test_recover_returns_claimed_items(redis_client):
    client, prefix = redis_client
    box = RedisOutbox(client, prefix=prefix)
    now = time.time()
    assert (
        box.enqueue(
            [
                NewDelivery("cep-1", "r", "hook", "{}"),
                NewDelivery("cep-1", "r", "hook", "{}"),
                NewDelivery("cep-2", "r", "hook", "{}"),
            ],
            now,
        )
        == 2
    )
    claimed = box.claim(now, 10)
    assert [d.notification_id for d in claimed] == ["cep-1", "cep-2"] and box.claim(now, 10) == []
    assert box.recover(now) == 2  # the claiming process died
    assert [d.notification_id for d in box.claim(now, 10)] == ["cep-1", "cep-2"]
    box.mark_sent([claimed[0].id], now)
    assert box.status_of("cep-1", "hook") == "sent" and box.depth() == 1
