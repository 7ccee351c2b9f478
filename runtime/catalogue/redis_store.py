"""The rule catalogue in Redis: several `cep serve` processes can share it.

{prefix}catalogue:{kind}:{id}   list of JSON versions, oldest first (RPUSH)
{prefix}catalogue:{kind}        set of ids ever written
{prefix}toggles                 hash rule_id → "1" | "0" (a channel's switch: `channel:NAME`)
"""

from __future__ import annotations

import json
from typing import Any

from runtime.catalogue.store import CHANNEL_TOGGLE, Version


class RedisCatalogue:
    def __init__(self, client: Any, prefix: str = "cep:") -> None:
        self.r = client
        self.prefix = prefix

    def _key(self, kind: str, id: str | None = None) -> str:
        return f"{self.prefix}catalogue:{kind}" + (f":{id}" if id is not None else "")

    @staticmethod
    def _version(raw: bytes | str) -> Version:
        d = json.loads(raw)
        return Version(
            d["kind"], d["id"], d["version"], d["text"], d["created_at"], d["deleted"], d.get("applied_at"), d.get("applied_offsets")
        )

    def _append(self, kind: str, id: str, text: str, now: float, deleted: bool) -> Version:
        key = self._key(kind, id)
        # The list length is the version number: RPUSH returns it atomically.
        n = self.r.rpush(key, "{}")
        v = Version(kind, id, int(n), text, now, deleted)
        self.r.lset(key, n - 1, json.dumps(v.__dict__))
        self.r.sadd(self._key(kind), id)
        self.r.incr(f"{self.prefix}catalogue:generation")
        return v

    def put(self, kind: str, id: str, text: str, now: float) -> Version:
        return self._append(kind, id, text, now, False)

    def delete(self, kind: str, id: str, now: float) -> Version | None:
        last = self.get(kind, id)
        return None if last is None else self._append(kind, id, last.text, now, True)

    def get(self, kind: str, id: str) -> Version | None:
        raw = self.r.lindex(self._key(kind, id), -1)
        if raw is None or raw in (b"{}", "{}"):
            return None
        v = self._version(raw)
        return None if v.deleted else v

    def latest(self, kind: str) -> list[Version]:
        ids = sorted(x.decode() if isinstance(x, bytes) else x for x in self.r.smembers(self._key(kind)))
        return [v for v in (self.get(kind, i) for i in ids) if v is not None]

    def versions(self, kind: str, id: str) -> list[Version]:
        return [self._version(x) for x in self.r.lrange(self._key(kind, id), 0, -1) if x not in (b"{}", "{}")]

    def mark_applied(self, kind: str, id: str, version: int, now: float, offsets: dict[str, Any]) -> None:
        key = self._key(kind, id)
        raw = self.r.lindex(key, version - 1)
        if raw is None:
            return
        d = json.loads(raw)
        d["applied_at"], d["applied_offsets"] = now, json.loads(json.dumps(offsets, default=str))
        self.r.lset(key, version - 1, json.dumps(d))

    def set_enabled(self, rule_id: str, enabled: bool, now: float) -> None:
        self.r.hset(f"{self.prefix}toggles", rule_id, "1" if enabled else "0")
        self.r.incr(f"{self.prefix}catalogue:generation")

    def _all_toggles(self) -> dict[str, bool]:
        got = self.r.hgetall(f"{self.prefix}toggles")
        return {(k.decode() if isinstance(k, bytes) else k): v in (b"1", "1") for k, v in got.items()}

    def toggles(self) -> dict[str, bool]:
        return {k: on for k, on in self._all_toggles().items() if not k.startswith(CHANNEL_TOGGLE)}

    def set_channel_enabled(self, name: str, enabled: bool, now: float) -> None:
        self.set_enabled(CHANNEL_TOGGLE + name, enabled, now)

    def channel_toggles(self) -> dict[str, bool]:
        return {k[len(CHANNEL_TOGGLE) :]: on for k, on in self._all_toggles().items() if k.startswith(CHANNEL_TOGGLE)}

    def stamp(self) -> str:
        """Changes when anyone (another process too) writes the catalogue."""
        return str(self.r.get(f"{self.prefix}catalogue:generation") or 0)

    def ping(self) -> None:
        self.r.ping()

    def close(self) -> None:
        self.r.close()
