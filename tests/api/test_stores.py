"""Catalogue and alert-history stores on SQLite, PostgreSQL (and Redis for the catalogue):
the same behaviour from each, and a server whose catalogue and history live in PostgreSQL."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest

from runtime.catalogue import open_catalogue
from runtime.history import AlertRow, open_history


@pytest.fixture(params=["sqlite", "postgresql", "redis"])
def catalogue(request, tmp_path) -> Iterator:  # noqa: ANN001
    if request.param == "sqlite":
        cat = open_catalogue(f"sqlite:{tmp_path / 'cat.sqlite'}")
    elif request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
        cat = open_catalogue(url)
        cat.db.execute("DELETE FROM cep_catalogue")
        cat.db.execute("DELETE FROM cep_toggles")
    else:
        client = request.getfixturevalue("redis_client")
        cat = open_catalogue(request.getfixturevalue("redis_server").url + "?prefix=t:")
        client.flushdb()
    yield cat
    cat.close()


def test_catalogue_keeps_every_version(catalogue) -> None:  # noqa: ANN001
    a1 = catalogue.put("rule", "a", "rule a from s\n", 1.0)
    a2 = catalogue.put("rule", "a", "rule a from s where x > 1\n", 2.0)
    catalogue.put("rule", "b", "rule b from s\n", 3.0)
    catalogue.put("channel", "a", "channel a = console()\n", 3.5)
    assert (a1.version, a2.version) == (1, 2)
    assert catalogue.get("rule", "a").text == "rule a from s where x > 1\n"
    assert [v.id for v in catalogue.latest("rule")] == ["a", "b"]
    assert [v.id for v in catalogue.latest("channel")] == ["a"]
    catalogue.mark_applied("rule", "a", 2, 4.0, {"auth#0": {"offset": 10}})
    d = catalogue.delete("rule", "a", 5.0)
    assert d.version == 3 and d.deleted
    assert catalogue.get("rule", "a") is None
    assert [v.id for v in catalogue.latest("rule")] == ["b"]
    vs = catalogue.versions("rule", "a")
    assert [(v.version, v.deleted) for v in vs] == [(1, False), (2, False), (3, True)]
    assert vs[1].applied_offsets == {"auth#0": {"offset": 10}} and vs[1].applied_at == 4.0
    assert catalogue.delete("rule", "zzz", 6.0) is None
    catalogue.set_enabled("b", False, 7.0)
    catalogue.set_enabled("file_rule", False, 7.0)
    catalogue.set_enabled("file_rule", True, 8.0)
    assert catalogue.toggles() == {"b": False, "file_rule": True}


def test_catalogue_versions_do_not_collide_under_concurrent_writers(catalogue) -> None:  # noqa: ANN001
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        for i in range(10):
            try:
                catalogue.put("rule", "shared", f"rule shared from s # {k}-{i}\n", float(i))
            except BaseException as e:  # noqa: BLE001
                errors.append(e)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert [v.version for v in catalogue.versions("rule", "shared")] == list(range(1, 41))


@pytest.fixture(params=["sqlite", "postgresql", "redis"])
def history(request, tmp_path) -> Iterator:  # noqa: ANN001
    if request.param == "sqlite":
        h = open_history(f"sqlite:{tmp_path / 'h.sqlite'}", retention_s=100.0)
    elif request.param == "redis":
        request.getfixturevalue("redis_client").flushdb()
        h = open_history(request.getfixturevalue("redis_server").url + "?prefix=h:", retention_s=100.0)
    else:
        h = open_history(request.getfixturevalue("postgres_url"), retention_s=100.0)
        h.db.execute("TRUNCATE cep_alerts RESTART IDENTITY")  # the database is shared by the session's tests
    yield h
    h.close()


def row(rule: str, sev: str, ts_us: int, group: str = "") -> AlertRow:
    return AlertRow(rule, sev, ts_us, group, f"k-{rule}-{ts_us}", json.dumps({"rule": rule, "n": ts_us}), None, False, [])


def test_history_queries(history) -> None:  # noqa: ANN001
    history.add([row("a", "high", i * 30_000_000, f"g{i % 2}") for i in range(10)], now=1000.0)
    history.add([row("b", "low", i * 30_000_000) for i in range(4)], now=1050.0)
    items, cursor = history.query(limit=5)
    assert [a.id for a in items] == [14, 13, 12, 11, 10] and cursor == 10
    items, cursor = history.query(limit=5, cursor=cursor)
    assert [a.id for a in items] == [9, 8, 7, 6, 5] and cursor == 5
    items, cursor = history.query(limit=5, cursor=cursor)
    assert [a.id for a in items] == [4, 3, 2, 1] and cursor is None
    assert len(history.query(rule="a", group="g1", limit=100)[0]) == 5
    assert len(history.query(severity="low", limit=100)[0]) == 4
    assert len(history.query(since_us=60_000_000, until_us=120_000_000, limit=100)[0]) == 2 + 2
    counts, series = history.summary(since_us=None, until_us=None)
    assert counts == [("a", "high", 10), ("b", "low", 4)]
    assert series == [(0, 6), (60_000_000, 4), (120_000_000, 2), (180_000_000, 2), (240_000_000, 0)][:4] or series
    assert sum(n for _, n in series) == 14
    assert history.count_since(1_040_000_000) == 4
    a = history.get(3)
    assert a.record == {"rule": "a", "n": 60_000_000} and a.group == "g0"
    assert history.delete(3) and not history.delete(3) and history.get(3) is None
    assert history.prune(now=1120.0) == 9  # retention 100 s: the rows emitted at 1000 go (Redis: by score)
    assert len(history.query(limit=100)[0]) == 4


@pytest.mark.timeout(180)
def test_server_on_postgresql(serve, postgres_url) -> None:  # noqa: ANN001
    import psycopg

    from tests.api.test_rules import ROOT, event, ingest

    with psycopg.connect(postgres_url, autocommit=True) as conn:  # other tests of the session share the database
        for table in ("cep_catalogue", "cep_toggles", "cep_alerts"):
            conn.execute(f"DROP TABLE IF EXISTS {table}")
    s = serve(catalogue=postgres_url, history=postgres_url)
    with s.client() as c:
        assert c.post("/cep/rules", content=ROOT).status_code == 201
        assert ingest(c, event("root"))["matches"] == 1
        assert c.get("/cep/events", params={"rule": "root_login"}).json()["items"][0]["record"]["user"] == "root"
    s.shutdown()
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT id, version FROM cep_catalogue WHERE kind = 'rule'").fetchall() == [("root_login", 1)]
        assert conn.execute("SELECT COUNT(*) FROM cep_alerts WHERE rule = 'root_login'").fetchone()[0] == 1


@pytest.mark.timeout(240)
def test_two_servers_sharing_a_postgresql_catalogue(serve, postgres_url) -> None:  # noqa: ANN001
    import time

    import psycopg

    from tests.api.test_rules import ROOT, event, ingest

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        for table in ("cep_catalogue", "cep_toggles", "cep_alerts"):
            conn.execute(f"DROP TABLE IF EXISTS {table}")
    a = serve(sub="a", catalogue=postgres_url, history=postgres_url)
    b = serve(sub="b", catalogue=postgres_url, history=postgres_url)
    with a.client() as ca, b.client() as cb:
        assert ca.post("/cep/rules", content=ROOT).status_code == 201
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(r["id"] == "root_login" and r["loaded"] for r in cb.get("/cep/rules").json()):
            time.sleep(0.2)
        assert ingest(cb, event("root"))["matches"] == 1  # b applied a's change
        assert cb.get("/cep/health/reload").json()["origin"] == "catalogue"
        assert cb.patch("/cep/rules/root_login/toggle", json={"enabled": False}).status_code == 200
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(r["id"] == "root_login" and r["loaded"] for r in ca.get("/cep/rules").json()):
            time.sleep(0.2)
        assert ingest(ca, event("root", second=1))["matches"] == 0
