"""Rule state in Redis, shared by workers and kept across restarts.

Keys (the seed design's layout, `prefix` defaults to `cep:`):

    cep:rule:<rule_id>:state                HASH  version, payload (bytes), offsets (JSON), saved_at
    cep:offsets                             HASH  the same fields: the checkpoint's source offsets
    cep:anomaly:baseline:<rule_id>:<group>  LIST  float values, oldest first, ≤ 1000, TTL 24 h

A checkpoint (`save_many`) is one MULTI/EXEC pipeline: one round trip, and
Redis applies it all or not at all. Failures surface as `redis.RedisError`;
`ResilientStore` is what turns them into degraded-but-running.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from runtime.state.store import BASELINE_MAX, BASELINE_TTL_S, OFFSETS_KEY, RuleState, StoredState, bounded


def connect(url: str, *, timeout_s: float = 2.0) -> redis.Redis:
    """A client that fails fast: no silent retries, short timeouts (the resilience lives above it)."""
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
        decode_responses=False,
    )


# Appends to many baselines atomically: per key RPUSH the new values, keep the newest `size`, refresh the TTL.
_APPEND_LUA = """
local size = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local i = 3
for k = 1, #KEYS do
  local n = tonumber(ARGV[i])
  i = i + 1
  redis.call('RPUSH', KEYS[k], unpack(ARGV, i, i + n - 1))
  i = i + n
  redis.call('LTRIM', KEYS[k], -size, -1)
  redis.call('EXPIRE', KEYS[k], ttl)
end
return #KEYS
"""
_SCRIPT_GROUPS = 2_000


class RedisStore:
    def __init__(
        self,
        client: redis.Redis | str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "cep:",
        baseline_ttl_s: float = BASELINE_TTL_S,
    ) -> None:
        self.redis = connect(client) if isinstance(client, str) else client
        self.prefix = prefix
        self.baseline_ttl_s = baseline_ttl_s
        self._append_script = self.redis.register_script(_APPEND_LUA)

    # -- keys

    def state_key(self, rule_id: str) -> str:
        if rule_id == OFFSETS_KEY:
            return f"{self.prefix}offsets"
        return f"{self.prefix}rule:{rule_id}:state"

    def _legacy_offsets_key(self) -> str:
        # Where offsets lived before they had a key of their own: read once, then removed.
        return f"{self.prefix}rule:{OFFSETS_KEY}:state"

    def baseline_key(self, rule_id: str, group: str) -> str:
        return f"{self.prefix}anomaly:baseline:{rule_id}:{group}"

    def ping(self) -> bool:
        return bool(self.redis.ping())

    # -- rule state

    def save(self, rule_id: str, version: int, payload: bytes, offsets: dict[str, Any]) -> None:
        self.save_many([(rule_id, version, payload, offsets)])

    def save_many(self, states: Iterable[RuleState]) -> None:
        now = repr(time.time())
        pipe = self.redis.pipeline(transaction=True)
        for rule_id, version, payload, offsets in states:
            pipe.hset(
                self.state_key(rule_id),
                mapping={"version": int(version), "payload": bytes(payload), "offsets": json.dumps(offsets), "saved_at": now},
            )
            if rule_id == OFFSETS_KEY:
                pipe.delete(self._legacy_offsets_key())
        pipe.execute()

    def load(self, rule_id: str) -> StoredState | None:
        h = self.redis.hgetall(self.state_key(rule_id))
        if not h and rule_id == OFFSETS_KEY:
            h = self.redis.hgetall(self._legacy_offsets_key())
        if not h or b"payload" not in h:
            return None
        return StoredState(int(h[b"version"]), h[b"payload"], json.loads(h.get(b"offsets", b"{}")))

    def delete(self, rule_id: str) -> None:
        self.redis.delete(self.state_key(rule_id))
        if rule_id == OFFSETS_KEY:
            self.redis.delete(self._legacy_offsets_key())

    def rule_ids(self) -> list[str]:
        head, tail = f"{self.prefix}rule:".encode(), b":state"
        ids = {k[len(head) : -len(tail)].decode() for k in self.redis.scan_iter(match=f"{self.prefix}rule:*:state", count=1000)}
        if self.redis.exists(self.state_key(OFFSETS_KEY)):
            ids.add(OFFSETS_KEY)
        return sorted(ids)

    # -- baselines

    def baseline_get(self, rule_id: str, group: str) -> list[float]:
        return [float(v) for v in self.redis.lrange(self.baseline_key(rule_id, group), 0, -1)]

    def baseline_set(self, rule_id: str, group: str, values: Sequence[float], max_size: int = BASELINE_MAX) -> None:
        size = bounded(max_size)
        key = self.baseline_key(rule_id, group)
        vals = [repr(float(v)) for v in list(values)[-size:]]
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(key)
        if vals:
            pipe.rpush(key, *vals)
            pipe.expire(key, int(self.baseline_ttl_s))
        pipe.execute()

    def baseline_append(self, rule_id: str, group: str, values: Sequence[float], max_size: int = BASELINE_MAX) -> None:
        self.baseline_append_many(rule_id, {group: values}, max_size)

    def baseline_append_many(self, rule_id: str, values: Mapping[str, Sequence[float]], max_size: int = BASELINE_MAX) -> None:
        # One server-side script per chunk of groups: a pipeline of RPUSH/LTRIM/EXPIRE per group
        # spends its time in client-side command packing (10k groups: ~1.9 s against ~0.1 s).
        size = bounded(max_size)
        items = [(g, list(v)[-size:]) for g, v in values.items() if len(v)]
        for start in range(0, len(items), _SCRIPT_GROUPS):
            chunk = items[start : start + _SCRIPT_GROUPS]
            keys = [self.baseline_key(rule_id, g) for g, _ in chunk]
            argv: list[Any] = [size, int(self.baseline_ttl_s)]
            for _, vals in chunk:
                argv.append(len(vals))
                argv.extend(repr(float(v)) for v in vals)
            self._append_script(keys=keys, args=argv)

    def baseline_delete(self, rule_id: str, group: str | None = None) -> None:
        if group is not None:
            self.redis.delete(self.baseline_key(rule_id, group))
            return
        keys = list(self.redis.scan_iter(match=f"{self.prefix}anomaly:baseline:{rule_id}:*", count=1000))
        for i in range(0, len(keys), 1000):
            self.redis.delete(*keys[i : i + 1000])

    def close(self) -> None:
        self.redis.close()
