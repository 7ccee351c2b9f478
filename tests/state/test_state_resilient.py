"""ResilientStore: Redis going away mid-run and coming back."""

from __future__ import annotations

import logging

import pytest
import redis

from runtime.state import MemoryStore
from runtime.state.redis_store import RedisStore, connect
from runtime.state.resilient import ResilientStore
from tests.support.services import RedisServer

pytestmark = pytest.mark.timeout(60)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class FlakyStore(MemoryStore):
    """A MemoryStore that raises ConnectionError while `down`, counting the calls that reached it."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.calls = 0

    def __getattribute__(self, name: str):
        attr = super().__getattribute__(name)
        if callable(attr) and not name.startswith("_") and name not in ("states", "baseline_keys"):

            def guarded(*a, **kw):
                self.calls += 1
                if self.down:
                    raise redis.ConnectionError("down")
                return attr(*a, **kw)

            return guarded
        return attr


def test_redis_stops_and_restarts_mid_run(caplog: pytest.LogCaptureFixture) -> None:
    server = RedisServer()
    server.start()
    try:
        clock = Clock()
        store = ResilientStore(RedisStore(connect(server.url, timeout_s=0.5)), clock=clock, backoff_initial_s=1.0)
        store.save_many([("r1", 1, b"one", {"src": {"pos": 1}}), ("r2", 1, b"two", {})])
        store.baseline_append("anom", "web1", [1.0, 2.0])
        assert store.baseline_get("anom", "web1") == [1.0, 2.0]
        assert not store.degraded

        server.stop()
        caplog.set_level(logging.INFO, logger="runtime.state.resilient")
        for i in range(5):  # the engine keeps checkpointing; nothing raises
            store.save("r1", 2, b"one-%d" % i, {"src": {"pos": 10 + i}})
        store.save("r3", 1, b"three", {})
        store.delete("r2")
        store.baseline_append("anom", "web1", [3.0])
        store.baseline_append("anom", "db1", [9.0])  # a group never read while healthy
        assert store.degraded and isinstance(store.last_error, redis.ConnectionError)
        assert store.load("r1") == (2, b"one-4", {"src": {"pos": 14}})
        assert store.baseline_get("anom", "web1") == [1.0, 2.0, 3.0]
        assert store.rule_ids() == ["r1", "r3"]
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1  # logged once, not per call

        server.start()  # same port, empty: no persistence
        store.save("r1", 3, b"one-final", {"src": {"pos": 99}})
        assert store.degraded  # the retry is not due yet on the injected clock
        clock.t += 60
        store.load("r1")  # any call after the backoff retries and writes back
        assert not store.degraded

        direct = connect(server.url)
        assert direct.hget("cep:rule:r1:state", "payload") == b"one-final"
        assert direct.hget("cep:rule:r3:state", "payload") == b"three"
        assert not direct.exists("cep:rule:r2:state")
        assert direct.lrange("cep:anomaly:baseline:anom:web1", 0, -1) == [b"1.0", b"2.0", b"3.0"]
        assert direct.lrange("cep:anomaly:baseline:anom:db1", 0, -1) == [b"9.0"]
        assert direct.ttl("cep:anomaly:baseline:anom:web1") > 0
        assert any("available again" in r.getMessage() for r in caplog.records)
        # A fresh store (after a process restart) finds the written-back state.
        fresh = ResilientStore(RedisStore(connect(server.url)))
        assert fresh.load("r1") == (3, b"one-final", {"src": {"pos": 99}})
    finally:
        server.stop()


def test_exponential_backoff_on_the_injected_clock() -> None:
    inner, clock = FlakyStore(), Clock()
    store = ResilientStore(inner, clock=clock, backoff_initial_s=1.0, backoff_max_s=8.0)
    inner.down = True
    store.save("r", 1, b"x", {})
    assert store.degraded and store.failures == 1
    calls = inner.calls
    for _ in range(10):
        store.save("r", 1, b"x", {})
    assert inner.calls == calls  # no retries before the backoff has passed
    delays = []
    for _ in range(6):
        before = store._next_retry
        clock.t = before
        store.load("r")
        delays.append(store._next_retry - before)
    assert delays == [2.0, 4.0, 8.0, 8.0, 8.0, 8.0]
    inner.down = False
    clock.t = store._next_retry
    assert store.load("r") == (1, b"x", {}) and not store.degraded
    assert inner.load("r") == (1, b"x", {})  # written back
    assert store.retry_now()


def test_baseline_set_while_degraded_wins_and_appends_to_unknown_groups_keep_old_values() -> None:
    inner, clock = FlakyStore(), Clock()
    inner.baseline_set("r", "known", [1.0])
    inner.baseline_set("r", "unknown", [5.0, 6.0])
    store = ResilientStore(inner, clock=clock)
    assert store.baseline_get("r", "known") == [1.0]
    inner.down = True
    store.baseline_append("r", "known", [2.0])
    store.baseline_append("r", "unknown", [7.0])
    store.baseline_set("r", "reset", [0.5])
    inner.down = False
    clock.t += 100
    assert store.retry_now()
    assert inner.baseline_get("r", "known") == [1.0, 2.0]
    assert inner.baseline_get("r", "unknown") == [5.0, 6.0, 7.0]
    assert inner.baseline_get("r", "reset") == [0.5]


def test_load_when_down_from_the_start_returns_none_not_raise() -> None:
    inner = FlakyStore()
    inner.down = True
    store = ResilientStore(inner, clock=Clock())
    assert store.load("r") is None and store.degraded
    assert store.baseline_get("r", "g") == []
