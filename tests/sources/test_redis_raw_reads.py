"""The Redis Streams source's raw reads: the reply scanner against hiredis on any reply, and
the source end to end on a real redis-server with clients of every kind, mixed and trimmed
entries, bad UTF-8, reads sent ahead, a stop with a read in flight, and a dropped connection."""

from __future__ import annotations

import json
from datetime import datetime

import hiredis
import numpy as np
import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st

import runtime.sources.redis_streams as rs
from runtime.sources.redis_streams import RedisStreamSource, _parse_read, _Payloads

from src_helpers import plan

pytestmark = pytest.mark.timeout(60)
S = plan("ev", ts="timestamp", host="str", cpu="float")
ECHO = b"$4\r\ntokn\r\n"  # what follows each XREADGROUP reply on the wire (our ECHO's reply)


# -- RESP2 as redis-server writes it


def bulk(b: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(b), b)


def xread_reply(key: bytes, entries: list[tuple[bytes, list[bytes] | None]]) -> bytes:
    out = [b"*1\r\n*2\r\n", bulk(key), b"*%d\r\n" % len(entries)]
    for entry_id, fields in entries:
        out.append(b"*2\r\n" + bulk(entry_id))
        out.append(b"*-1\r\n" if fields is None else b"*%d\r\n" % len(fields) + b"".join(bulk(f) for f in fields))
    return b"".join(out)


def parse(reply: bytes):
    buf = bytearray(reply + ECHO)
    return _parse_read(buf, len(reply), len(buf))


def as_entries(read) -> list:
    """A read in hiredis' form (field names aside: a payload read keeps only the payload)."""
    if isinstance(read, _Payloads):
        return [[i.encode(), [read.payload(k)]] for k, i in enumerate(read.ids)]
    return [[i, None if f is None else (f[1::2] if len(f) == 2 and f[0] in (b"data", b"json") else f)] for i, f in read]


def test_scanner_reads_payload_entries_into_ids_and_one_block() -> None:
    payloads = [b'{"a":1}', b"", b"x\ry", b'{"b":"\xc3\xa9"}', b"multi\r\nline"]
    entries = [(b"%d-%d" % (1_700_000_000_000 + i, i), [b"data" if i % 2 else b"json", p]) for i, p in enumerate(payloads)]
    read = parse(xread_reply(b"events", entries))
    assert isinstance(read, _Payloads)
    assert read.ids == [e[0].decode() for e in entries]
    assert [read.payload(i) for i in range(len(payloads))] == payloads
    assert read.block == b"\n".join(payloads)


@pytest.mark.parametrize(
    ("entries", "why"),
    [
        ([(b"1-0", [b"data", b"{}"]), (b"1-1", None)], "an entry trimmed while pending"),
        ([(b"1-0", [b"data", b"{}"]), (b"1-1", [b"ts", b"5", b"cpu", b"1"])], "flat fields"),
        ([(b"1-0", [b"date", b"{}"])], "a one-field entry not named data or json"),
        ([(b"1-0", [b"payload", b"{}"])], "a longer field name"),
        ([(b"1-0", [b"data", b"{}", b"data", b"{}"])], "the same field twice"),
    ],
)
def test_scanner_leaves_other_replies_to_hiredis(entries, why) -> None:
    read = parse(xread_reply(b"k", entries))
    assert isinstance(read, list), why
    assert read == [[i, f] for i, f in entries]


def test_nothing_errors_and_a_reply_not_whole_yet() -> None:
    assert parse(b"*-1\r\n") == []  # nothing new
    assert parse(xread_reply(b"k", [])) == []  # no pending entries left
    with pytest.raises(redis.ResponseError, match="NOGROUP"):
        parse(b"-NOGROUP No such key 'k' or consumer group 'g'\r\n")
    # A payload holding our ECHO's reply, cut by the network right after it: read on.
    reply = xread_reply(b"k", [(b"1-0", [b"data", b"[" + ECHO + b"]"]), (b"1-1", [b"data", b"{}"])])
    cut = reply.index(ECHO) + len(ECHO)
    assert _parse_read(bytearray(reply[:cut]), cut - len(ECHO), cut) is None


def _field() -> st.SearchStrategy[bytes]:
    return st.sampled_from([b"data", b"json", b"ts", b"date", b"", b"$4", b"*2\r\n"]) | st.binary(max_size=12)


_entry = st.tuples(
    st.builds(lambda a, b: b"%d-%d" % (a, b), st.integers(0, 2**63 - 1), st.integers(0, 2**63 - 1)),
    st.none()
    | st.lists(
        st.tuples(_field(), st.binary(max_size=40) | st.sampled_from([b"\r\n", b"$3\r\n", b"*-1\r\n"])), min_size=1, max_size=3
    ).map(lambda kv: [x for pair in kv for x in pair])
    | st.tuples(st.sampled_from([b"data", b"json"]), st.binary(max_size=60)).map(list),
)


@given(st.binary(min_size=1, max_size=10), st.lists(_entry, max_size=12))
def test_scanner_agrees_with_hiredis_on_any_reply(key: bytes, entries) -> None:
    reply = xread_reply(key, entries)
    reader = hiredis.Reader()
    reader.feed(reply)
    want = reader.gets()[0][1]
    assert as_entries(parse(reply)) == as_entries(want)
    # Cut anywhere before its end (RESP is prefix-free), a reply is never taken for a whole one.
    for cut in range(0, len(reply), max(len(reply) // 7, 1)):
        buf = bytearray(reply[:cut] + ECHO)
        try:
            assert _parse_read(buf, cut, len(buf)) is None
        except redis.ConnectionError:
            pass  # ECHO's bytes read as part of the cut reply can make it malformed


# -- the source on a real redis-server


def next_nonempty(it):
    for b in it:
        if not b.empty:
            return b
    raise AssertionError("source ended")


def drain(src: RedisStreamSource, rows: int, ack: bool = True) -> list:
    batches, got = [], 0
    it = iter(src)
    while got < rows:
        b = next_nonempty(it)
        batches.append(b)
        got += b.frame.height + b.dead.height
        if ack:
            src.ack(b)
    return batches


def mixed(redis_client: redis.Redis, key: str, n: int = 200) -> list[str]:
    """`n` entries: JSON payloads with flat-field entries, bad JSON and bad UTF-8 among them."""
    ids = []
    for i in range(n):
        if i % 50 == 7:
            fields = {"ts": str(1_714_557_600_000 + i), "host": f"f{i}", "cpu": str(i)}
        elif i == 30:
            fields = {"data": "{broken"}
        else:
            fields = {"json" if i % 2 else "data": json.dumps({"ts": 1_714_557_600_000 + i, "host": f"h{i}", "cpu": i / 2})}
        ids.append(redis_client.xadd(key, fields))
    return ids


@pytest.mark.parametrize("kind", ["url", "decoded", "bytes", "resp3", "resp2"])
def test_every_kind_of_client_reads_the_same(redis_server, redis_client: redis.Redis, kind: str) -> None:
    ids = mixed(redis_client, "mix")
    client = {
        "url": redis_server.url,
        "decoded": redis.Redis.from_url(redis_server.url, decode_responses=True),
        "bytes": redis.Redis.from_url(redis_server.url),
        "resp3": redis.Redis.from_url(redis_server.url, protocol=3),
        "resp2": redis.Redis.from_url(redis_server.url, protocol=2, decode_responses=True),
    }[kind]
    src = RedisStreamSource(S, client, key="mix", group="g", max_rows=1000, max_delay_s=0.2)
    b = next_nonempty(iter(src))
    assert b.offsets["ids"] == ids and all(type(i) is str for i in b.offsets["ids"])
    assert json.loads(json.dumps(b.offsets)) == {"key": "mix", "group": "g", "ids": ids}
    assert b.frame.height == 199 and b.frame["host"][7] == "f7" and b.frame["host"][8] == "h8"
    assert b.frame["cpu"][7] == 7.0 and b.frame["cpu"][31] == 16.0  # row 31 is entry 32 (30 is dead)
    assert b.frame["ts"][0] == datetime(2024, 5, 1, 10, 0, 0)
    assert b.dead["reason"].to_list() == [
        f"malformed JSON in entry {ids[30]}: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"
    ]
    assert redis_client.xpending("mix", "g")["pending"] == 200
    src.ack(b)
    assert redis_client.xpending("mix", "g")["pending"] == 0


def test_bad_utf8_is_a_dead_letter_not_a_crash(redis_server, redis_client: redis.Redis) -> None:
    raw = redis.Redis.from_url(redis_server.url)
    good = json.dumps({"ts": 1_714_557_600_000, "host": "a", "cpu": 1}).encode()
    ids = [raw.xadd("u8", {"data": good}).decode() for _ in range(70)]
    ids.append(raw.xadd("u8", {"data": b'{"ts": 1, "host": "\xff"}'}).decode())
    ids.append(raw.xadd("u8", {"ts": b"1", "host": b"\xfe"}).decode())
    src = RedisStreamSource(S, redis_client, key="u8", group="g", max_rows=1000, max_delay_s=0.2)
    b = next_nonempty(iter(src))
    assert b.frame.height == 70
    reasons = b.dead["reason"].to_list()
    assert reasons[0].startswith(f"malformed JSON in entry {ids[70]}: 'utf-8' codec can't decode byte 0xff")
    assert reasons[1].startswith(f"invalid UTF-8 in entry {ids[71]}: 'utf-8' codec can't decode byte 0xfe")
    assert json.loads(b.dead["raw"][1]) == {"ts": "1", "host": "\ufffd"}


def test_a_payload_on_two_lines_among_many_is_typed_alone(redis_client: redis.Redis) -> None:
    for i in range(100):
        body = {"ts": 1_714_557_600_000 + i, "host": "h", "cpu": i}
        redis_client.xadd("nl", {"data": json.dumps(body, indent=1) if i == 50 else json.dumps(body)})
    src = RedisStreamSource(S, redis_client, key="nl", group="g", max_rows=1000, max_delay_s=0.2)
    b = next_nonempty(iter(src))
    assert b.frame["cpu"].to_list() == [float(i) for i in range(100)] and b.dead.height == 0


def test_trimmed_pending_entries_are_acked_and_the_rest_re_read(redis_server, redis_client: redis.Redis) -> None:
    ids = [redis_client.xadd("tr", {"data": json.dumps({"ts": i, "host": "h", "cpu": i})}) for i in range(6)]
    first = RedisStreamSource(S, redis_server.url, key="tr", group="g", consumer="c1", max_rows=10, max_delay_s=0.2)
    assert next_nonempty(iter(first)).frame.height == 6  # delivered, never acked: a "crash"
    redis_client.xdel("tr", ids[0], ids[1], ids[4])
    # COUNT 2: the first re-read of our pending entries holds trimmed ones only; the re-reading
    # must go on past them.
    again = RedisStreamSource(S, redis_server.url, key="tr", group="g", consumer="c1", max_rows=2, max_delay_s=0.2)
    got = drain(again, 3)
    assert [c for b in got for c in b.frame["cpu"].to_list()] == [2.0, 3.0, 5.0]
    assert redis_client.xpending("tr", "g")["pending"] == 0


def test_reads_ahead_stay_within_max_rows_and_in_order(redis_client: redis.Redis, monkeypatch) -> None:
    monkeypatch.setattr(rs, "_READ_COUNT", 100)
    pipe = redis_client.pipeline()
    for i in range(1_000):
        pipe.xadd("ahead", {"data": json.dumps({"ts": i, "host": "h", "cpu": i})})
    pipe.execute()
    src = RedisStreamSource(S, redis_client, key="ahead", group="g", max_rows=250, max_delay_s=5)
    batches = drain(src, 1_000)
    assert [b.frame.height for b in batches] == [250] * 4
    assert [c for b in batches for c in b.frame["cpu"].to_list()] == [float(i) for i in range(1_000)]
    assert redis_client.xpending("ahead", "g")["pending"] == 0


def test_a_stop_with_a_read_in_flight_loses_nothing(redis_server, redis_client: redis.Redis, monkeypatch) -> None:
    monkeypatch.setattr(rs, "_READ_COUNT", 100)
    pipe = redis_client.pipeline()
    for i in range(1_000):
        pipe.xadd("stop", {"data": json.dumps({"ts": i, "host": "h", "cpu": i})})
    pipe.execute()
    src = RedisStreamSource(S, redis_client, key="stop", group="g", consumer="c1", max_rows=300, max_delay_s=5)
    it = iter(src)
    b = next_nonempty(it)
    src.ack(b)
    assert src._ahead is not None  # noqa: SLF001 - the case under test: a read sent, not read
    it.close()  # the engine stops
    assert src._conn is None  # noqa: SLF001
    seen = b.frame["cpu"].to_list()
    # Restarted, the consumer re-reads what it was sent (its pending entries), then the rest.
    again = RedisStreamSource(S, redis_client, key="stop", group="g", consumer="c1", max_rows=300, max_delay_s=0.2)
    seen += [c for b in drain(again, 1_000 - len(seen)) for c in b.frame["cpu"].to_list()]
    assert seen == [float(i) for i in range(1_000)]
    assert redis_client.xpending("stop", "g")["pending"] == 0


def test_a_dropped_connection_is_counted_and_nothing_is_lost(redis_client: redis.Redis, monkeypatch) -> None:
    monkeypatch.setattr(rs, "_READ_COUNT", 100)
    pipe = redis_client.pipeline()
    for i in range(600):
        pipe.xadd("drop", {"data": json.dumps({"ts": i, "host": "h", "cpu": i})})
    pipe.execute()
    src = RedisStreamSource(S, redis_client, key="drop", group="g", consumer="c1", max_rows=200, max_delay_s=0.2, claim_idle_ms=50)
    it = iter(src)
    seen = []
    b = next_nonempty(it)
    seen += b.frame["cpu"].to_list()
    src.ack(b)
    redis_client.client_kill_filter(_type="normal", skipme=True)  # our read sent ahead dies with it
    while len(seen) < 600:
        b = next_nonempty(it)
        seen += b.frame["cpu"].to_list()
        src.ack(b)
    assert src.errors >= 1 and src.last_error is None
    # What the dead read had been sent came back through XAUTOCLAIM (ours, idle, not held): once.
    assert sorted(seen) == [float(i) for i in range(600)]
    assert redis_client.xpending("drop", "g")["pending"] == 0


def test_claimed_payload_entries_take_the_bulk_path(redis_server, redis_client: redis.Redis, monkeypatch) -> None:
    for i in range(100):
        redis_client.xadd("cl", {"data": json.dumps({"ts": i, "host": "h", "cpu": i})})
    dead = RedisStreamSource(S, redis_server.url, key="cl", group="g", consumer="dead", max_rows=1000, max_delay_s=0.2)
    assert next_nonempty(iter(dead)).frame.height == 100
    seen = []
    real = rs.fast_block
    monkeypatch.setattr(rs, "fast_block", lambda *a, **k: seen.append(r := real(*a, **k)) or r)
    alive = RedisStreamSource(
        S, redis_server.url, key="cl", group="g", consumer="alive", claim_idle_ms=1, max_rows=1000, max_delay_s=0.2
    )
    b = next_nonempty(iter(alive))
    assert b.frame["cpu"].to_list() == [float(i) for i in range(100)]
    assert len(seen) == 1 and seen[0] is not None
    alive.ack(b)
    assert redis_client.xpending("cl", "g")["pending"] == 0


def test_scan_handles_a_reply_bigger_than_its_buffer(redis_client: redis.Redis) -> None:
    body = json.dumps({"ts": 1, "host": "x" * 5000, "cpu": 1})
    pipe = redis_client.pipeline()
    for _ in range(300):
        pipe.xadd("big", {"data": body})
    pipe.execute()
    src = RedisStreamSource(S, redis_client, key="big", group="g", max_rows=1000, max_delay_s=0.2)
    b = next_nonempty(iter(src))
    assert b.frame.height == 300 and b.frame["host"][299] == "x" * 5000
    assert len(src._buf) >= 300 * 5000  # noqa: SLF001 - grown from 1 MB


def test_payload_starts_match_the_block() -> None:
    p = _Payloads(["1-0", "1-1"], b"ab\ncde", np.array([0, 3, 7]))
    assert [p.payload(0), p.payload(1), len(p)] == [b"ab", b"cde", 2]


def test_a_blocking_read_longer_than_the_socket_timeout_is_no_error(redis_server, redis_client: redis.Redis) -> None:
    client = redis.Redis.from_url(redis_server.url, socket_timeout=0.3)
    src = RedisStreamSource(S, client, key="quiet", group="g", max_delay_s=0.8)
    it = iter(src)
    assert next(it).empty and src.errors == 0  # waited 0.8 s in one XREADGROUP BLOCK
    redis_client.xadd("quiet", {"data": json.dumps({"ts": 1, "host": "h", "cpu": 2})})
    assert next_nonempty(it).frame["cpu"].to_list() == [2.0] and src.errors == 0


def test_acks_of_reads_of_every_kind_in_one_batch(redis_client: redis.Redis, monkeypatch) -> None:
    monkeypatch.setattr(rs, "_READ_COUNT", 100)
    pipe = redis_client.pipeline()
    for i in range(400):
        row = {"ts": i, "host": "h", "cpu": i}
        flat = 100 <= i < 200  # the second read is flat fields: packed at ack time, the others come packed
        pipe.xadd("acks", {k: str(v) for k, v in row.items()} if flat else {"data": json.dumps(row)})
    pipe.execute()
    src = RedisStreamSource(S, redis_client, key="acks", group="g", max_rows=300, max_delay_s=5)
    it = iter(src)
    b = next_nonempty(it)
    assert b.frame["cpu"].to_list() == [float(i) for i in range(300)]
    assert [a is None for a in next(iter(src._packed.values()))[1]] == [False, True, False]  # noqa: SLF001
    src.ack(b)
    assert redis_client.xpending("acks", "g")["pending"] == 100  # the read sent ahead: delivered, not acked
    rest = next_nonempty(it)
    # Offsets that went through a checkpoint (JSON) are acked all the same.
    src.ack(type(rest)(rest.stream, rest.frame, rest.dead, json.loads(json.dumps(rest.offsets))))
    assert redis_client.xpending("acks", "g")["pending"] == 0 and not src._packed  # noqa: SLF001


class Resp3OnlyConnection(redis.Connection):
    def __init__(self, **kwargs) -> None:
        if kwargs.get("protocol") != 3:
            raise redis.RedisError("this deployment speaks RESP3 only")
        super().__init__(**kwargs)


def test_without_a_connection_of_our_own_reads_go_through_the_pool(redis_server, redis_client: redis.Redis) -> None:
    ids = mixed(redis_client, "pool")
    for i in range(100):
        redis_client.xadd("pool", {"data": json.dumps({"ts": i, "host": "p", "cpu": i})})
    pool = redis.ConnectionPool(connection_class=Resp3OnlyConnection, port=redis_server.port, protocol=3)
    src = RedisStreamSource(S, redis.Redis(connection_pool=pool), key="pool", group="g", max_rows=200, max_delay_s=0.2)
    it = iter(src)
    first = next_nonempty(it)  # mixed entries: entry by entry
    assert first.offsets["ids"] == ids and first.frame.height == 199 and first.frame["host"][7] == "f7"
    second = next_nonempty(it)  # all payloads: typed at once, from hiredis' lists
    assert second.frame["cpu"].to_list() == [float(i) for i in range(100)]
    src.ack(first)
    src.ack(second)
    assert redis_client.xpending("pool", "g")["pending"] == 0 and src._conn is None  # noqa: SLF001


def test_entries_held_unacked_are_not_claimed_back_by_us(redis_client: redis.Redis) -> None:
    import time

    for i in range(100):
        redis_client.xadd("held", {"data": json.dumps({"ts": i, "host": "h", "cpu": i})})
    src = RedisStreamSource(S, redis_client, key="held", group="g", consumer="c1", claim_idle_ms=50, max_rows=1000, max_delay_s=0.1)
    it = iter(src)
    b = next_nonempty(it)  # not acked yet: its checkpoint is slow
    time.sleep(0.2)  # idle past claim_idle: XAUTOCLAIM hands them to us again, and we skip them
    assert all(next(it).empty for _ in range(5))
    src.ack(b)
    assert redis_client.xpending("held", "g")["pending"] == 0
