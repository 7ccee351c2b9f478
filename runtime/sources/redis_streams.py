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

Redis being unreachable never ends the iteration: reads back off (up to 5 s),
the error is counted in `errors` and logged once per outage.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import polars as pl
import redis

from cepdsl.plan import StreamPlan
from runtime.sources.batch import Batch, Chunk, Clock, Source
from runtime.sources.ndjson import fast_block
from runtime.sources.records import Rejected

log = logging.getLogger(__name__)
_JSON_FIELDS = ("data", "json")
_ACK_CHUNK = 10_000
#: Fewer entries than this are typed one by one (the bulk path's fixed cost is ~1 ms).
_FAST_MIN = 64


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
        self._ids: list[str] = []  # delivered since the last batch was cut
        # Delivered to us and not acked yet. XAUTOCLAIM hands a consumer its *own* idle entries
        # too: without this, a batch waiting longer than claim_idle for its checkpoint would be
        # claimed back and processed twice.
        self._held: set[str] = set()
        self._group_ready = False
        self._own_pending_from: str | None = "0"  # None once our old pending entries are re-read
        self._claim_cursor = "0-0"
        self._next_claim = 0.0
        self._backoff = 0.0

    # -- Source

    def offsets(self) -> dict[str, Any]:
        return {"key": self.key, "group": self.group, "ids": list(self._ids)}

    def ack(self, batch: Batch) -> None:
        ids = batch.offsets.get("ids", ())
        for i in range(0, len(ids), _ACK_CHUNK):
            self.redis.xack(self.key, self.group, *ids[i : i + _ACK_CHUNK])
        self._held.difference_update(ids)

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

    # -- reading

    def _read_entries(self, timeout_s: float, limit: int) -> Chunk:
        self._ensure_group()
        entries: list[tuple[str, dict[str, str]]] = []
        if self._own_pending_from is not None:
            got = self._xreadgroup(self._own_pending_from, limit, None)
            if got:
                self._own_pending_from = got[-1][0]
                return self._chunk(got)
            self._own_pending_from = None
        now = self.clock.monotonic()
        if now >= self._next_claim:
            self._next_claim = now + self.claim_every_s
            cursor, claimed, *_ = self.redis.xautoclaim(
                self.key, self.group, self.consumer, self.claim_idle_ms, start_id=self._claim_cursor, count=limit
            )
            self._claim_cursor = cursor
            entries = [(i, f) for i, f in claimed if f is not None and i not in self._held]
            if entries:
                return self._chunk(entries)
        block = int(timeout_s * 1000)
        return self._chunk(self._xreadgroup(">", limit, block if block > 0 else None))

    def _xreadgroup(self, from_id: str, limit: int, block_ms: int | None) -> list[tuple[str, dict[str, str]]]:
        reply = self.redis.xreadgroup(self.group, self.consumer, {self.key: from_id}, count=limit, block=block_ms)
        if not reply:
            return []
        # RESP2 gives [[key, entries]], RESP3 gives {key: [entries]}.
        streams = reply.items() if isinstance(reply, dict) else reply
        out: list[tuple[str, dict[str, str]]] = []
        gone: list[str] = []
        for _, entries in streams:
            for entry_id, fields in entries:
                (out if fields else gone).append((entry_id, fields) if fields else entry_id)  # type: ignore[arg-type]
        if gone:  # pending entries trimmed from the stream meanwhile: nothing left to process
            self.redis.xack(self.key, self.group, *gone)
        return out

    def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            self.redis.xgroup_create(self.key, self.group, id=self.start_id, mkstream=True)
        except redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise
        self._group_ready = True

    def _chunk(self, entries: list[tuple[str, dict[str, str]]]) -> Chunk:
        self._ids.extend(entry_id for entry_id, _ in entries)
        self._held.update(entry_id for entry_id, _ in entries)  # until acked: never claimed back by us
        fast = self._fast_chunk(entries)
        if fast is not None:
            return fast
        records: list[Any] = []
        raws: list[str | bytes] = []
        for entry_id, fields in entries:
            if len(fields) == 1 and next(iter(fields)) in _JSON_FIELDS:
                raw = next(iter(fields.values()))
                records.append(_loads(entry_id, raw))
            else:
                raw = json.dumps(fields, ensure_ascii=False)
                records.append(dict(fields))
            raws.append(raw)
        return Chunk(records, raws)

    def _fast_chunk(self, entries: list[tuple[str, dict[str, str]]]) -> Chunk | None:
        """Every entry a single JSON payload: type them all at once with Polars (ndjson.py),
        exactly as entry by entry; None when that cannot be done for this read."""
        if len(entries) < _FAST_MIN:
            return None
        try:
            payloads = [fields["data"] if "data" in fields else fields["json"] for _, fields in entries]
        except KeyError:
            return None
        if any(len(fields) != 1 for _, fields in entries):
            return None
        joined = "\n".join(payloads)
        if joined.count("\n") != len(payloads) - 1:
            return None  # a payload spanning lines: entry by entry

        def reparse(rows: list[int]) -> tuple[list[Any], list[Any]]:
            return [_loads(entries[i][0], payloads[i]) for i in rows], [payloads[i] for i in rows]

        typed = fast_block(self.stream, joined.encode(), reparse, expect_rows=len(payloads))
        if typed is None:
            return None
        return Chunk(frame=typed[0], dead=typed[1])


def _loads(entry_id: str, raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError as e:
        return Rejected(f"malformed JSON in entry {entry_id}: {e}")
    except RecursionError:
        return Rejected(f"malformed JSON in entry {entry_id}: nested too deeply")
