"""Events from a Redis Stream, read through a consumer group.

At-least-once: entries are acknowledged (XACK) only when the caller calls
`ack(batch)` after the batch's matches are safely stored. On start the
consumer first re-reads its own pending entries (delivered before a crash,
never acked), and every `claim_every_s` it takes over entries other consumers
left pending longer than `claim_idle_ms` (XAUTOCLAIM), so a dead consumer's
work is not stranded.

An entry is either one field named `data` or `json` holding a JSON object, or
flat fields (all strings in Redis; records.py accepts numeric and boolean
strings and epoch-millisecond strings for timestamps).

How reading is kept cheap (a backlog of 1M entries is the measured case):

- XREADGROUP goes over a RESP2 connection of our own, built like the client's,
  and its reply is read off the socket as bytes. A Numba kernel (`_scan`)
  walks it: when every entry is one `data`/`json` field, it gives the ids, the
  payloads joined by newlines (typed by Polars in one call, ndjson.py) and the
  ids as packed XACK arguments — no Python object per entry but the id string.
  Any other reply (flat fields, entries trimmed while pending, errors) is
  parsed by hiredis into lists and handled entry by entry. An ECHO of a random
  token follows each XREADGROUP, so the end of a reply is seen without parsing.
- Other commands go to connections of the client's pool with replies kept raw:
  no redis-py response callbacks (a dict per entry, in Python) and no
  decoding, whatever the client's `decode_responses`.
- Reads take at most `_READ_COUNT` entries, and while there is a backlog the
  next XREADGROUP is sent before the current reply is typed, so Redis builds
  one reply while we type the other. Entries read ahead are in our pending
  list like any delivered entry: if we stop first, a restart re-reads them.

Redis being unreachable never ends the iteration: reads back off (up to 5 s),
the error is counted in `errors` and logged once per outage.
"""

from __future__ import annotations

import itertools
import json
import logging
import secrets
from collections import OrderedDict
from collections.abc import Iterator
from operator import itemgetter
from typing import Any, Unpack

import hiredis
import numba as nb
import numpy as np
import polars as pl
import redis
from redis.connection import AbstractConnection

from cepdsl.kernels.borrow import borrow
from cepdsl.plan import StreamPlan
from runtime.sources.batch import Batch, Chunk, Source, SourceOptions
from runtime.sources.ndjson import fast_block
from runtime.sources.records import Rejected, oversize, oversize_raw

log = logging.getLogger(__name__)
_JSON_FIELDS = frozenset((b"data", b"json"))
_ACK_CHUNK = 10_000
#: Entries per XREADGROUP. Redis runs one command at a time: a bigger read makes the XACKs
#: of the engine thread wait longer behind it, and the read-ahead overlaps less.
_READ_COUNT = 10_000
#: Fewer entries than this are typed one by one (the bulk path's fixed cost is ~1 ms).
_FAST_MIN = 64
#: Batches whose packed XACK arguments are kept until they are acked.
_PACKED_MAX = 64
_first, _second = itemgetter(0), itemgetter(1)

#: A stream entry as hiredis gives it: [id, [field, value, ...]], the fields None when the
#: entry was trimmed from the stream while pending.
Entry = list[Any]


class _Payloads:
    """A read whose entries are each one `data`/`json` field, as `_scan` left it."""

    __slots__ = ("acks", "block", "ids", "starts")

    def __init__(self, ids: list[str], block: bytes, starts: np.ndarray, acks: bytes | None = None) -> None:
        self.ids = ids
        self.block = block  # the payloads joined by newlines
        self.starts = starts  # payload i is block[starts[i] : starts[i + 1] - 1]
        self.acks = acks  # the ids as XACK's arguments, packed (from the reply, where they are so)

    def __len__(self) -> int:
        return len(self.ids)

    def payload(self, i: int) -> bytes:
        return self.block[self.starts[i] : self.starts[i + 1] - 1]


Read = list[Entry] | _Payloads


class RedisStreamSource(Source):
    def __init__(
        self,
        stream: StreamPlan,
        client: redis.Redis | str,
        *,
        key: str,
        group: str = "cep",
        consumer: str = "c1",
        start_id: str = "0",
        claim_idle_ms: int = 60_000,
        claim_every_s: float | None = None,
        **options: Unpack[SourceOptions],
    ) -> None:
        super().__init__(stream, **options)
        self.redis = redis.Redis.from_url(client, decode_responses=True) if isinstance(client, str) else client
        self.key, self.group, self.consumer = key, group, consumer
        self.start_id = start_id
        self.claim_idle_ms = claim_idle_ms
        self.claim_every_s = claim_every_s if claim_every_s is not None else max(claim_idle_ms / 2000, 0.05)
        self.errors = 0
        self.last_error: str | None = None
        self._ids: list[list[str]] = []  # delivered since the last batch was cut, one list per read
        # Per read, its ids packed as XACK arguments (None: pack them at ack time), and per
        # batch not acked yet, those of its reads: packing 50k ids costs the acking (engine)
        # thread ~10 ms, copying them out of the reply costs the kernel next to nothing.
        self._acks: list[bytes | None] = []
        self._packed: OrderedDict[tuple[str, str, int], tuple[list[str], list[bytes | None], list[int]]] = OrderedDict()
        # Delivered to us and not acked yet. XAUTOCLAIM hands a consumer its *own* idle entries
        # too: without this, a batch waiting longer than claim_idle for its checkpoint would be
        # claimed back and processed twice.
        self._held: set[str] = set()
        self._group_ready = False
        self._own_pending_from: str | None = "0"  # None once our old pending entries are re-read
        self._claim_cursor = "0-0"
        self._next_claim = 0.0
        self._backoff = 0.0
        # The reading thread's own connection for XREADGROUP (ack() comes from another thread
        # and takes one from the pool), the buffer its replies land in, and the COUNT of an
        # XREADGROUP sent on it whose reply is not read yet.
        self._conn: AbstractConnection | None = None
        self._own_conn = True  # False when the client's pool cannot give us one
        self._buf = bytearray(1 << 20)
        self._ahead: int | None = None
        token = secrets.token_hex(16).encode()
        self._echo = hiredis.pack_command(("ECHO", token))
        self._echo_reply = b"$%d\r\n%s\r\n" % (len(token), token)

    # -- Source

    def offsets(self) -> dict[str, Any]:
        return {"key": self.key, "group": self.group, "ids": list(itertools.chain.from_iterable(self._ids))}

    def ack(self, batch: Batch) -> None:
        ids = batch.offsets.get("ids", ())
        if not ids:
            return  # an idle tick
        packed = self._packed.pop((ids[0], ids[-1], len(ids)), None)
        if packed is not None and (packed[0] is ids or packed[0] == ids):  # a batch _emit made
            head = b"$4\r\nXACK\r\n" + _bulk_arg(self.key) + _bulk_arg(self.group)
            commands: list[Any] = []
            at = 0
            for acks, n in zip(packed[1], packed[2]):
                if acks is None:
                    commands += _xack_commands(self.key, self.group, ids[at : at + n])
                else:
                    commands.append(b"*%d\r\n%s%s" % (n + 3, head, acks))
                at += n
            self._call(*commands)
        else:
            self._call(*_xack_commands(self.key, self.group, ids))
        self._held.difference_update(ids)

    def __iter__(self) -> Iterator[Batch]:
        try:
            yield from super().__iter__()
        finally:
            self._drop_conn()

    def _emit(self, frame: pl.DataFrame, dead: pl.DataFrame) -> Batch:
        batch = super()._emit(frame, dead)
        ids = batch.offsets["ids"]
        if ids and any(a is not None for a in self._acks):
            while len(self._packed) >= _PACKED_MAX:  # batches never acked (a caller that does not)
                self._packed.popitem(last=False)  # one step: ack() pops from another thread
            self._packed[(ids[0], ids[-1], len(ids))] = (ids, self._acks, [len(i) for i in self._ids])
        self._ids, self._acks = [], []
        return batch

    def _read(self, timeout_s: float, limit: int) -> Chunk:
        try:
            chunk = self._read_entries(timeout_s, limit)
        except redis.ResponseError as e:
            if "NOGROUP" not in str(e):
                raise
            self._group_ready = False  # Redis lost the group (restart without persistence): recreate
            return Chunk()
        except (redis.ConnectionError, redis.TimeoutError, OSError) as e:
            self._drop_conn()
            if self.closed:
                return Chunk()  # stopped while a read was out (the server may be gone too): not an outage
            self.errors += 1
            if self.last_error is None:
                log.warning("redis stream %s unreachable, retrying: %s", self.key, e)
            self.last_error = str(e)
            self._group_ready = False
            self._backoff = min(max(self._backoff * 2, 0.05), 5.0)
            self.clock.sleep(min(self._backoff, max(timeout_s, 0.01)))
            return Chunk()
        if self.last_error is not None:
            log.info("redis stream %s reachable again", self.key)
            self.last_error, self._backoff = None, 0.0
        return chunk

    # -- talking to Redis

    def _call(self, *commands: tuple[Any, ...] | bytes) -> list[Any]:
        """Run `commands` (argument tuples, or packed) in one round trip on a connection of the
        client's pool; their replies raw (bytes, no response callbacks). All replies are read,
        errors too, so the connection stays in step; then the first error is raised."""
        pool = self.redis.connection_pool
        conn = pool.get_connection()
        try:
            # hiredis packs in C; redis-py's packer adds a Python step per argument (an XACK has 10,000).
            conn.send_packed_command([c if isinstance(c, bytes) else hiredis.pack_command(c) for c in commands])
            replies: list[Any] = []
            error: redis.ResponseError | None = None
            for _ in commands:
                try:
                    replies.append(conn.read_response(disable_decoding=True))
                except redis.ResponseError as e:
                    error = error or e
                    replies.append(None)
        finally:
            pool.release(conn)  # read_response has closed it on anything but a reply error
        if error is not None:
            raise error
        return replies

    def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            self._call(("XGROUP", "CREATE", self.key, self.group, self.start_id, "MKSTREAM"))
        except redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise
        self._group_ready = True

    def _reader(self) -> AbstractConnection | None:
        """Our connection for XREADGROUP: the client's connection class and settings, RESP2 (no
        push messages can come between our replies); None when the pool's connections cannot
        be made that way (then reads go through the pool, parsed by hiredis)."""
        if self._conn is None and self._own_conn:
            pool = self.redis.connection_pool
            cls = getattr(pool, "connection_class", None)
            try:
                if not (isinstance(cls, type) and issubclass(cls, AbstractConnection)):
                    raise TypeError(f"{cls!r} is not a redis-py connection class")
                self._conn = cls(**{**pool.connection_kwargs, "protocol": 2})
            except (redis.RedisError, TypeError, ValueError) as e:
                log.info("redis stream %s: reading through the client's pool (%s)", self.key, e)
                self._own_conn = False
        return self._conn

    def _drop_conn(self) -> None:
        conn, self._conn, self._ahead = self._conn, None, None
        if conn is not None:
            conn.disconnect()

    def _xreadgroup_cmd(self, from_id: str, count: int, block_ms: int | None) -> bytes:
        block = ("BLOCK", block_ms) if block_ms is not None else ()
        cmd = ("XREADGROUP", "GROUP", self.group, self.consumer, "COUNT", count, *block, "STREAMS", self.key, from_id)
        return hiredis.pack_command(cmd)

    def _send_read(self, from_id: str, count: int, block_ms: int | None = None) -> None:
        conn = self._reader()
        assert conn is not None
        conn.send_packed_command([self._xreadgroup_cmd(from_id, count, block_ms) + self._echo])

    def _xreadgroup(self, from_id: str, count: int, block_ms: int | None = None) -> Read:
        if self._reader() is None:
            block = ("BLOCK", block_ms) if block_ms is not None else ()
            (reply,) = self._call(
                ("XREADGROUP", "GROUP", self.group, self.consumer, "COUNT", count, *block, "STREAMS", self.key, from_id)
            )
            return _entries(reply)
        self._send_read(from_id, count, block_ms)
        return self._receive(block_ms)

    def _receive(self, block_ms: int | None = None) -> Read:
        """The reply to the XREADGROUP sent last on our connection, read up to its ECHO."""
        conn = self._conn
        assert conn is not None
        tail = self._echo_reply
        buf, n = self._buf, 0
        try:
            sock = conn._sock  # noqa: SLF001 - the reply is read raw; redis-py has no public way
            if sock is None:
                raise redis.ConnectionError("connection lost")
            if block_ms and conn.socket_timeout:
                # Redis answers a BLOCK read when it ends: allow for it on top of the timeout.
                sock.settimeout(conn.socket_timeout + block_ms / 1000)
            while True:
                if n == len(buf):
                    grown = bytearray(2 * len(buf))
                    grown[:n] = buf
                    buf = self._buf = grown
                got = sock.recv_into(memoryview(buf)[n:])
                if not got:
                    raise redis.ConnectionError("Connection closed by server.")
                n += got
                if n >= len(tail) and buf[n - len(tail) : n] == tail:
                    read = _parse_read(buf, n - len(tail), n)
                    if read is not None:
                        if block_ms and conn.socket_timeout:
                            sock.settimeout(conn.socket_timeout)
                        return read
                    # Else the token's bytes ended a recv inside a payload: read on.
        except redis.ResponseError:
            raise  # a reply, read whole: the connection is in step
        except TimeoutError as e:
            self._drop_conn()
            raise redis.TimeoutError(f"Timeout reading from redis: {e}") from e
        except OSError as e:
            self._drop_conn()
            raise redis.ConnectionError(f"Error while reading from redis: {e}") from e
        except BaseException:
            self._drop_conn()  # whatever happened, the connection is out of step
            raise

    # -- reading

    def _read_entries(self, timeout_s: float, limit: int) -> Chunk:
        self._ensure_group()
        chunk = self._read_ready(limit)
        if chunk is not None:
            return chunk
        block = int(timeout_s * 1000)  # caught up: wait for new entries
        return self._chunk(self._xreadgroup(">", min(limit, _READ_COUNT), block)) if block > 0 else Chunk()

    def _read_ready(self, limit: int) -> Chunk | None:
        """Entries to be had without waiting, None if none: the read sent ahead, else our own
        pending entries (after a restart), else other consumers' stuck ones when a claim is
        due, else new ones."""
        count = min(limit, _READ_COUNT)
        got: Read
        if self._ahead is not None:
            count, self._ahead = self._ahead, None
            got = self._receive()
        else:
            if self._own_pending_from is not None:
                got = self._xreadgroup(self._own_pending_from, count)
                if len(got):
                    # From the last entry seen, trimmed ones included: a read of trimmed
                    # entries only must not end the re-reading of those after them.
                    self._own_pending_from = got.ids[-1] if isinstance(got, _Payloads) else got[-1][0].decode()
                    return self._chunk(got)
                self._own_pending_from = None
            now = self.clock.monotonic()
            if now >= self._next_claim:
                self._next_claim = now + self.claim_every_s
                (reply,) = self._call(
                    ("XAUTOCLAIM", self.key, self.group, self.consumer, self.claim_idle_ms, self._claim_cursor, "COUNT", count)
                )
                self._claim_cursor = reply[0].decode()
                claimed = [e for e in reply[1] if e[0].decode() not in self._held]
                if claimed:
                    return self._chunk(claimed)
            got = self._xreadgroup(">", count)
        if not len(got):
            return None
        if len(got) == count and self._conn is not None:
            # A full read: more is likely waiting. Ask for it now so Redis builds that reply
            # while we type this one. Never more than the batch being cut can take next: it
            # holds at most `limit - len(got)` more rows, or is cut (then max_rows).
            room = limit - len(got)
            ahead = min(room if room > 0 else self.max_rows, _READ_COUNT)
            try:
                self._send_read(">", ahead)
                self._ahead = ahead
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                self._drop_conn()  # `got` is ours all the same; the next read reconnects or reports
        return self._chunk(got)

    def _chunk(self, got: Read) -> Chunk:
        if isinstance(got, _Payloads):
            return self._chunk_payloads(got)
        fields: list[list[bytes] | None] = list(map(_second, got))
        raw_ids: list[bytes] = list(map(_first, got))
        if None in fields:  # pending entries trimmed from the stream meanwhile: nothing left to process
            self._call(*_xack_commands(self.key, self.group, [i for i, f in zip(raw_ids, fields) if f is None]))
            kept = [k for k, f in enumerate(fields) if f is not None]
            raw_ids, fields = [raw_ids[k] for k in kept], [fields[k] for k in kept]
        if not raw_ids:
            return Chunk()
        ids = _decode_ids(raw_ids)
        if all(len(f) == 2 and f[0] in _JSON_FIELDS for f in fields):  # type: ignore[arg-type]
            # Came as lists (claimed, or read through the pool): the same as from the kernel.
            payloads = list(map(_second, fields))  # type: ignore[arg-type]
            return self._chunk_payloads(_Payloads(ids, b"\n".join(payloads), np.cumsum([0, *(len(p) + 1 for p in payloads)])))
        self._ids.append(ids)
        self._acks.append(None)
        self._held.update(ids)  # until acked: never claimed back by us
        records: list[Any] = []
        raws: list[str | bytes] = []
        for entry_id, flat in zip(ids, fields):
            raw: str | bytes
            pairs = dict(zip(flat[::2], flat[1::2]))  # type: ignore[index]
            size = sum(map(len, flat))  # type: ignore[arg-type]
            if size > self.max_event_bytes:
                records.append(oversize(size, self.max_event_bytes))
                raw = oversize_raw(b" ".join(flat)[: 2 * 1024], size)  # type: ignore[arg-type]
            elif len(pairs) == 1 and next(iter(pairs)) in _JSON_FIELDS:
                raw = next(iter(pairs.values()))
                records.append(_loads(entry_id, raw))
            else:
                try:
                    record: Any = {k.decode(): v.decode() for k, v in pairs.items()}
                    raw = json.dumps(record, ensure_ascii=False)
                except UnicodeDecodeError as e:
                    record = Rejected(f"invalid UTF-8 in entry {entry_id}: {e}")
                    text = {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs.items()}
                    raw = json.dumps(text, ensure_ascii=False)
                records.append(record)
            raws.append(raw)
        return Chunk(records, raws)

    def _chunk_payloads(self, got: _Payloads) -> Chunk:
        """Entries that are each one JSON payload: typed all at once by Polars (ndjson.py), exactly
        as one by one, when there are enough of them and all are on one line."""
        ids = got.ids
        self._ids.append(ids)
        self._acks.append(got.acks)
        self._held.update(ids)  # until acked: never claimed back by us

        limit = self.max_event_bytes

        def reparse(rows: Any) -> tuple[list[Any], list[Any]]:
            payloads = [got.payload(i) for i in rows]
            records = [_loads(ids[i], p) if len(p) <= limit else oversize(len(p), limit) for i, p in zip(rows, payloads)]
            return records, [p if len(p) <= limit else oversize_raw(p) for p in payloads]

        n = len(ids)
        fits = len(got.block) <= limit or int(np.diff(got.starts).max()) - 1 <= limit
        if fits and n >= _FAST_MIN and got.block.count(b"\n") == n - 1:  # else a payload spans lines
            typed = fast_block(self.stream, got.block, reparse, expect_rows=n)
            if typed is not None:
                return Chunk(frame=typed[0], dead=typed[1])
        records, raws = reparse(range(n))
        return Chunk(records, raws)


def _entries(reply: Any) -> list[Entry]:
    """The entries of an XREADGROUP reply for one key: [[key, entries]] in RESP2, {key: entries}
    in RESP3, nil when there is nothing."""
    if not reply:
        return []
    streams = list(reply.values()) if isinstance(reply, dict) else [s[1] for s in reply]
    return streams[0] if len(streams) == 1 else [e for s in streams for e in s]


def _parse_read(buf: bytearray, end: int, n: int) -> Read | None:
    """The XREADGROUP reply in `buf[:end]` (our ECHO's reply follows it, up to `n`); None if
    the reply is not whole after all."""
    status, stop, ids, block, starts, acks = _scan(np.frombuffer(buf, np.uint8, end), end)
    if status == _NIL and stop == end:
        return []
    if status == _OK and stop == end:
        if not starts.shape[0] - 1:
            return []
        return _Payloads(ids.tobytes().decode("ascii").split(" "), block.tobytes(), starts, acks.tobytes())
    reader = hiredis.Reader()
    reader.feed(memoryview(buf)[:n])
    try:
        reply = reader.gets()
        if reply is False or reader.gets() is False:
            return None
    except hiredis.ProtocolError as e:  # never from a sane server; out of step for sure
        raise redis.ConnectionError(f"protocol error reading the stream: {e}") from e
    if isinstance(reply, hiredis.ReplyError):
        raise redis.ResponseError(str(reply))
    return _entries(reply)


def _bulk_arg(text: str) -> bytes:
    b = text.encode()
    return b"$%d\r\n%s\r\n" % (len(b), b)


def _xack_commands(key: str, group: str, ids: Any) -> list[tuple[Any, ...]]:
    return [("XACK", key, group, *ids[i : i + _ACK_CHUNK]) for i in range(0, len(ids), _ACK_CHUNK)]


def _decode_ids(raw: list[bytes]) -> list[str]:
    """Entry ids as str, for checkpoints (JSON) and XACK: one decode for the whole read
    (ids are `<ms>-<seq>`, never a space)."""
    return b" ".join(raw).decode("ascii").split(" ") if raw else []


def _loads(entry_id: str, raw: str | bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError as e:  # UnicodeDecodeError too: a payload that is not UTF-8
        return Rejected(f"malformed JSON in entry {entry_id}: {e}")
    except RecursionError:
        return Rejected(f"malformed JSON in entry {entry_id}: nested too deeply")


# -- the reply scanner

#: `_scan` statuses: every entry a one-line `data`/`json` payload; a nil reply (nothing new);
#: anything else (left to hiredis).
_OK, _NIL, _OTHER = 0, 1, 2
_STAR, _DOLLAR, _CR, _LF, _SPACE = 42, 36, 13, 10, 32


@nb.njit(cache=True, nogil=True)
def _int_line(buf: np.ndarray, pos: int, n: int) -> tuple[int, int]:
    """The integer written from `pos` to CRLF, and the position past the CRLF (-1: no such line)."""
    neg = pos < n and buf[pos] == 45
    if neg:
        pos += 1
    start = pos
    v = 0
    while pos < n and 48 <= buf[pos] <= 57 and pos - start < 18:
        v = v * 10 + (buf[pos] - 48)
        pos += 1
    if pos == start or pos + 1 >= n or buf[pos] != _CR or buf[pos + 1] != _LF:
        return 0, -1
    return (-v if neg else v), pos + 2


@nb.njit(cache=True, nogil=True)
def _head(buf: np.ndarray, pos: int, n: int, kind: int) -> tuple[int, int]:
    """A `kind` header (`*` array, `$` bulk) at `pos`: its count or length, and where it ends (-1: not one)."""
    if pos >= n or buf[pos] != kind:
        return 0, -1
    return _int_line(buf, pos + 1, n)


@nb.njit(cache=True, nogil=True)
def _bulk(buf: np.ndarray, pos: int, n: int) -> tuple[int, int, int]:
    """A bulk string at `pos`: where its bytes start, how many, and where it ends (-1: not one)."""
    ln, p = _head(buf, pos, n, _DOLLAR)
    if p < 0 or ln < 0 or p + ln + 2 > n or buf[p + ln] != _CR or buf[p + ln + 1] != _LF:
        return 0, 0, -1
    return p, ln, p + ln + 2


@nb.njit(cache=True, nogil=True)
def _scan(buf: np.ndarray, n: int) -> tuple[int, int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """An XREADGROUP reply for one key, RESP2, in `buf[:n]`: (status, where it ends, the ids
    joined by spaces, the payloads joined by newlines, where each payload starts in those
    plus one past the end, the ids as packed XACK arguments). Only `_OK` fills the arrays;
    it is returned when each entry is `[id, ["data" or "json", payload]]`. A payload holding
    a newline still counts: the caller checks the line count."""
    buf = borrow(buf)
    no8 = np.empty(0, np.uint8)
    no64 = np.empty(0, np.int64)
    v, p = _head(buf, 0, n, _STAR)
    if p < 0:
        return _OTHER, 0, no8, no8, no64, no8
    if v == -1:
        return _NIL, p, no8, no8, no64, no8
    if v != 1:
        return _OTHER, 0, no8, no8, no64, no8
    v, p = _head(buf, p, n, _STAR)  # [key, entries]
    if p < 0 or v != 2:
        return _OTHER, 0, no8, no8, no64, no8
    _, _, p = _bulk(buf, p, n)
    if p < 0:
        return _OTHER, 0, no8, no8, no64, no8
    count, p = _head(buf, p, n, _STAR)
    if p < 0 or count < 0 or count > n:
        return _OTHER, 0, no8, no8, no64, no8
    arg_at = np.empty(count, np.int64)  # the id's bulk string: `$<len>\r\n<id>\r\n`
    id_at = np.empty(count, np.int64)
    id_len = np.empty(count, np.int64)
    pay_at = np.empty(count, np.int64)
    pay_len = np.empty(count, np.int64)
    for i in range(count):
        v, p = _head(buf, p, n, _STAR)  # [id, fields]
        if p < 0 or v != 2:
            return _OTHER, 0, no8, no8, no64, no8
        arg_at[i] = p
        id_at[i], id_len[i], p = _bulk(buf, p, n)
        if p < 0:
            return _OTHER, 0, no8, no8, no64, no8
        v, p = _head(buf, p, n, _STAR)  # exactly one field: not flat fields, not nil (trimmed)
        if p < 0 or v != 2:
            return _OTHER, 0, no8, no8, no64, no8
        at, ln, p = _bulk(buf, p, n)
        if p < 0 or ln != 4:
            return _OTHER, 0, no8, no8, no64, no8
        c0, c1, c2, c3 = buf[at], buf[at + 1], buf[at + 2], buf[at + 3]
        data = c0 == 100 and c1 == 97 and c2 == 116 and c3 == 97
        json_ = c0 == 106 and c1 == 115 and c2 == 111 and c3 == 110
        if not (data or json_):
            return _OTHER, 0, no8, no8, no64, no8
        pay_at[i], pay_len[i], p = _bulk(buf, p, n)
        if p < 0:
            return _OTHER, 0, no8, no8, no64, no8
    n_ids = id_len.sum()
    ids = np.empty(max(n_ids + count - 1, 0), np.uint8)
    payloads = np.empty(max(pay_len.sum() + count - 1, 0), np.uint8)
    acks = np.empty(n_ids + (id_at - arg_at).sum() + 2 * count, np.uint8)
    starts = np.empty(count + 1, np.int64)
    q = 0
    r = 0
    a = 0
    for i in range(count):
        if i:
            ids[q] = _SPACE
            payloads[r] = _LF
            q += 1
            r += 1
        ln = id_len[i]
        ids[q : q + ln] = buf[id_at[i] : id_at[i] + ln]
        q += ln
        ln = id_at[i] + id_len[i] + 2 - arg_at[i]  # the id as it came: already a command's argument
        acks[a : a + ln] = buf[arg_at[i] : arg_at[i] + ln]
        a += ln
        starts[i] = r
        ln = pay_len[i]
        payloads[r : r + ln] = buf[pay_at[i] : pay_at[i] + ln]
        r += ln
    starts[count] = r + 1
    return _OK, p, ids, payloads, starts, acks
