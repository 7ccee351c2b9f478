"""The Bytewax dataflow of a compiled program.

input partitions ─► read + stateless filters + route ─┬─► ("k", RULE@FP#B, Slice) ─► stateful_batch: RulePartition
  (CepSource)        (runtime.distributed.routing)    │                                  (a Session per key)
                                                      ├─► ("m", rule, matches) ◄───────────────┘
                                                      ├─► ("d", dead letters)  ─► sink (replay: Parquet per rule;
                                                      └─► ("s", key, stats)    ─► stats board       run: the outbox)
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import DynamicSink, FixedPartitionedSink, StatefulSinkPartition, StatelessSinkPartition

from cepdsl.plan import Program
from runtime.distributed.control import ControlFeed, RuleTable
from runtime.distributed.inputs import InputPartition, PartitionReader
from runtime.distributed.keyed import RulePartition
from runtime.distributed.routing import Router, rule_key
from runtime.distributed.stats import BOARD

#: Layout of a source partition's snapshot; bumped when it changes.
SOURCE_STATE_VERSION = 1
_IDLE = timedelta(milliseconds=20)
_CONTROL_EVERY_S = 0.2
log = logging.getLogger("cep.distributed")


class CepSource(FixedPartitionedSource):
    def __init__(
        self,
        program: Program,
        partitions: Sequence[InputPartition],
        buckets: int,
        control: ControlFeed | None,
        stop: threading.Event | None = None,
        place_on: int | None = None,
        placement: Mapping[str, tuple[int, ...]] | None = None,
    ) -> None:
        self.program = program
        self.place_on = place_on
        self.placement = placement
        self.stop = stop
        self.partitions = {p.name: p for p in partitions}
        self.buckets = buckets
        self.control = control

    def list_parts(self) -> list[str]:
        return list(self.partitions)

    def build_part(self, step_id: str, for_part: str, resume_state: Any) -> CepSourcePartition:
        return CepSourcePartition(self, self.partitions[for_part], resume_state)


class CepSourcePartition(StatefulSourcePartition):
    def __init__(self, source: CepSource, spec: InputPartition, resume: dict[str, Any] | None) -> None:
        if resume is not None and resume.get("version") != SOURCE_STATE_VERSION:
            raise ValueError(f"{spec.name}: source state version {resume.get('version')}, expected {SOURCE_STATE_VERSION}")
        plan = source.program.stream(spec.stream)
        self.spec = spec
        self.control = source.control
        self.stop = source.stop
        self.reader: PartitionReader = spec.open(plan, resume["reader"] if resume else None)
        self.router = Router(
            plan,
            spec.ordinal,
            spec.of,
            source.buckets,
            Router.state_of(resume["router"] if resume else None),
            source.place_on,
            source.placement,
        )
        self.table = RuleTable(source.program)
        if self.control is not None and resume is not None:
            self.table.apply(self.control.read(0)[: resume["control"]])  # as it was at the snapshot
        self.silences = source.program.silences
        self.router.set_rules(tuple(self.table.rules.values()), self.table.enabled, self.silences)
        self._control_at = 0.0
        self._feed_error: str | None = None
        self._stats_at = 0.0
        self._horizon: int | None = None
        self._ended = False
        self._idle = False

    def _follow_control(self) -> bool:
        """Read new commands; True when there were any (health should show them at once)."""
        now = time.monotonic()
        if self.control is None or now - self._control_at < _CONTROL_EVERY_S:
            return False
        self._control_at = now
        try:
            new = self.control.read(self.table.applied)
        except Exception as e:  # noqa: BLE001 - a feed that cannot be read: keep the rules in force, look again
            if self._feed_error is None:
                log.warning("%s: control feed unreadable, rules unchanged until it is back: %s", self.spec.name, e)
            self._feed_error = f"control feed unreadable: {e}"
            return False
        self._feed_error = None
        if new and self.table.apply(new):
            self.router.set_rules(tuple(self.table.rules.values()), self.table.enabled, self.silences)
        return bool(new)

    def next_batch(self) -> list[tuple]:
        if self._ended:
            raise StopIteration
        if self.stop is not None and self.stop.is_set():
            # Stopped (not ended): the state snapshot keeps where reading stood, nothing is
            # flushed; the last word is this partition's stats.
            self._ended = True
            return self._stats_items()
        followed = self._follow_control()
        read = self.reader.poll()
        if read is None:
            self._idle = True
            return self._stats_items() if followed else []
        self._idle = False
        items = self.router.route(read.frame, read.horizon, read.offset)
        if read.dead is not None and read.dead.height:
            items.append(("d", read.dead))
        self._horizon = read.horizon
        now = time.monotonic()
        if read.done or now - self._stats_at >= 1.0:
            self._stats_at = now
            items.extend(self._stats_items())
        if read.done:
            self._ended = True
        return items

    def _stats_items(self) -> list[tuple]:
        items: list[tuple] = [("s", f"input:{self.spec.name}", self.status())]
        items.extend(("s", key, row) for key, row in self.router.filter_stats().items())
        return items

    def status(self) -> dict[str, Any]:
        """For `/cep/health`: how far this input partition has read."""
        st = self.router.state
        return {
            "rows": st.next_offset,
            "horizon_us": self._horizon,
            "max_ts_us": st.hi,
            "control_applied": self.table.applied,
            "control_errors": list(self.table.errors) + ([self._feed_error] if self._feed_error else []),
        }

    def next_awake(self) -> datetime | None:
        return datetime.now(timezone.utc) + _IDLE if self._idle else None

    def snapshot(self) -> dict[str, Any]:
        return {
            "version": SOURCE_STATE_VERSION,
            "reader": self.reader.snapshot(),
            "router": self.router.snapshot(),
            "control": self.table.applied,
        }

    def close(self) -> None:
        self.reader.close()


# ----------------------------------------------------------------------------- sinks


class RecordSink(FixedPartitionedSink):
    """Match records and dead letters to partitions named by `route(record)`; each partition
    is one `open_part(name)` object with `write(records)` and `close()`."""

    def __init__(self, parts: Sequence[str], open_part: Callable[[str], Any]) -> None:
        self.parts = sorted(parts)
        self.open_part = open_part

    def list_parts(self) -> list[str]:
        return list(self.parts)

    def part_fn(self, item_key: str) -> int:
        # The parts' own order (Bytewax indexes its ordered set of them): no hash collisions.
        return self.parts.index(item_key) if item_key in self.parts else 0

    def build_part(self, step_id: str, for_part: str, resume_state: Any) -> _RecordSinkPart:
        return _RecordSinkPart(self.open_part(for_part))


class _RecordSinkPart(StatefulSinkPartition):
    def __init__(self, target: Any) -> None:
        self.target = target

    def write_batch(self, values: list[Any]) -> None:
        self.target.write(values)

    def snapshot(self) -> None:
        return None  # outputs are idempotent (outbox dedup keys) or rewritten whole (replay)

    def close(self) -> None:
        self.target.close()


class StatsSink(DynamicSink):
    def build(self, step_id: str, worker_index: int, worker_count: int) -> _StatsPart:
        return _StatsPart()


class _StatsPart(StatelessSinkPartition):
    def write_batch(self, items: list[tuple]) -> None:
        for _, key, row in items:
            BOARD.put(key, row)


# ----------------------------------------------------------------------------- the flow


def build_flow(
    program: Program,
    partitions: Sequence[InputPartition],
    sink: RecordSink,
    route: Callable[[tuple], str],
    *,
    buckets: int = 16,
    control: ControlFeed | None = None,
    stop: threading.Event | None = None,
    flow_id: str = "cep",
    place_on: int | None = None,
    placement: Mapping[str, tuple[int, ...]] | None = None,
) -> Dataflow:
    """The dataflow: `partitions` read, rules applied, records to `sink` (by `route`)."""
    flow = Dataflow(flow_id)
    items = op.input("read", flow, CepSource(program, partitions, buckets, control, stop, place_on, placement))
    to_keys = op.branch("to_keys", items, lambda r: r[0] == "k")
    keyed = op.map("key", to_keys.trues, lambda r: (r[1], r[2]))
    ruled = op.stateful_batch("rules", keyed, RulePartition)
    from_keys = op.map("unkey", ruled, _unkey)
    records = op.merge("records", to_keys.falses, from_keys)
    stats = op.branch("stats", records, lambda r: r[0] == "s")
    op.output("stats_out", stats.trues, StatsSink())
    op.output("out", op.map("route", stats.falses, lambda r: (route(r), r)), sink)
    return flow


def _unkey(kv: tuple[str, tuple]) -> tuple:
    key, record = kv
    return ("s", key, record[1]) if record[0] == "s" else record


def rule_of_key(key: str) -> str:
    return key.split("@", 1)[0]


__all__ = ["CepSource", "RecordSink", "build_flow", "rule_key", "rule_of_key"]
