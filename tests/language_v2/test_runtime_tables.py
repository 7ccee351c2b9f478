"""Tables at run time (§9.2): Redis-hash tables, reloads in streaming on file change or
`refresh`, a failing reload keeps the old rows and is reported (health, counters, log)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from pathlib import Path

import polars as pl
import pytest

from cepdsl.frontend import compile_source
from cepdsl.tables import TableError
from runtime.dead_letter_writer import empty_dead_letters
from runtime.live_tables import TableWatcher, load_redis_table, redis_url_of
from runtime.sources.batch import Batch
from runtime.stream_loop import StreamingEngine

T0 = dt.datetime(2026, 1, 1)
T0_S = (T0 - dt.datetime(1970, 1, 1)).total_seconds()

RULES = """stream m (ts: timestamp, host: str, cpu: float)
table hosts (host: str, region: str, tier: int)
  key host
  from {source}
  {refresh}
rule r
  from m
  join hosts as h on host
"""


class Clock:
    def __init__(self) -> None:
        self.now = T0_S

    def __call__(self) -> float:
        return self.now


class Sink:
    def __init__(self) -> None:
        self.got: list[pl.DataFrame] = []

    def submit(self, rule_id: str, matches: pl.DataFrame) -> int:
        self.got.append(matches)
        return matches.height


class Feed:
    """A source the test feeds batch by batch."""

    def __init__(self) -> None:
        self.pending: list[Batch] = []

    def __iter__(self):
        return self

    def __next__(self) -> Batch:
        if not self.pending:
            raise StopIteration
        return self.pending.pop(0)

    def push(self, seconds: int, host: str) -> None:
        frame = pl.DataFrame(
            {"ts": [T0 + dt.timedelta(seconds=seconds)], "host": [host], "cpu": [1.0]},
            schema={"ts": pl.Datetime("us"), "host": pl.String, "cpu": pl.Float64},
        )
        self.pending.append(Batch("m", frame, empty_dead_letters(), {}))


def test_redis_hash_table_is_read_and_checked(redis_client, redis_server) -> None:
    program = compile_source(RULES.format(source='redis("cep:table:hosts")', refresh=""))
    redis_client.hset(
        "cep:table:hosts",
        mapping={"a": json.dumps({"region": "eu", "tier": 1}), "b": json.dumps({"host": "b", "region": "us", "tier": "2"})},
    )
    watcher = TableWatcher(program, redis_url_of(f"{redis_server.url}?prefix=x:", None))
    frame = watcher.load_all()["hosts"].sort("host")
    assert frame.to_dicts() == [{"host": "a", "region": "eu", "tier": 1}, {"host": "b", "region": "us", "tier": 2}]
    redis_client.hset("cep:table:hosts", "c", "not json")
    with pytest.raises(TableError, match=r'Redis hash "cep:table:hosts": field \'c\' is not JSON'):
        load_redis_table(program.tables[0], watcher._redis())
    redis_client.hset("cep:table:hosts", "c", json.dumps({"host": "d", "region": "x", "tier": 1}))
    with pytest.raises(TableError, match=r"field 'c' holds host = 'd'"):
        load_redis_table(program.tables[0], watcher._redis())


def test_redis_table_joins_in_the_engine_and_refreshes(redis_client, redis_server) -> None:
    program = compile_source(RULES.format(source='redis("cep:table:hosts")', refresh="refresh 1m"))
    redis_client.hset("cep:table:hosts", "a", json.dumps({"region": "eu", "tier": 1}))
    clock, sink, feed = Clock(), Sink(), Feed()
    eng = StreamingEngine(
        program, {"src": feed}, notifier=sink, clock=clock, tables=TableWatcher(program, redis_server.url, clock=clock)
    ).start()
    feed.push(0, "a")
    eng.step()
    redis_client.hset("cep:table:hosts", "a", json.dumps({"region": "us", "tier": 1}))
    feed.push(1, "a")
    eng.step()  # refresh not due yet: old rows
    clock.now += 61
    feed.push(2, "a")
    eng.step()
    assert [f["h.region"][0] for f in sink.got] == ["eu", "eu", "us"]
    assert eng.health()["tables"]["hosts"]["reloads"] == 1


def test_file_table_reloads_on_change_and_a_bad_reload_keeps_the_old_rows(tmp_path: Path, caplog) -> None:
    table = tmp_path / "hosts.csv"
    table.write_text("host,region,tier\na,eu,1\n")
    rule_file = tmp_path / "ops.cep"
    rule_file.write_text(RULES.format(source='"hosts.csv"', refresh=""))
    program = compile_source(rule_file.read_text(), str(rule_file))
    clock, sink, feed = Clock(), Sink(), Feed()
    eng = StreamingEngine(program, {"src": feed}, notifier=sink, clock=clock).start()
    feed.push(0, "a")
    eng.step()
    table.write_text("host,region,tier\na,us,1\n")
    os.utime(table, ns=(1, 10**18))  # a new mtime whatever the clock's resolution
    feed.push(1, "a")
    eng.step()
    table.write_text("host,region,tier\na,ap,1\na,ap,2\n")  # a repeated key: refused whole
    os.utime(table, ns=(1, 2 * 10**18))
    feed.push(2, "a")
    with caplog.at_level(logging.ERROR, logger="cep.tables"):
        eng.step()
    assert [f["h.region"][0] for f in sink.got] == ["eu", "us", "us"]
    health = eng.health()["tables"]["hosts"]
    assert health["reloads"] == 1 and health["reload_failures"] == 1
    assert "key host = 'a' appears more than once" in health["last_error"] and str(table) in health["last_error"]
    assert any("keeping the previous version" in r.message for r in caplog.records)
    assert eng.stats()["engine"]["table_reload_failures"] == 1
    table.write_text("host,region,tier\na,sa,1\n")
    os.utime(table, ns=(1, 3 * 10**18))
    feed.push(3, "a")
    eng.step()
    assert sink.got[-1]["h.region"][0] == "sa" and eng.health()["tables"]["hosts"]["last_error"] is None


def test_a_table_that_cannot_load_at_start_is_a_clear_error(tmp_path: Path) -> None:
    program = compile_source(RULES.format(source='redis("cep:table:hosts")', refresh=""))
    with pytest.raises(TableError, match="give --redis URL"):
        StreamingEngine(program, {}, tables=TableWatcher(program, None))
