"""Keep running on in-memory state while the real store (Redis) is down.

Every write goes to an in-memory mirror first, then to the inner store. When
the inner store fails, the wrapper turns `degraded`: it logs once, keeps the
error, and serves everything from the mirror. While degraded, each call checks
whether the retry time has come (exponential backoff on an injected clock);
the retry pings the inner store and writes the current state back — every
rule state in the mirror, deletions made meanwhile, and the baselines — so a
Redis that restarted empty gets the engine's state again. Only then does the
wrapper leave degraded mode.

Baselines: the mirror knows a group's full baseline once it has read or set
it while healthy ("synced"); such groups are written back whole. Groups only
appended to while degraded, never read, have just their new values appended
back, so older values still in Redis survive.

What can be lost: nothing the engine still holds. If the process dies while
degraded, state since the last successful write is gone, as without Redis.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import redis

from runtime.state.store import BASELINE_MAX, MemoryStore, RuleState, StateStore, StoredState

log = logging.getLogger(__name__)

UNAVAILABLE: tuple[type[BaseException], ...] = (redis.RedisError, OSError)


class ResilientStore:
    def __init__(
        self,
        inner: StateStore,
        *,
        clock: Callable[[], float] = time.monotonic,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        errors: tuple[type[BaseException], ...] = UNAVAILABLE,
    ) -> None:
        self.inner = inner
        self.clock = clock
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.errors = errors
        self.mirror = MemoryStore(baseline_ttl_s=getattr(inner, "baseline_ttl_s", 24 * 3600.0), clock=clock)
        self.degraded = False
        self.last_error: BaseException | None = None
        self.failures = 0  # calls that found the inner store unavailable
        self._backoff = backoff_initial_s
        self._next_retry = 0.0
        self._deleted: set[str] = set()
        self._synced: set[tuple[str, str]] = set()
        self._pending: dict[tuple[str, str], list[float]] = {}  # appends to groups the mirror does not know whole
        self._baselines_deleted: set[tuple[str, str | None]] = set()

    # -- health

    def health(self) -> dict[str, Any]:
        """What `/cep/health` and the stats show: degraded or not, why, and when the next retry is."""
        return {
            "kind": type(self.inner).__name__,
            "degraded": self.degraded,
            "last_error": None if self.last_error is None or not self.degraded else str(self.last_error),
            "failures": self.failures,
            "retry_in_s": round(max(self._next_retry - self.clock(), 0.0), 3) if self.degraded else None,
        }

    def _fail(self, e: BaseException) -> None:
        self.failures += 1
        self.last_error = e
        if not self.degraded:
            self.degraded = True
            self._backoff = self.backoff_initial_s
            log.warning("state store unavailable, running on in-memory state: %s", e)
        else:
            self._backoff = min(self._backoff * 2, self.backoff_max_s)
        self._next_retry = self.clock() + self._backoff

    def _healthy(self) -> bool:
        """True if the inner store may be used now (retrying and writing back when due)."""
        if not self.degraded:
            return True
        if self.clock() < self._next_retry:
            return False
        return self.retry_now()

    def retry_now(self) -> bool:
        """Try the inner store at once and write the current state back; True when healthy again."""
        if not self.degraded:
            return True
        try:
            ping = getattr(self.inner, "ping", None)
            if ping is not None:
                ping()
            self._write_back()
        except self.errors as e:
            self._fail(e)
            return False
        self.degraded = False
        self._backoff = self.backoff_initial_s
        log.warning("state store available again after %d failed call(s); in-memory state written back", self.failures)
        return True

    def _write_back(self) -> None:
        for rule_id in sorted(self._deleted):
            self.inner.delete(rule_id)
        states = self.mirror.states()
        if states:
            self.inner.save_many((r, s.version, s.payload, s.offsets) for r, s in states.items())
        for rule_id, group in sorted(self._baselines_deleted, key=str):
            self.inner.baseline_delete(rule_id, group)
        for rule_id, group in sorted(self._synced):
            values = self.mirror.baseline_get(rule_id, group)
            if values:
                self.inner.baseline_set(rule_id, group, values)
        for (rule_id, group), values in sorted(self._pending.items()):
            self.inner.baseline_append(rule_id, group, values)
        self._deleted.clear()
        self._baselines_deleted.clear()
        self._pending.clear()

    # -- rule state

    def save(self, rule_id: str, version: int, payload: bytes, offsets: dict[str, Any]) -> None:
        self.save_many([(rule_id, version, payload, offsets)])

    def save_many(self, states: Iterable[RuleState]) -> None:
        states = list(states)
        self.mirror.save_many(states)
        self._deleted.difference_update(r for r, *_ in states)
        if self._healthy():
            try:
                self.inner.save_many(states)
            except self.errors as e:
                self._fail(e)

    def load(self, rule_id: str) -> StoredState | None:
        healthy = self._healthy()  # every call is a chance to retry, reads included
        mine = self.mirror.load(rule_id)
        if mine is not None or rule_id in self._deleted or not healthy:
            return mine
        try:
            found = self.inner.load(rule_id)
        except self.errors as e:
            self._fail(e)
            return None
        if found is not None:
            self.mirror.save(rule_id, *found)
        return found

    def delete(self, rule_id: str) -> None:
        self.mirror.delete(rule_id)
        if self._healthy():
            try:
                self.inner.delete(rule_id)
                return
            except self.errors as e:
                self._fail(e)
        self._deleted.add(rule_id)

    def rule_ids(self) -> list[str]:
        ids = set(self.mirror.rule_ids())
        if self._healthy():
            try:
                ids.update(self.inner.rule_ids())
            except self.errors as e:
                self._fail(e)
        return sorted(ids - self._deleted)

    # -- baselines

    def baseline_get(self, rule_id: str, group: str) -> list[float]:
        key = (rule_id, group)
        if self._healthy() and key not in self._synced:
            try:
                values = self.inner.baseline_get(rule_id, group)
            except self.errors as e:
                self._fail(e)
            else:
                self.mirror.baseline_set(rule_id, group, values)
                self._synced.add(key)
                return values
        return self.mirror.baseline_get(rule_id, group)

    def baseline_set(self, rule_id: str, group: str, values: Sequence[float], max_size: int = BASELINE_MAX) -> None:
        key = (rule_id, group)
        self.mirror.baseline_set(rule_id, group, values, max_size)
        self._synced.add(key)
        self._pending.pop(key, None)
        if self._healthy():
            try:
                self.inner.baseline_set(rule_id, group, values, max_size)
            except self.errors as e:
                self._fail(e)

    def baseline_append(self, rule_id: str, group: str, values: Sequence[float], max_size: int = BASELINE_MAX) -> None:
        self.baseline_append_many(rule_id, {group: values}, max_size)

    def baseline_append_many(self, rule_id: str, values: Mapping[str, Sequence[float]], max_size: int = BASELINE_MAX) -> None:
        self.mirror.baseline_append_many(rule_id, values, max_size)
        if self._healthy():
            try:
                self.inner.baseline_append_many(rule_id, values, max_size)
                return
            except self.errors as e:
                self._fail(e)
        for group, vals in values.items():
            key = (rule_id, group)
            if key not in self._synced:
                self._pending.setdefault(key, []).extend(float(v) for v in vals)
                del self._pending[key][:-max_size]

    def baseline_delete(self, rule_id: str, group: str | None = None) -> None:
        self.mirror.baseline_delete(rule_id, group)
        gone = [k for k in self._synced | set(self._pending) if k[0] == rule_id and (group is None or k[1] == group)]
        for k in gone:
            self._synced.discard(k)
            self._pending.pop(k, None)
        if self._healthy():
            try:
                self.inner.baseline_delete(rule_id, group)
                return
            except self.errors as e:
                self._fail(e)
        self._baselines_deleted.add((rule_id, group))

    def close(self) -> None:
        try:
            self.inner.close()
        except self.errors:
            pass
