"""Rule changes while a flow runs on two workers: a control feed disables, enables,
registers and deletes rules; an unchanged rule keeps its state across all of it."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

pytest.importorskip("bytewax")

import cepdsl  # noqa: E402
from runtime.distributed.control import Command, FileFeed, MemoryFeed, RuleTable, replay_table  # noqa: E402
from runtime.distributed.runner import Cluster, run_distributed  # noqa: E402
from runtime.distributed.stats import BOARD  # noqa: E402

pytestmark = pytest.mark.timeout(180)

RULES = """\
stream m (ts: timestamp, host: str, cpu: float)
rule all_rows from m where cpu >= 0
rule hot from m where cpu > 50
rule pair from m group by host window last 2 events having count() >= 2
"""
T0 = datetime(2026, 1, 5)


def _line(second: int, host: str, cpu: float) -> str:
    ts = (T0 + timedelta(seconds=second)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return json.dumps({"ts": ts, "host": host, "cpu": cpu}) + "\n"


def _records(out: Path, rule: str) -> list[dict]:
    path = out / f"{rule}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _wait(predicate, timeout: float, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_enable_disable_register_delete_during_a_run(tmp_path: Path) -> None:
    program = cepdsl.compile(RULES).program
    source = tmp_path / "m.jsonl"
    source.write_text("")
    out = tmp_path / "out"
    feed = MemoryFeed()
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
            buckets=3,
            control=feed,
            idle_after_s=3600,
            stop=stop,
        ),
        daemon=True,
    )
    runner.start()
    hosts = ["a", "b", "c"]

    def phase(start: int, n: int = 12) -> None:
        with open(source, "a") as f:
            for i in range(n):
                f.write(_line(start + i, hosts[i % 3], 60.0 + i))

    try:
        phase(0)  # seconds 0..11
        _wait(lambda: len(_records(out, "all_rows")) >= 12 and len(_records(out, "pair")) >= 8, 60, "phase 1 matches")
        # A stateful rule's rows wait until the input is past their time (the last row's
        # pair waits for a later row, or --idle-after); filters fire as rows are read.
        assert len(_records(out, "hot")) == 12 and len(_records(out, "pair")) == 8

        feed.append(Command("disable", "hot"))
        feed.append(Command("disable", "pair"))
        time.sleep(1.0)  # readers look at the feed every 0.2 s
        phase(100)
        _wait(lambda: len(_records(out, "all_rows")) >= 24, 60, "phase 2 matches")
        time.sleep(0.5)
        assert len(_records(out, "hot")) == 12
        assert len(_records(out, "pair")) == 8  # row 11's pair came due while disabled: dropped

        feed.append(Command("enable", "hot"))
        feed.append(Command("enable", "pair"))
        feed.append(Command("register", text="stream m (ts: timestamp, host: str, cpu: float)\nrule cool from m where cpu < 65\n"))
        feed.append(Command("delete", "all_rows"))
        time.sleep(1.0)
        phase(200)
        _wait(lambda: len(_records(out, "hot")) >= 24 and len(_records(out, "pair")) >= 19, 60, "phase 3 matches")
        _wait(lambda: len(_records(out, "cool")) >= 5, 30, "the registered rule's matches")
    finally:
        stop.set()
        runner.join(60)
    assert not runner.is_alive()

    assert len(_records(out, "all_rows")) == 24  # deleted before phase 3
    pair = _records(out, "pair")
    third = sorted((r for r in pair if r["ts"] >= "2026-01-05T00:03:20"), key=lambda r: r["ts"])
    # State kept through the disabled phase: each host's first phase-3 row pairs with its
    # last row from phase 1 (phase 2's rows never reached the disabled rule).
    assert len(third) == 11
    assert len(pair) == 19
    assert {r["host"] for r in third[:3]} == set(hosts)
    assert [r["ts"] for r in _records(out, "cool")] == [
        (T0 + timedelta(seconds=200 + i)).strftime("%Y-%m-%dT%H:%M:%S.000000Z") for i in range(5)
    ]
    hot = BOARD.rule_stats("hot")  # a filter: counted where rows are read
    assert hot["key_partitions"] == 1 and hot["events_in"] == 36 and hot["matches"] == 36
    stats = BOARD.rule_stats("pair")
    assert stats["key_partitions"] == 3 and stats["matches"] == 20 and stats["disabled_suppressed"] == 1

    table = replay_table(program, feed)
    assert table.listing() == [
        {"rule": "hot", "stream": "m", "kind": "filter", "enabled": True},
        {"rule": "pair", "stream": "m", "kind": "window", "enabled": True},
        {"rule": "cool", "stream": "m", "kind": "filter", "enabled": True},
    ]


def test_control_commands_fold_and_report_errors(tmp_path: Path) -> None:
    program = cepdsl.compile(RULES).program
    feed = FileFeed(tmp_path / "control.jsonl")
    feed.append({"op": "disable", "rule": "hot"})
    feed.append({"op": "disable", "rule": "nope"})
    feed.append({"op": "register", "text": "stream x (ts: timestamp)\nrule rx from x"})
    with open(tmp_path / "control.jsonl", "a") as f:
        f.write('{"op": "delete", "rule": "pa')  # a writer half-way through a line
    table = RuleTable(program)
    table.apply(feed.read(0))
    assert table.enabled == {"all_rows": True, "hot": False, "pair": True}
    assert table.applied == 3
    assert len(table.errors) == 2
    assert "no rule 'nope'" in table.errors[0] and "stream x" in table.errors[1]
    with pytest.raises(ValueError, match="op"):
        Command.of({"op": "explode"})


def test_redis_feed_is_shared_by_readers(redis_client, redis_server) -> None:  # noqa: ANN001
    """Two processes' readers see one catalogue through a Redis stream (a real redis-server)."""
    from runtime.distributed.control import open_feed

    program = cepdsl.compile(RULES).program
    writer = open_feed(f"{redis_server.url}?key=cep:control:test")
    reader = open_feed(f"{redis_server.url}?key=cep:control:test")
    writer.append({"op": "disable", "rule": "pair"})
    writer.append(Command("register", text="stream m (ts: timestamp, host: str, cpu: float)\nrule cool from m"))
    assert [c.op for c in reader.read(0)] == ["disable", "register"]
    assert [c.op for c in reader.read(1)] == ["register"]
    table = replay_table(program, reader)
    assert table.enabled == {"all_rows": True, "hot": True, "pair": False, "cool": True}


def test_deleted_rule_key_partitions_are_dropped() -> None:
    """A deleted rule's key partitions hear it from every input partition and are discarded."""
    from runtime.distributed.keyed import RulePartition
    from runtime.distributed.routing import Router

    program = cepdsl.compile(RULES).program
    stream = program.stream("m")
    routers = [Router(stream, p, 2, buckets=2) for p in range(2)]
    for r in routers:
        r.set_rules(program.rules, {})
    logic: dict[str, RulePartition] = {}
    frame = pl.DataFrame({"ts": [T0, T0 + timedelta(seconds=1)], "host": ["a", "b"], "cpu": [1.0, 2.0]})

    def deliver(records: list[tuple]) -> dict[str, bool]:
        dropped = {}
        for rec in records:
            if rec[0] != "k":
                continue
            part = logic.setdefault(rec[1], RulePartition(None))
            _, discard = part.on_batch([rec[2]])
            dropped[rec[1]] = discard
        return dropped

    for r in routers:
        deliver(r.route(frame, horizon=0))
    pair_keys = {k for k in logic if k.startswith("pair@")}
    assert len(pair_keys) == 2
    remaining = tuple(x for x in program.rules if x.id != "pair")
    routers[0].set_rules(remaining, {})
    assert not any(deliver(routers[0].route(None, horizon=0)).get(k) for k in pair_keys)  # one of two said so
    routers[1].set_rules(remaining, {})
    got = deliver(routers[1].route(None, horizon=0))
    assert all(got[k] for k in pair_keys)


def test_reconcile_sends_only_what_changed_and_is_idempotent() -> None:
    """A catalogue change becomes the fewest commands: none for unchanged rules (their state
    stays), register for new or changed ones (a changed channel counts), disable/enable for
    toggles, delete for removals; applied once, the same change asks for nothing more."""
    from runtime.catalogue.program import assemble
    from runtime.distributed.control import reconcile

    files = {"a.cep": RULES + 'channel ops = console()\n'}
    base = assemble(files).program
    table = RuleTable(base)

    def step(texts: dict[str, str], disabled: set[str]) -> list[tuple[str, str]]:
        asm = assemble({**files, **texts}, disabled)
        assert asm.ok, asm.diagnostics
        done = reconcile(table, asm.program, asm.declared, disabled)
        table.apply(done.commands)
        assert not table.errors, table.errors
        assert reconcile(table, asm.program, asm.declared, disabled).commands == ()  # idempotent
        return [(c.op, c.rule) for c in done.commands]

    assert step({}, set()) == []
    assert step({"rules/cool.cep": "rule cool from m where cpu < 5 notify ops\n"}, set()) == [("register", "cool")]
    assert step({"rules/cool.cep": "rule cool from m where cpu < 5 notify ops\n"}, {"pair"}) == [("disable", "pair")]
    assert table.enabled["pair"] is False and "pair" in table.rules  # kept, with its state
    # The channel changes: the rule that notifies it is registered again (same matching plan).
    files["a.cep"] = RULES + 'channel ops = console(retries = 5)\n'
    assert step({"rules/cool.cep": "rule cool from m where cpu < 5 notify ops\n"}, {"pair"}) == [("register", "cool")]
    assert step({"rules/cool.cep": "rule cool from m where cpu < 6 notify ops\n"}, set()) == [("enable", "pair"), ("register", "cool")]
    assert step({}, set()) == [("delete", "cool")]
    assert set(table.rules) == {"all_rows", "hot", "pair"}
