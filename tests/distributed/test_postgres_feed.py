"""The control feed in PostgreSQL: several processes share rule changes through the machine's
real server (127.0.0.1:5432, trust auth, database `test`), each test on a table of its own."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

pytest.importorskip("bytewax")

import cepdsl  # noqa: E402
from runtime.distributed.control import Command, SqlFeed, open_feed, replay_table  # noqa: E402
from runtime.distributed.runner import Cluster, run_distributed  # noqa: E402
from runtime.distributed.stats import BOARD  # noqa: E402

pytestmark = pytest.mark.timeout(180)

PG = os.environ.get("CEP_TEST_POSTGRES_DB", "postgresql://postgres@127.0.0.1:5432/test")
RULES = """\
stream m (ts: timestamp, host: str, cpu: float)
rule hot from m where cpu > 50
rule pair from m group by host window last 2 events having count() >= 2
"""
T0 = datetime(2026, 1, 5)


@pytest.fixture
def pg_table() -> Iterator[str]:
    """A fresh table name in the `test` database, dropped afterwards."""
    try:
        import psycopg

        admin = psycopg.connect(PG, autocommit=True, connect_timeout=3)
    except Exception as e:  # noqa: BLE001
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required in CI ({PG}): {e}")
        pytest.skip(f"PostgreSQL not reachable at {PG}: {e}")
    name = f"cep_control_{uuid.uuid4().hex[:12]}"
    try:
        yield name
    finally:
        admin.execute(f"DROP TABLE IF EXISTS {name}")
        admin.close()


def test_postgres_feed_is_shared_and_ordered(pg_table: str) -> None:
    program = cepdsl.compile(RULES).program
    spec = f"{PG}?table={pg_table}&connect_timeout=5"
    writer, reader = open_feed(spec), open_feed(spec)
    assert isinstance(writer, SqlFeed) and writer.table == pg_table
    assert reader.read(0) == []
    writer.append({"op": "disable", "rule": "pair"})
    writer.append(Command("register", text="stream m (ts: timestamp, host: str, cpu: float)\nrule cool from m"))
    assert [c.op for c in reader.read(0)] == ["disable", "register"]
    assert [c.op for c in reader.read(1)] == ["register"]
    assert reader.read(2) == []
    table = replay_table(program, reader)
    assert table.enabled == {"hot": True, "pair": False, "cool": True}

    # Writers on connections of their own race; a reader following by position (as every
    # input partition does) sees each command once and in the order a full read gives.
    extra = [open_feed(spec) for _ in range(3)]

    def write(feed: SqlFeed, w: int) -> None:
        for i in range(30):
            feed.append(Command("enable" if i % 2 else "disable", f"r{w}_{i}"))

    threads = [threading.Thread(target=write, args=(f, w)) for w, f in enumerate(extra)]
    for t in threads:
        t.start()
    followed = reader.read(0)
    while any(t.is_alive() for t in threads) or len(followed) < 92:
        followed += reader.read(len(followed))
        time.sleep(0.001)
    for t in threads:
        t.join()
    assert followed == reader.read(0)
    assert len(followed) == 92
    for w in range(3):  # each writer's commands in its own order
        assert [c.rule for c in followed if c.rule.startswith(f"r{w}_")] == [f"r{w}_{i}" for i in range(30)]
    for f in (writer, reader, *extra):
        f.close()


def test_postgres_feed_refuses_a_table_name_that_is_not_an_identifier() -> None:
    with pytest.raises(ValueError, match="letters, digits"):
        SqlFeed(PG, "cep; DROP TABLE x")


def test_flow_follows_a_postgres_feed(pg_table: str, tmp_path: Path) -> None:
    """A rule disabled through PostgreSQL stops matching on both workers of a running flow."""
    program = cepdsl.compile(RULES).program
    source = tmp_path / "m.jsonl"
    source.write_text("")
    out = tmp_path / "out"
    feed = open_feed(f"{PG}?table={pg_table}")
    stop = threading.Event()
    BOARD.clear()
    runner = threading.Thread(
        target=run_distributed,
        kwargs=dict(
            program=program,
            specs={"m#0": ("m", f"jsonl:{source}")},
            cluster=Cluster(workers=2, snapshot_every_s=1),
            outbox=str(tmp_path / "outbox.sqlite"),
            out_dir=str(out),
            buckets=2,
            control=feed,
            idle_after_s=3600,
            stop=stop,
        ),
        daemon=True,
    )
    runner.start()

    def rows(start: int, n: int) -> None:
        with open(source, "a") as f:
            for i in range(n):
                ts = (T0 + timedelta(seconds=start + i)).strftime("%Y-%m-%dT%H:%M:%SZ")
                f.write(json.dumps({"ts": ts, "host": "ab"[i % 2], "cpu": 60.0 + i}) + "\n")

    def matches(rule: str) -> int:
        path = out / f"{rule}.jsonl"
        return len(path.read_text().splitlines()) if path.exists() else 0

    def wait(pred, what: str) -> None:  # noqa: ANN001
        deadline = time.monotonic() + 60
        while not pred():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.05)

    try:
        rows(0, 6)
        wait(lambda: matches("hot") == 6, "phase 1")
        # Another process's writer (a connection of its own) disables the rule.
        other = open_feed(f"{PG}?table={pg_table}")
        other.append({"op": "disable", "rule": "hot"})
        other.close()
        wait(
            lambda: all(row.get("control_applied") == 1 for row in BOARD.inputs().values()) and BOARD.inputs(),
            "the command to reach the readers",
        )
        rows(100, 6)
        wait(lambda: matches("pair") >= 9, "phase 2")
        assert matches("hot") == 6
    finally:
        stop.set()
        runner.join(60)
    assert not runner.is_alive()
