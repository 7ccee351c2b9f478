"""Redis Streams with a consumer group: JSON and flat entries, ack, pending recovery, autoclaim."""

from __future__ import annotations

import json
import time
from datetime import datetime

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from runtime.sources import open_source
from runtime.sources.redis_streams import RedisStreamSource

from src_helpers import plan

pytestmark = pytest.mark.timeout(30)
S = plan("ev", ts="timestamp", host="str", cpu="float")


def next_nonempty(it):
    for b in it:
        if not b.empty:
            return b
    raise AssertionError("source ended")


def test_json_and_flat_entries_and_ack(redis_server, redis_client: redis.Redis) -> None:
    redis_client.xadd("events", {"data": json.dumps({"ts": "2024-05-01T10:00:00Z", "host": "a", "cpu": 1.5})})
    redis_client.xadd("events", {"ts": "1714557601000", "host": "b", "cpu": "2.5"})
    redis_client.xadd("events", {"json": "{broken"})
    redis_client.xadd("events", {"ts": "1714557602000", "cpu": "hot"})
    src = open_source(f"{redis_server.url}?stream=events&group=g&consumer=c1", S, max_rows=10, max_delay_s=0.2)
    assert isinstance(src, RedisStreamSource)
    b = next_nonempty(iter(src))
    assert b.frame.rows() == [(datetime(2024, 5, 1, 10), "a", 1.5), (datetime(2024, 5, 1, 10, 0, 1), "b", 2.5)]
    reasons = b.dead["reason"].to_list()
    assert reasons[0].startswith("malformed JSON in entry") and reasons[1] == "field 'cpu': expected float, got str \"hot\""
    assert json.loads(b.dead["raw"][1]) == {"ts": "1714557602000", "cpu": "hot"}
    assert len(b.offsets["ids"]) == 4
    assert redis_client.xpending("events", "g")["pending"] == 4  # not acked until the caller says so
    src.ack(b)
    assert redis_client.xpending("events", "g")["pending"] == 0


def test_unacked_entries_are_redelivered_after_restart(redis_server, redis_client: redis.Redis) -> None:
    for i in range(3):
        redis_client.xadd("ev2", {"ts": str(i), "host": "h", "cpu": str(i)})
    url = f"{redis_server.url}?stream=ev2&group=g&consumer=c1&max_delay=200ms"
    b = next_nonempty(iter(open_source(url, S)))
    assert b.frame["cpu"].to_list() == [0.0, 1.0, 2.0]
    # "Crash" before ack: a new source with the same consumer name gets them again.
    redis_client.xadd("ev2", {"ts": "3", "host": "h", "cpu": "3"})
    src2 = open_source(url, S)
    it = iter(src2)
    again = next_nonempty(it)
    # The old pending entries come first, then new ones (here within the same batch).
    assert again.frame["cpu"].to_list() == [0.0, 1.0, 2.0, 3.0]
    src2.ack(again)
    assert redis_client.xpending("ev2", "g")["pending"] == 0


def test_autoclaim_takes_over_a_dead_consumers_entries(redis_server, redis_client: redis.Redis) -> None:
    redis_client.xadd("ev3", {"ts": "0", "host": "h", "cpu": "7"})
    dead = RedisStreamSource(S, redis_server.url, key="ev3", group="g", consumer="dead", max_delay_s=0.2)
    assert next_nonempty(iter(dead)).frame["cpu"].to_list() == [7.0]  # read, never acked
    time.sleep(0.15)
    alive = RedisStreamSource(S, redis_server.url, key="ev3", group="g", consumer="alive", claim_idle_ms=100, max_delay_s=0.2)
    b = next_nonempty(iter(alive))
    assert b.frame["cpu"].to_list() == [7.0]
    alive.ack(b)
    assert redis_client.xpending("ev3", "g")["pending"] == 0


def test_size_flush_and_mkstream_on_empty_key(redis_server, redis_client: redis.Redis) -> None:
    src = RedisStreamSource(S, redis_server.url, key="fresh", group="g", max_rows=2, max_delay_s=0.2)
    it = iter(src)
    assert next(it).empty  # group created on a stream that does not exist yet; idle tick
    for i in range(5):
        redis_client.xadd("fresh", {"ts": str(i), "host": "h", "cpu": "1"})
    sizes = [next_nonempty(it).frame.height for _ in range(3)]
    assert sizes == [2, 2, 1]


def test_unreachable_redis_is_counted_not_raised() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = redis.Redis(port=port, socket_connect_timeout=0.1, decode_responses=True, retry=Retry(NoBackoff(), 0))
    src = RedisStreamSource(S, client, key="x", max_delay_s=0.2)
    it = iter(src)
    assert next(it).empty and src.errors >= 1 and src.last_error


def test_a_closed_source_reports_no_outage(caplog) -> None:
    """A source stopped while a read is out (the server may go away with it, as at the end
    of a run) counts no error and logs nothing; the same failure while open is an outage."""
    import logging
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = redis.Redis(port=port, socket_connect_timeout=0.1, decode_responses=True, retry=Retry(NoBackoff(), 0))
    src = RedisStreamSource(S, client, key="x", max_delay_s=0.2)
    with caplog.at_level(logging.INFO, logger="runtime.sources.redis_streams"):
        src.close()
        assert src._read(0.01, 10).rows == 0
        assert src.errors == 0 and src.last_error is None and not caplog.records
        src.closed = False
        assert src._read(0.01, 10).rows == 0
        assert src.errors == 1 and "unreachable" in caplog.text


def test_bulk_typed_payloads_equal_entry_by_entry(redis_server, redis_client: redis.Redis, monkeypatch) -> None:
    import runtime.sources.redis_streams as rs

    payloads = [json.dumps({"ts": 1_714_557_600_000 + i, "host": f"h{i % 3}", "cpu": i / 4}) for i in range(300)]
    payloads[10] = "{broken"
    payloads[20] = json.dumps({"ts": 5, "host": 7, "cpu": 1})  # number in a str field: "7"
    payloads[30] = json.dumps({"host": "x"})  # no time
    payloads[40] = ""  # blank: a dead letter here (not skipped as in a file)
    for p in payloads:
        redis_client.xadd("bulk", {"data": p})

    def read(key_group: str) -> list:
        src = RedisStreamSource(S, redis_client, key="bulk", group=key_group, max_rows=1000, max_delay_s=0.2)
        b = next_nonempty(iter(src))
        src.close()
        return [b.frame, b.dead, len(b.offsets["ids"])]

    fast = read("g1")
    monkeypatch.setattr(rs, "_FAST_MIN", 10**9)  # entry by entry
    slow = read("g2")
    assert fast[0].equals(slow[0]) and fast[1].equals(slow[1]) and fast[2] == slow[2] == 300
    assert fast[0].height == 297 and fast[0]["host"][19] == "7"
    # The clean part took the bulk path: no blank payload, no broken line → one Polars read.
    redis_client.delete("bulk2")
    for p in payloads[100:300]:
        redis_client.xadd("bulk2", {"data": p})
    monkeypatch.setattr(rs, "_FAST_MIN", 64)
    src = RedisStreamSource(S, redis_client, key="bulk2", group="g", max_rows=1000, max_delay_s=0.2)
    seen = []
    real = rs.fast_block
    monkeypatch.setattr(rs, "fast_block", lambda *a, **k: seen.append(r := real(*a, **k)) or r)
    b = next_nonempty(iter(src))
    assert b.frame.height == 200 and seen and seen[0] is not None
