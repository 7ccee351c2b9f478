"""The alert-history writer: matches stored by a process of its own on every shareable store
(SQLite file, PostgreSQL, Redis), in the engine's process for `memory`; nothing lost when the
writer process dies or the store falls behind; `close` drains."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator

import polars as pl
import pytest

from cepdsl.frontend import compile_source
from runtime.history import HistoryWriter, open_history

RULES = """\
stream auth (ts: timestamp, user: str, host: str, cpu: float)

rule root "Root"
  from auth
  where user == "root"
  group by host
  severity critical

rule any "Any"
  from auth
  where cpu >= 0
"""
PROGRAM = compile_source(RULES, "w.cep")
ROOT, ANY = PROGRAM.rules


def frame(n: int, start: int = 0, rule: str = "root") -> pl.DataFrame:
    return pl.DataFrame(
        {
            "rule": [rule] * n,
            "ts": pl.Series([1_767_225_600_000_000 + (start + i) * 1_000_000 for i in range(n)]).cast(pl.Datetime("us")),
            "user": ["root"] * n,
            "host": [f"h{(start + i) % 3}" for i in range(n)],
            "cpu": [float(start + i) for i in range(n)],
        }
    )


@pytest.fixture(params=["sqlite", "postgresql", "redis"])
def spec(request, tmp_path) -> Iterator[str]:  # noqa: ANN001
    if request.param == "sqlite":
        yield f"sqlite:{tmp_path / 'h.sqlite'}"
    elif request.param == "redis":
        request.getfixturevalue("redis_client").flushdb()
        yield request.getfixturevalue("redis_server").url + "?prefix=w:"
    else:
        url = request.getfixturevalue("postgres_url")
        h = open_history(url)
        h.db.execute("TRUNCATE cep_alerts RESTART IDENTITY")  # the database is shared by the session's tests
        h.close()
        yield url


def stored(history) -> list:  # noqa: ANN001
    items, _ = history.query(limit=100_000)
    return sorted(items, key=lambda a: a.id)


@pytest.mark.timeout(120)
def test_the_writer_process_stores_every_match(spec) -> None:  # noqa: ANN001
    history = open_history(spec)
    w = HistoryWriter(history, clock=lambda: 1_000.0)
    assert w.wait_ready(60) and w.in_process
    for i in range(20):  # frames of two rules interleaved, as the engine emits them
        w.submit("root", ROOT, frame(7, i * 7))
        w.submit("any", ANY, frame(3, i * 3, "any"))
    assert w.flush(60)
    got = stored(history)
    assert len(got) == 20 * 10 and w.errors == 0
    root = [a for a in got if a.rule == "root"]
    assert [a.record["cpu"] for a in root] == [float(i) for i in range(140)]  # one rule's matches in order
    assert {a.group for a in root} == {"h0", "h1", "h2"} and {a.severity for a in root} == {"critical"}
    assert root[5].record == {"rule": "root", "ts": "2026-01-01T00:00:05.000000Z", "user": "root", "host": "h2", "cpu": 5.0}
    assert root[5].ts_us == 1_767_225_605_000_000 and root[5].emitted_us == 1_000_000_000
    assert {a.group for a in got if a.rule == "any"} == {""}
    assert w.process_cpu_s > 0  # the writing happened over there
    w.close()
    assert w._proc is not None and w._proc.returncode == 0  # noqa: SLF001 - the process ended, not killed
    history.close()


@pytest.mark.timeout(120)
def test_nothing_lost_when_the_writer_process_dies(tmp_path) -> None:  # noqa: ANN001
    history = open_history(f"sqlite:{tmp_path / 'h.sqlite'}")
    w = HistoryWriter(history)
    assert w.wait_ready(60)
    w.submit("root", ROOT, frame(10, 0))
    assert w.flush(30)
    assert w._proc is not None  # noqa: SLF001
    pid = w._proc.pid  # noqa: SLF001
    os.kill(pid, signal.SIGSTOP)  # frames reach the pipe and are never stored by the process...
    for i in range(1, 6):
        w.submit("root", ROOT, frame(10, i * 10))
    time.sleep(0.5)
    os.kill(pid, signal.SIGKILL)  # ...which then dies: this process writes them, and what comes next
    os.kill(pid, signal.SIGCONT)
    for i in range(6, 9):
        w.submit("root", ROOT, frame(10, i * 10))
    assert w.flush(60)
    assert not w.in_process
    got = stored(history)
    assert sorted(a.record["cpu"] for a in got) == [float(i) for i in range(90)]
    w.close()
    history.close()


@pytest.mark.timeout(120)
def test_close_drains_everything_submitted(tmp_path) -> None:  # noqa: ANN001
    history = open_history(f"sqlite:{tmp_path / 'h.sqlite'}")
    w = HistoryWriter(history)  # not waited for: the first frames are written here, the rest over there
    for i in range(200):
        w.submit("root", ROOT, frame(50, i * 50))
    w.close()
    assert len(stored(history)) == 200 * 50
    history.close()


@pytest.mark.timeout(120)
def test_memory_is_written_in_this_process(tmp_path) -> None:  # noqa: ANN001
    history = open_history("memory")
    w = HistoryWriter(history)
    assert w.wait_ready(1) and not w.in_process and w._proc is None  # noqa: SLF001
    w.submit("root", ROOT, frame(4))
    assert w.flush(30)
    assert [a.record["cpu"] for a in stored(history)] == [0.0, 1.0, 2.0, 3.0]
    w.close()


@pytest.mark.timeout(120)
def test_a_store_that_falls_behind_makes_the_engine_wait(tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "h.sqlite"
    history = open_history(f"sqlite:{path}")
    w = HistoryWriter(history, max_queued=4, process=False)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the database: inserts wait (busy timeout)
    done = threading.Event()

    def engine() -> None:
        for i in range(12):
            w.submit("root", ROOT, frame(2, i * 2))
        done.set()

    t = threading.Thread(target=engine)
    t.start()
    assert not done.wait(1.0)  # the queue is full: submit waits instead of dropping
    blocker.execute("COMMIT")
    assert done.wait(30) and w.flush(30)
    t.join()
    assert len(stored(history)) == 24 and w.errors == 0
    w.close()
    history.close()


@pytest.mark.timeout(120)
def test_floats_json_cannot_hold_still_stored(tmp_path) -> None:  # noqa: ANN001
    history = open_history(f"sqlite:{tmp_path / 'h.sqlite'}")
    w = HistoryWriter(history)
    f = frame(3).with_columns(pl.Series("cpu", [float("inf"), float("nan"), 1.5]))
    w.submit("root", ROOT, f)
    w.submit("root", ROOT, frame(2, 3))  # same rule and columns: converted together with the one above
    w.close()
    assert [a.record["cpu"] for a in stored(history)] == ["inf", "nan", 1.5, 3.0, 4.0]
    history.close()


CHILD = """
import sys, time
sys.path[:0] = {path!r}
from tests.api.test_history_writer import ROOT, frame
from runtime.history import HistoryWriter, open_history
w = HistoryWriter(open_history(sys.argv[1]))
assert w.wait_ready(60)
for i in range(5):
    w.submit("root", ROOT, frame(10, i * 10))
assert w.flush(60)
print(w._proc.pid, flush=True)
time.sleep(600)
"""


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's reaper may be slow in a container)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.timeout(120)
def test_the_writer_process_leaves_with_the_engine(tmp_path) -> None:  # noqa: ANN001
    """An engine killed outright (no close) leaves no writer behind: its pipe closes, it exits."""
    import subprocess
    import sys

    path = tmp_path / "h.sqlite"
    engine = subprocess.Popen([sys.executable, "-c", CHILD.format(path=sys.path), f"sqlite:{path}"], stdout=subprocess.PIPE, text=True)
    assert engine.stdout is not None
    writer_pid = int(engine.stdout.readline())
    engine.kill()
    engine.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and running(writer_pid):
        time.sleep(0.1)
    assert not running(writer_pid)
    history = open_history(f"sqlite:{path}")
    assert len(stored(history)) == 50
    history.close()
