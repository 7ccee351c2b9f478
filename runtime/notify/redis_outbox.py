"""The outbox in Redis, for deployments where the engine's state already lives there.

Keys (prefix `cep:` by default, as in the seed design §6):
    cep:outbox:seq                          id counter
    cep:outbox:item:<id>                    hash: notification_id rule channel record via attempts status ...
    cep:outbox:due                          zset id → next attempt time (pending)
    cep:outbox:inflight                     zset id → claim time
    cep:outbox:key:<notification_id>:<ch>   id; SET NX makes enqueue idempotent (the sent-log), TTL = retention
    cep:retry:<notification_id>:<ch>        hash attempts/last_error/next_at, TTL 24 h
    cep:outbox:failures                     list of JSON failure records, newest first, capped

Enqueue and claim are Lua scripts, so a crash between two commands cannot
leave an item half-written or claimed twice. Like the SQLite outbox, it
stores the match record and channel name, never a resolved secret.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import redis

from runtime.notify.outbox import Delivery, NewDelivery

RETRY_TTL_S = 24 * 3600
FAILURES_KEPT = 10_000

_ENQUEUE = """
local p, now, ttl, added = ARGV[1], ARGV[2], ARGV[3], 0
for i = 4, #ARGV, 5 do
  local nid, rule, ch, rec, via = ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3], ARGV[i+4]
  local k = p .. 'outbox:key:' .. nid .. ':' .. ch
  if redis.call('SET', k, '0', 'NX', 'EX', ttl) then
    local id = redis.call('INCR', p .. 'outbox:seq')
    redis.call('SET', k, id, 'KEEPTTL')
    redis.call('HSET', p .. 'outbox:item:' .. id, 'notification_id', nid, 'rule', rule, 'channel', ch,
               'record', rec, 'via', via, 'attempts', 0, 'created', now, 'status', 'pending')
    redis.call('ZADD', p .. 'outbox:due', now, id)
    added = added + 1
  end
end
return added
"""

_CLAIM = """
local p, now, n = ARGV[1], ARGV[2], tonumber(ARGV[3])
local ids = redis.call('ZRANGEBYSCORE', p .. 'outbox:due', '-inf', now, 'LIMIT', 0, n)
for _, id in ipairs(ids) do
  redis.call('ZREM', p .. 'outbox:due', id)
  redis.call('ZADD', p .. 'outbox:inflight', now, id)
  redis.call('HSET', p .. 'outbox:item:' .. id, 'status', 'inflight')
end
return ids
"""

_RECOVER = """
local p, before = ARGV[1], ARGV[2]
local ids = redis.call('ZRANGEBYSCORE', p .. 'outbox:inflight', '-inf', before)
for _, id in ipairs(ids) do
  redis.call('ZREM', p .. 'outbox:inflight', id)
  redis.call('ZADD', p .. 'outbox:due', ARGV[3], id)
  redis.call('HSET', p .. 'outbox:item:' .. id, 'status', 'pending')
end
return #ids
"""

_FIELDS = ("notification_id", "rule", "channel", "record", "via", "attempts", "created")


class RedisOutbox:
    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = "cep:",
        retention_s: int = 7 * 86400,
        lease_s: float = 0.0,
        owns_client: bool = False,
    ) -> None:
        """`lease_s`: how old a claim must be before `recover` takes it back (0 = one worker: all)."""
        self.r = client
        self.p = prefix
        self.retention_s = int(retention_s)
        self.lease_s = lease_s
        self._owns = owns_client
        self._enqueue = client.register_script(_ENQUEUE)
        self._claim = client.register_script(_CLAIM)
        self._recover = client.register_script(_RECOVER)

    @classmethod
    def from_url(cls, url: str, **kw: Any) -> RedisOutbox:
        return cls(redis.Redis.from_url(url), owns_client=True, **kw)

    def _item(self, i: int | str) -> str:
        return f"{self.p}outbox:item:{i}"

    def _retry(self, d: Delivery) -> str:
        return f"{self.p}retry:{d.notification_id}:{d.channel}"

    def enqueue(self, items: list[NewDelivery], now: float) -> int:
        if not items:
            return 0
        args: list[Any] = [self.p, now, self.retention_s]
        for d in items:
            args += [d.notification_id, d.rule, d.channel, d.record, d.via or ""]
        return int(self._enqueue(args=args))

    def claim(self, now: float, limit: int) -> list[Delivery]:
        ids = [int(i) for i in self._claim(args=[self.p, now, limit])]
        if not ids:
            return []
        pipe = self.r.pipeline(transaction=False)
        for i in ids:
            pipe.hmget(self._item(i), _FIELDS)
        out = []
        for i, row in zip(ids, pipe.execute(), strict=True):
            nid, rule, ch, rec, via, attempts, created = (v.decode() if v is not None else None for v in row)
            out.append(
                Delivery(i, nid or "", rule or "", ch or "", rec or "{}", via or None, int(attempts or 0), float(created or now))
            )
        return out

    def mark_sent(self, ids: Iterable[int | str], now: float) -> None:
        pipe = self.r.pipeline(transaction=True)
        for i in ids:
            pipe.zrem(f"{self.p}outbox:inflight", i)
            pipe.hset(self._item(i), mapping={"status": "sent", "updated": now})
            pipe.expire(self._item(i), self.retention_s)
        pipe.execute()

    def reschedule(self, delivery: Delivery, next_at: float, attempts: int, error: str, now: float) -> None:
        pipe = self.r.pipeline(transaction=True)
        pipe.zrem(f"{self.p}outbox:inflight", delivery.id)
        pipe.hset(self._item(delivery.id), mapping={"status": "pending", "attempts": attempts, "last_error": error, "updated": now})
        pipe.zadd(f"{self.p}outbox:due", {str(delivery.id): next_at})
        pipe.hset(self._retry(delivery), mapping={"attempts": attempts, "last_error": error, "next_at": next_at})
        pipe.expire(self._retry(delivery), RETRY_TTL_S)
        pipe.execute()

    def mark_failed(self, delivery: Delivery, attempts: int, reason: str, now: float, fallback: str | None = None) -> bool:
        failure = {
            "notification_id": delivery.notification_id,
            "rule": delivery.rule,
            "channel": delivery.channel,
            "reason": reason,
            "attempts": attempts,
            "fallback": fallback,
            "at": now,
        }
        pipe = self.r.pipeline(transaction=True)
        pipe.zrem(f"{self.p}outbox:inflight", delivery.id)
        pipe.hset(self._item(delivery.id), mapping={"status": "failed", "attempts": attempts, "last_error": reason, "updated": now})
        pipe.expire(self._item(delivery.id), self.retention_s)
        pipe.hset(self._retry(delivery), mapping={"attempts": attempts, "last_error": reason, "final": 1})
        pipe.expire(self._retry(delivery), RETRY_TTL_S)
        pipe.lpush(f"{self.p}outbox:failures", json.dumps(failure))
        pipe.ltrim(f"{self.p}outbox:failures", 0, FAILURES_KEPT - 1)
        pipe.execute()
        if fallback is None:
            return False
        return (
            self.enqueue([NewDelivery(delivery.notification_id, delivery.rule, fallback, delivery.record, delivery.channel)], now) > 0
        )

    def mark_skipped(self, delivery: Delivery, reason: str, now: float) -> None:
        pipe = self.r.pipeline(transaction=True)
        pipe.zrem(f"{self.p}outbox:inflight", delivery.id)
        pipe.hset(self._item(delivery.id), mapping={"status": "skipped", "last_error": reason, "updated": now})
        pipe.expire(self._item(delivery.id), self.retention_s)
        pipe.execute()

    def recover(self, now: float) -> int:
        return int(self._recover(args=[self.p, now - self.lease_s, now]))

    def depth(self) -> int:
        pipe = self.r.pipeline(transaction=False)
        pipe.zcard(f"{self.p}outbox:due")
        pipe.zcard(f"{self.p}outbox:inflight")
        return sum(pipe.execute())

    def next_due(self) -> float | None:
        first = self.r.zrange(f"{self.p}outbox:due", 0, 0, withscores=True)
        return float(first[0][1]) if first else None

    def status_of(self, notification_id: str, channel: str) -> str | None:
        i = self.r.get(f"{self.p}outbox:key:{notification_id}:{channel}")
        if i is None:
            return None
        s = self.r.hget(self._item(i.decode()), "status")
        return s.decode() if s is not None else None

    def failures(self, limit: int = 100) -> list[dict[str, Any]]:
        return [json.loads(x) for x in self.r.lrange(f"{self.p}outbox:failures", 0, limit - 1)]

    def prune(self, before: float) -> int:
        return 0  # finished items and dedup keys expire by TTL

    def close(self) -> None:
        if self._owns:
            self.r.close()
