"""The StateStore contract, run against every store; plus what is specific to each."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.state import MemoryStore, StateStore, StoredState, open_store
from runtime.state.redis_store import RedisStore, connect
from runtime.state.resilient import ResilientStore
from runtime.state.sqlite import SqliteStore

pytestmark = pytest.mark.timeout(30)


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture(params=["memory", "sqlite", "redis", "resilient"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    kind = request.param
    if kind == "memory":
        s: StateStore = MemoryStore()
    elif kind == "sqlite":
        s = SqliteStore(tmp_path / "state.sqlite")
    else:
        server = request.getfixturevalue("redis_server")
        client = connect(server.url)
        client.flushdb()
        s = RedisStore(client) if kind == "redis" else ResilientStore(RedisStore(client))
    yield s
    s.close()


def test_save_load_delete(store: StateStore) -> None:
    assert store.load("r1") is None
    store.save("r1", 3, b"\x00state\xff", {"metrics": {"pos": 10}})
    assert store.load("r1") == StoredState(3, b"\x00state\xff", {"metrics": {"pos": 10}})
    version, payload, offsets = store.load("r1")  # unpacks as a plain tuple
    assert (version, payload, offsets["metrics"]["pos"]) == (3, b"\x00state\xff", 10)
    store.save("r1", 4, b"new", {})
    assert store.load("r1") == (4, b"new", {})
    store.delete("r1")
    assert store.load("r1") is None
    store.delete("never-there")


def test_save_many_and_rule_ids(store: StateStore) -> None:
    store.save_many([(f"r{i}", 1, bytes([i]) * 64, {"src": {"pos": i}}) for i in range(50)])
    assert store.rule_ids() == sorted(f"r{i}" for i in range(50))
    assert store.load("r7") == (1, bytes([7]) * 64, {"src": {"pos": 7}})


def test_save_many_is_all_or_nothing(store: StateStore) -> None:
    store.save("a", 1, b"old-a", {})
    with pytest.raises(TypeError):
        store.save_many([("a", 2, b"new-a", {}), ("b", 2, b"new-b", {"bad": object()})])
    assert store.load("a") == (1, b"old-a", {})
    assert store.load("b") is None


def test_baselines_bounded_fifo(store: StateStore) -> None:
    assert store.baseline_get("r", "web1") == []
    store.baseline_append("r", "web1", [1.0, 2.0])
    store.baseline_append("r", "web1", range(3, 1003))
    got = store.baseline_get("r", "web1")
    assert len(got) == 1000 and got[0] == 3.0 and got[-1] == 1002.0
    store.baseline_append("r", "small", [1, 2, 3, 4], max_size=3)
    assert store.baseline_get("r", "small") == [2.0, 3.0, 4.0]
    store.baseline_set("r", "web1", [5.5, 6.5])
    assert store.baseline_get("r", "web1") == [5.5, 6.5]
    store.baseline_append_many("r", {"a": [1.0], "b": [2.0, 3.0], "web1": [7.5]})
    assert store.baseline_get("r", "b") == [2.0, 3.0] and store.baseline_get("r", "web1") == [5.5, 6.5, 7.5]
    store.baseline_delete("r", "a")
    assert store.baseline_get("r", "a") == [] and store.baseline_get("r", "b") == [2.0, 3.0]
    store.baseline_delete("r")
    assert store.baseline_get("r", "b") == [] and store.baseline_get("r", "web1") == []
    with pytest.raises(ValueError):
        store.baseline_append("r", "x", [1.0], max_size=0)


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_baseline_ttl_on_injected_clock(kind: str, tmp_path: Path) -> None:
    clock = Clock()
    s = (
        MemoryStore(baseline_ttl_s=60, clock=clock)
        if kind == "memory"
        else SqliteStore(tmp_path / "s.db", baseline_ttl_s=60, clock=clock)
    )
    s.baseline_append("r", "g", [1.0])
    clock.t += 59
    s.baseline_append("r", "g", [2.0])  # a write refreshes the TTL
    clock.t += 59
    assert s.baseline_get("r", "g") == [1.0, 2.0]
    clock.t += 2
    assert s.baseline_get("r", "g") == []


def test_redis_key_layout_and_ttl(redis_server) -> None:
    client = connect(redis_server.url)
    client.flushdb()
    s = RedisStore(client)
    s.save("high_cpu", 2, b"payload", {"metrics": {"pos": 5}})
    s.baseline_append("cpu_anomaly", "web1", [1.0, 2.0])
    assert client.hget("cep:rule:high_cpu:state", "version") == b"2"
    assert client.hget("cep:rule:high_cpu:state", "payload") == b"payload"
    assert client.lrange("cep:anomaly:baseline:cpu_anomaly:web1", 0, -1) == [b"1.0", b"2.0"]
    assert 86_000 < client.ttl("cep:anomaly:baseline:cpu_anomaly:web1") <= 86_400
    other = RedisStore(client, prefix="t1:")
    other.save("x", 1, b"", {})
    assert client.exists("t1:rule:x:state") and s.rule_ids() == ["high_cpu"]


def test_sqlite_survives_reopen_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    s = SqliteStore(path)
    s.save_many([("a", 1, b"x", {"p": 1}), ("b", 2, b"y", {})])
    s.baseline_append("a", "g", [1.5])
    s.close()
    s2 = SqliteStore(path)
    assert s2.load("a") == (1, b"x", {"p": 1}) and s2.baseline_get("a", "g") == [1.5]
    assert s2._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    s2.close()


def test_open_store_specs(tmp_path: Path, redis_server) -> None:
    assert isinstance(open_store("memory"), MemoryStore)
    assert isinstance(open_store(f"sqlite:{tmp_path}/x.db"), SqliteStore)
    r = open_store(redis_server.url + "?prefix=p:")
    assert isinstance(r, ResilientStore) and r.inner.prefix == "p:"
    with pytest.raises(ValueError, match="unknown store"):
        open_store("etcd://x")


def test_state_spec_spellings_of_a_file_and_typos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from runtime.state.spec import StateSpecError, sqlite_path

    monkeypatch.chdir(tmp_path)
    # A bare path is SQLite, as `cep run --help` says; `sqlite:` and SQLAlchemy's `sqlite:///` too.
    assert isinstance(open_store("x.sqlite"), SqliteStore) and (tmp_path / "x.sqlite").exists()
    assert sqlite_path("sqlite:y.sqlite") == "y.sqlite"
    assert sqlite_path("sqlite:///abs/y.sqlite") == "/abs/y.sqlite"
    assert sqlite_path("memory") is None and sqlite_path("redis://h:1/0") is None
    with pytest.raises(StateSpecError) as e:
        open_store("redis://127.0.0.1:1/7?prefx=a")
    assert "unknown option(s) prefx" in str(e.value) and e.value.hints == ("did you mean `prefix`?",)
    with pytest.raises(StateSpecError) as e:
        open_store("reddis://127.0.0.1:1/7")
    assert e.value.hints == ("did you mean `redis://`?",)
    assert not any(p.name.startswith(("sqlite:", "reddis")) for p in tmp_path.iterdir())


def test_redis_keys_name_what_they_hold(redis_server) -> None:
    """Offsets have a key of their own: no `cep:rule:offsets::state` (an empty rule id)."""
    import redis as redis_lib

    from cepdsl.frontend import compile_source
    from runtime.sources.batch import Batch
    from runtime.stream_loop import OFFSETS_KEY, StreamingEngine

    client = redis_lib.Redis.from_url(redis_server.url)
    client.flushdb()
    store = open_store(redis_server.url + "?prefix=ux:")
    program = compile_source("stream s (ts: timestamp, x: int)\nrule hot from s where x > 1\n")
    engine = StreamingEngine(program, {}, store=store)
    engine.start()
    import datetime as dt

    import polars as pl

    frame = pl.DataFrame({"ts": [dt.datetime(2026, 1, 1)], "x": [5]})
    engine.feed("src", Batch("s", frame, pl.DataFrame(), {"pos": 7}))
    engine.checkpoint()
    keys = sorted(k.decode() for k in client.keys("ux:*"))
    assert "ux:offsets" in keys and "ux:rule:hot:state" in keys
    assert not any("::" in k or k.startswith("ux:rule:offsets") for k in keys), keys
    assert store.load(OFFSETS_KEY).offsets == {"src": {"pos": 7}}
    # A store written by an earlier version (offsets under the old key) still resumes.
    client.delete("ux:offsets")
    client.hset("ux:rule:offsets::state", mapping={"version": 1, "payload": b"", "offsets": '{"src": {"pos": 3}}'})
    inner = store.inner  # the Redis store itself (the resilient wrapper answers from its mirror)
    assert OFFSETS_KEY in inner.rule_ids() and inner.load(OFFSETS_KEY).offsets == {"src": {"pos": 3}}
    inner.delete(OFFSETS_KEY)
    assert client.keys("ux:*offsets*") == []
    store.close()
