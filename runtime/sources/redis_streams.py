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

- Commands go straight to connections of the client's pool and replies come
  back as hiredis builds them (bytes in nested lists): no redis-py response
  callbacks (a dict per entry, in Python) and no decoding, whatever the
  client's `decode_responses`.
- A read whose entries are all one one-line JSON payload each is typed in one
  Polars call (ndjson.py) on the payloads joined as they came.
- Reads take at most `_READ_COUNT` entries, and while there is a backlog the
  next XREADGROUP is sent before the current reply is typed, so Redis builds
  one reply while we type the other. Entries read ahead are in our pending
  list like any delivered entry: if we stop first, a restart re-reads them.
- The cyclic garbage collector is paused while a reply is alive (see
  `_gc_paused`).

Redis being unreachable never ends the iteration: reads back off (up to 5 s),
the error is counted in `errors` and logged once per outage.
"""

from __future__ import annotations

import gc
import itertools
import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from operator import itemgetter
from typing import Any

import hiredis
import polars as pl
import redis

from cepdsl.plan import StreamPlan
from runtime.sources.batch import Batch, Chunk, Clock, Source
from runtime.sources.ndjson import fast_block
from runtime.sources.records import Rejected

log = logging.getLogger(__name__)
_JSON_FIELDS = frozenset((b"data", b"json"))
_ACK_CHUNK = 10_000
#: Entries per XREADGROUP. Redis runs one command at a time: a bigger read makes the XACKs
#: of the engine thread wait longer behind it, and the read-ahead overlaps less.
_READ_COUNT = 10_000
#: Fewer entries than this are typed one by one (the bulk path's fixed cost is ~1 ms).
_FAST_MIN = 64
_first, _second = itemgetter(0), itemgetter(1)

#: A stream entry as hiredis gives it: [id, [field, value, ...]], the fields None when the
#: entry was trimmed from the stream while pending.
Entry = list[Any]


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
        max_rows: int = 10_000,
        max_delay_s: float = 0.5,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(stream, max_rows=max_rows, max_delay_s=max_delay_s, clock=clock)
        self.redis = redis.Redis.from_url(client, decode_responses=True) if isinstance(client, str) else client
        self.key, self.group, self.consumer = key, group, consumer
        self.start_id = start_id
        self.claim_idle_ms = claim_idle_ms
        self.claim_every_s = claim_every_s if claim_every_s is not None else max(claim_idle_ms / 2000, 0.05)
        self.errors = 0
        self.last_error: str | None = None
        self._ids: list[list[str]] = []  # delivered since the last batch was cut, one list per read
        # Delivered to us and not acked yet. XAUTOCLAIM hands a consumer its *own* idle entries
        # too: without this, a batch waiting longer than claim_idle for its checkpoint would be
        # claimed back and processed twice.
        self._held: set[str] = set()
        self._group_ready = False
        self._own_pending_from: str | None = "0"  # None once our old pending entries are re-read
        self._claim_cursor = "0-0"
        self._next_claim = 0.0
        self._backoff = 0.0
        # The reading thread's own connection (ack() comes from another thread and takes
        # another one), and the COUNT of an XREADGROUP sent on it whose reply is not read yet.
        self._conn: Any = None
        self._ahead: int | None = None

    # -- Source

    def offsets(self) -> dict[str, Any]:
        return {"key": self.key, "group": self.group, "ids": list(itertools.chain.from_iterable(self._ids))}

    def ack(self, batch: Batch) -> None:
        ids = batch.offsets.get("ids", ())
        self._xack(ids)
        self._held.difference_update(ids)

    def __iter__(self) -> Iterator[Batch]:
        try:
            yield from super().__iter__()
        finally:
            self._drop_conn()

    def _emit(self, frame: pl.DataFrame, dead: pl.DataFrame) -> Batch:
        batch = super()._emit(frame, dead)
        self._ids = []
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

    def _call(self, *commands: tuple[Any, ...]) -> list[Any]:
        """Run `commands` in one round trip on a connection of the client's pool; their replies raw."""
        pool = self.redis.connection_pool
        conn = pool.get_connection()
        try:
            _send(conn, commands)
            return _replies(conn, len(commands))
        finally:
            pool.release(conn)  # read_response has closed it on anything but a reply error

    def _reader(self) -> Any:
        if self._conn is None:
            self._conn = self.redis.connection_pool.get_connection()
        return self._conn

    def _drop_conn(self) -> None:
        conn, ahead, self._conn, self._ahead = self._conn, self._ahead, None, None
        if conn is not None:
            if ahead is not None:
                conn.disconnect()  # a reply still on its way: the connection is out of step
            self.redis.connection_pool.release(conn)

    def _xack(self, ids: Any) -> None:
        if ids:
            self._call(*(("XACK", self.key, self.group, *ids[i : i + _ACK_CHUNK]) for i in range(0, len(ids), _ACK_CHUNK)))

    def _xreadgroup_cmd(self, from_id: str, count: int, block_ms: int | None) -> tuple[Any, ...]:
        block = ("BLOCK", block_ms) if block_ms is not None else ()
        return ("XREADGROUP", "GROUP", self.group, self.consumer, "COUNT", count, *block, "STREAMS", self.key, from_id)

    def _xreadgroup(self, from_id: str, count: int, block_ms: int | None = None) -> list[Entry]:
        conn = self._reader()
        _send(conn, (self._xreadgroup_cmd(from_id, count, block_ms),))
        return _entries(_replies(conn, 1)[0])

    def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            self._call(("XGROUP", "CREATE", self.key, self.group, self.start_id, "MKSTREAM"))
        except redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise
        self._group_ready = True

    # -- reading

    def _read_entries(self, timeout_s: float, limit: int) -> Chunk:
        self._ensure_group()
        with _gc_paused():  # nothing in here waits for Redis beyond a round trip
            chunk = self._read_ready(limit)  # its reply is freed when it returns, collector off
        if chunk is not None:
            return chunk
        # Caught up: wait for new entries with the collector on (the wait may be long, and what
        # arrives during it is usually a handful of entries).
        block = int(timeout_s * 1000)
        return self._chunk(self._xreadgroup(">", min(limit, _READ_COUNT), block)) if block > 0 else Chunk()

    def _read_ready(self, limit: int) -> Chunk | None:
        """Entries to be had without waiting, None if none: the read sent ahead, else our own
        pending entries (after a restart), else other consumers' stuck ones when a claim is
        due, else new ones."""
        count = min(limit, _READ_COUNT)
        if self._ahead is not None:
            count, self._ahead = self._ahead, None
            got = _entries(_replies(self._conn, 1)[0])
        else:
            if self._own_pending_from is not None:
                got = self._xreadgroup(self._own_pending_from, count)
                if got:
                    # From the last entry seen, trimmed ones included: a read of trimmed
                    # entries only must not end the re-reading of those after them.
                    self._own_pending_from = got[-1][0].decode()
                    return self._chunk(got)
                self._own_pending_from = None
            now = self.clock.monotonic()
            if now >= self._next_claim:
                self._next_claim = now + self.claim_every_s
                (reply,) = self._call(("XAUTOCLAIM", self.key, self.group, self.consumer, self.claim_idle_ms,
                                       self._claim_cursor, "COUNT", count))
                self._claim_cursor = reply[0].decode()
                claimed = [e for e in reply[1] if e[0].decode() not in self._held]
                if claimed:
                    return self._chunk(claimed)
            got = self._xreadgroup(">", count)
        if not got:
            return None
        if len(got) == count:
            # A full read: more is likely waiting. Ask for it now so Redis builds that reply
            # while we type this one. Never more than the batch being cut can take next: the
            # batch holds at most `limit - len(got)` more rows, or is cut (then max_rows).
            room = limit - len(got)
            ahead = min(room if room > 0 else self.max_rows, _READ_COUNT)
            try:
                _send(self._conn, (self._xreadgroup_cmd(">", ahead, None),))
                self._ahead = ahead
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                self._drop_conn()  # `got` is ours all the same; the next read reconnects or reports
        return self._chunk(got)

    def _chunk(self, entries: list[Entry]) -> Chunk:
        fields: list[list[bytes] | None] = list(map(_second, entries))
        raw_ids: list[bytes] = list(map(_first, entries))
        if None in fields:  # pending entries trimmed from the stream meanwhile: nothing left to process
            self._xack(_decode_ids([i for i, f in zip(raw_ids, fields) if f is None]))
            kept = [k for k, f in enumerate(fields) if f is not None]
            raw_ids, fields = [raw_ids[k] for k in kept], [fields[k] for k in kept]
        if not raw_ids:
            return Chunk()
        ids = _decode_ids(raw_ids)
        self._ids.append(ids)
        self._held.update(ids)  # until acked: never claimed back by us
        fast = self._fast_chunk(ids, fields)  # type: ignore[arg-type]
        if fast is not None:
            return fast
        records: list[Any] = []
        raws: list[str | bytes] = []
        for entry_id, flat in zip(ids, fields):
            pairs = dict(zip(flat[::2], flat[1::2]))  # type: ignore[index]
            if len(pairs) == 1 and next(iter(pairs)) in _JSON_FIELDS:
                raw: str | bytes = next(iter(pairs.values()))
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

    def _fast_chunk(self, ids: list[str], fields: list[list[bytes]]) -> Chunk | None:
        """Every entry a single JSON payload on one line: type them all at once with Polars
        (ndjson.py), exactly as entry by entry; None when that cannot be done for this read."""
        n = len(fields)
        if n < _FAST_MIN:
            return None
        # C-speed checks over the whole read: one field each, named data or json.
        if set(map(len, fields)) != {2} or not set(map(_first, fields)) <= _JSON_FIELDS:
            return None
        payloads: list[bytes] = list(map(_second, fields))
        joined = b"\n".join(payloads)
        if joined.count(b"\n") != n - 1:
            return None  # a payload spanning lines: entry by entry

        def reparse(rows: list[int]) -> tuple[list[Any], list[Any]]:
            return [_loads(ids[i], payloads[i]) for i in rows], [payloads[i] for i in rows]

        typed = fast_block(self.stream, joined, reparse, expect_rows=n)
        if typed is None:
            return None
        return Chunk(frame=typed[0], dead=typed[1])


def _send(conn: Any, commands: tuple[tuple[Any, ...], ...]) -> None:
    # hiredis packs in C; redis-py's packer adds a Python step per argument (an XACK has 10,000).
    conn.send_packed_command([hiredis.pack_command(c) for c in commands])


def _replies(conn: Any, n: int) -> list[Any]:
    """The next `n` replies on `conn`, raw (bytes, no response callbacks). All are read, errors
    too, so the connection stays in step; then the first error is raised."""
    replies: list[Any] = []
    error: redis.ResponseError | None = None
    for _ in range(n):
        try:
            replies.append(conn.read_response(disable_decoding=True))
        except redis.ResponseError as e:
            error = error or e
            replies.append(None)
    if error is not None:
        raise error
    return replies


def _entries(reply: Any) -> list[Entry]:
    """The entries of an XREADGROUP reply for one key: [[key, entries]] in RESP2, {key: entries}
    in RESP3 (a client made with protocol=3), nil when there is nothing."""
    if not reply:
        return []
    streams = list(reply.values()) if isinstance(reply, dict) else [s[1] for s in reply]
    return streams[0] if len(streams) == 1 else [e for s in streams for e in s]


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


_gc_lock = threading.Lock()
_gc_depth = 0
_gc_was_enabled = False


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic GC while a read's reply is alive. hiredis builds two lists per entry; with the
    collector on, 10k entries set off young collections by the dozen and, as the lists
    survive until the read is typed, full collections of the whole process heap (the
    engine's state included): measured, more time than the parse itself. A reply holds no
    cycles and is freed by reference counting when the read is done, so the pause leaves
    nothing for the collector. The switch is process-wide: it is counted, so sources
    reading in several threads nest, and left off if it was off."""
    global _gc_depth, _gc_was_enabled
    with _gc_lock:
        if _gc_depth == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_depth += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_depth -= 1
            if _gc_depth == 0 and _gc_was_enabled:
                gc.enable()
