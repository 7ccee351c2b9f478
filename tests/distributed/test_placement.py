"""Replay places key partitions on workers evenly: the prediction of where Bytewax routes a
key is checked against the real runtime, and a placed rule covers every worker."""

from __future__ import annotations

import threading

import pytest

pytest.importorskip("bytewax")

import bytewax.operators as op  # noqa: E402
from bytewax.dataflow import Dataflow  # noqa: E402
from bytewax.inputs import DynamicSource, StatelessSourcePartition  # noqa: E402
from bytewax.outputs import DynamicSink, StatelessSinkPartition  # noqa: E402

import cepdsl  # noqa: E402
from runtime.distributed.placement import placed_key, worker_of  # noqa: E402
from runtime.distributed.routing import Router, is_stateless  # noqa: E402
from runtime.distributed.runner import Cluster, execute  # noqa: E402

pytestmark = pytest.mark.timeout(120)

KEYS = [f"rule{i}@0123456789abcdef#{i % 5}" for i in range(40)] + ["a", "", "x" * 23, "ü~1"]


def _where_bytewax_routes(keys: list[str], workers: int) -> dict[str, int]:
    """Run a real flow: a keyed stateful step records which worker thread each key ran on."""
    thread_worker: dict[int, int] = {}
    ran_on: dict[str, int] = {}

    class Source(DynamicSource):
        def build(self, step_id: str, worker_index: int, worker_count: int) -> StatelessSourcePartition:
            thread_worker[threading.get_ident()] = worker_index
            return Part(worker_index)

    class Part(StatelessSourcePartition):
        def __init__(self, worker: int) -> None:
            self.worker, self.done = worker, False

        def next_batch(self) -> list:
            if self.done:
                raise StopIteration
            self.done = True
            return [(k, 1) for k in keys] if self.worker == 0 else []

    class Sink(DynamicSink):
        def build(self, step_id: str, worker_index: int, worker_count: int) -> StatelessSinkPartition:
            return SinkPart()

    class SinkPart(StatelessSinkPartition):
        def write_batch(self, items: list) -> None:
            for key, ident in items:
                ran_on[key] = ident

    flow = Dataflow("placement")
    counted = op.stateful_map("where", op.input("in", flow, Source()), lambda s, v: (s, threading.get_ident()))
    op.output("out", counted, Sink())
    execute(flow, Cluster(workers=workers))
    return {k: thread_worker[ident] for k, ident in ran_on.items()}


@pytest.mark.parametrize("workers", [2, 3])
def test_prediction_matches_the_runtime(workers: int) -> None:
    placed = [placed_key(f"r{i}@fp#0", i % workers, workers) for i in range(6)]
    got = _where_bytewax_routes(KEYS + placed, workers)
    assert got == {k: worker_of(k, workers) for k in KEYS + placed}
    assert [got[k] for k in placed] == [i % workers for i in range(6)]


def test_replay_router_places_each_rule_on_every_worker() -> None:
    program = cepdsl.compile("""
stream m (ts: timestamp, host: str, cpu: float)
rule f from m where cpu > 1
rule w from m group by host window tumbling 1m having count() > 1
rule a from m group by host absent for 1m
rule p from m group by host pattern x y within 1m define x as cpu > 5, y as cpu < 5
""").program
    router = Router(program.stream("m"), 0, 1, buckets=2, place_on=2)
    router.set_rules(program.rules, {})
    for rule in program.rules:
        if is_stateless(rule):
            continue
        names = next(v for k, v in router._keys.items() if k.startswith(f"{rule.id}@"))
        assert sorted(worker_of(n, 2) for n in names) == [0, 1], rule.id
    plain = Router(program.stream("m"), 0, 1, buckets=2)  # live flows: names independent of the worker count
    plain.set_rules(program.rules, {})
    assert all("~" not in n for names in plain._keys.values() for n in names)


def test_balance_places_whole_rules_heaviest_first_and_splits_only_what_cannot_balance() -> None:
    from runtime.distributed.placement import balance

    # The bench's mix: a pattern weighing half the work; the rest fills the other worker.
    weights = {"pattern": 1.52, "sliding": 0.57, "zscore": 0.56, "tumbling": 0.31, "absent": 0.06, "errors": 0.05}
    placed = balance(weights, set(weights), 2)
    assert placed["pattern"] == (0,) and all(placed[k] == (1,) for k in weights if k != "pattern")
    # One rule heavier than a worker's share: split one key partition per worker, the rest whole.
    placed = balance({"heavy": 3.0, "a": 0.5, "b": 0.5}, {"heavy", "a", "b"}, 2)
    assert placed["heavy"] == (0, 1) and {placed["a"], placed["b"]} == {(0,), (1,)}
    # An ungrouped rule cannot be split: it stays whole however heavy.
    assert balance({"heavy": 3.0, "a": 0.5}, {"a"}, 2) == {"heavy": (0,), "a": (1,)}
    # One worker: everything on it.
    assert balance({"a": 1.0, "b": 2.0}, {"a", "b"}, 1) == {"a": (0,), "b": (0,)}


def test_weighed_router_names_follow_the_placement() -> None:
    program = cepdsl.compile("""
stream m (ts: timestamp, host: str, cpu: float)
rule w from m group by host window tumbling 1m having count() > 1
rule p from m group by host pattern x y within 1m define x as cpu > 5, y as cpu < 5
""").program
    from runtime.distributed.routing import rule_key

    w, p = (next(r for r in program.rules if r.id == i) for i in ("w", "p"))
    router = Router(program.stream("m"), 0, 1, buckets=2, place_on=2, placement={rule_key(w): (1,), rule_key(p): (0, 1)})
    router.set_rules(program.rules, {})
    assert [worker_of(n, 2) for n in router._keys[rule_key(w)]] == [1]
    assert [worker_of(n, 2) for n in router._keys[rule_key(p)]] == [0, 1]
    assert sorted(n for _, n, _, _ in router._groups) == [1, 2]  # a whole rule's rows are not split by key
