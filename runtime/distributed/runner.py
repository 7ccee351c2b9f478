"""Running the flow: `cep replay --workers N` over Parquet, `cep run --workers N` over live sources.

Workers are threads of one process (`workers`), or several processes that find
each other by Bytewax's own addressing: every process gets the same list of
`host:port` addresses and its index in it (`process_id`), as `python -m
bytewax.run -i/-a` does.  Worker ports and the recovery directory are trusted:
Bytewax exchanges and stores Python pickles there (docs/distributed.md).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl

from cepdsl.plan import Program, RulePlan
from runtime.distributed.control import ControlFeed
from runtime.distributed.flow import RecordSink, build_flow
from runtime.distributed.inputs import InputPartition, LivePartition, split_parquet

DEAD_LETTER_PART = "_dead_letter"
log = logging.getLogger("cep.distributed")


def unsupported(program: Program) -> str | None:
    """Why `program` cannot run on workers yet (None: it can)."""
    joined = [r.id for r in program.rules if r.joins]
    if joined:
        return (
            f"rules with lookup joins (tables, §9.2) do not run on workers yet: {', '.join(joined)}; "
            "run this program in one process (without --workers)"
        )
    return None


@dataclass(frozen=True)
class Cluster:
    """Where the workers are: `workers` threads in each process; with `addresses`, this
    process is number `process_id` of them (Bytewax's `-i/-a`)."""

    workers: int = 1
    process_id: int | None = None
    addresses: tuple[str, ...] | None = None
    recovery_dir: str | None = None
    snapshot_every_s: float = 10.0  # Bytewax epoch: how often state is snapshotted

    @property
    def processes(self) -> int:
        return len(self.addresses) if self.addresses else 1


def execute(flow: Any, cluster: Cluster) -> None:
    """Run `flow` on this process's share of `cluster`; returns when the input has ended."""
    from bytewax._bytewax import cli_main
    from bytewax.recovery import RecoveryConfig

    recovery = None
    if cluster.recovery_dir:
        recovery = RecoveryConfig(Path(prepare_recovery(cluster.recovery_dir, cluster.workers * cluster.processes)))
    cli_main(
        flow,
        workers_per_process=cluster.workers,
        process_id=cluster.process_id,
        addresses=list(cluster.addresses) if cluster.addresses else None,
        epoch_interval=timedelta(seconds=cluster.snapshot_every_s),
        recovery_config=recovery,
    )


def prepare_recovery(db_dir: str, partitions: int) -> str:
    """Create Bytewax's recovery partitions once (what `python -m bytewax.recovery DIR N` does)."""
    from bytewax._bytewax import init_db_dir

    path = Path(db_dir)
    path.mkdir(parents=True, exist_ok=True)
    if not any(path.glob("part-*.sqlite3")):
        init_db_dir(path, max(1, partitions))
    return str(path)


# ----------------------------------------------------------------------------- replay


class _RuleFile:
    """One rule's matches into OUT/<rule>.parquet; at the end, sorted by time and group key
    (key partitions finish in any order; one process writes each time's matches in order)."""

    def __init__(self, rule: RulePlan, out: Path) -> None:
        from runtime.replay import MatchWriter

        self.rule = rule
        self.writer = MatchWriter(rule, out / f".{rule.id}.unsorted.parquet")
        self.final = out / f"{rule.id}.parquet"

    def write(self, records: list[tuple]) -> None:
        for record in records:
            self.writer.add(record[2])

    def close(self) -> None:
        self.writer.close()
        frame = pl.read_parquet(self.writer.path)
        frame = sort_matches(self.rule, frame)
        staged = self.final.with_name(f".{self.rule.id}.sorted.parquet")
        frame.write_parquet(staged)
        os.replace(staged, self.final)  # wins over an empty file another process put there
        os.unlink(self.writer.path)


def write_empty_if_absent(final: Path, empty: pl.DataFrame) -> None:
    """A rule no key partition emitted for has no sink partition (Bytewax builds them on first
    use): its file is written empty, never over one a sink partition wrote (link fails if present)."""
    if final.exists():
        return
    staged = final.with_name(f".{final.stem}.{os.getpid()}.empty.parquet")
    empty.write_parquet(staged)
    try:
        os.link(staged, final)
    except FileExistsError:
        pass
    finally:
        os.unlink(staged)


def sort_matches(rule: RulePlan, frame: pl.DataFrame) -> pl.DataFrame:
    keys = [c for c in ("ts", *(k.replace(".", "_") for k in rule.group_keys)) if c in frame.columns]
    keys = list(dict.fromkeys(keys))
    return frame.sort(keys, maintain_order=True, nulls_last=False) if keys and frame.height else frame


class _DeadLetterFile:
    def __init__(self, out: Path) -> None:
        from runtime.dead_letter_writer import DeadLetterWriter
        from runtime.replay import DEAD_LETTER_FILE

        self.final = out / DEAD_LETTER_FILE
        self.writer = DeadLetterWriter(out / f".{DEAD_LETTER_FILE}.staged")

    def write(self, records: list[tuple]) -> None:
        for record in records:
            self.writer.write(record[1])

    def close(self) -> None:
        self.writer.close()
        os.replace(self.writer.path, self.final)


def _record_part(record: tuple) -> str:
    return record[1] if record[0] == "m" else DEAD_LETTER_PART


@dataclass(frozen=True)
class DistributedSummary:
    rows: int
    seconds: float
    out_dir: Path
    matches: dict[str, int]


def replay_distributed(
    program: Program,
    data: Mapping[str, Sequence[Path | str]],
    out_dir: str | os.PathLike[str],
    cluster: Cluster = Cluster(),
    *,
    partitions: int | None = None,
    buckets: int | None = None,
    batch_rows: int = 500_000,
    place: bool = True,
    weigh: bool = True,
) -> DistributedSummary:
    """`cep replay --workers N`: each stream's Parquet rows split into contiguous ranges
    (default: one per worker in the cluster), rules on Bytewax, matches to OUT/<rule>.parquet."""
    from runtime.replay import DEAD_LETTER_FILE
    from runtime.sources.parquet import count_rows, resolve_paths

    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    workers = cluster.workers * cluster.processes
    n_parts = partitions or workers
    # Weights are timings: processes would each measure their own and name key partitions
    # differently, so only one process's threads are placed by weight.
    weighed = buckets is None and place and weigh and workers > 1 and cluster.processes == 1
    if buckets is None:
        # Replay keeps no state across runs: key partitions need only spread the keys over the
        # workers. Unweighed (small inputs), one per worker, each placed on a worker of its own
        # (runtime.distributed.placement), gives every worker an equal share of every grouped
        # rule. Weighed (below), rules go whole to workers as their measured costs balance, and
        # only a rule too heavy to balance is split: whole rules spare the reader the hashing
        # and the gathers by key partition, and run in one engine instead of one per worker.
        buckets = workers
    inputs: list[InputPartition] = []
    rows = 0
    files: dict[str, list[Path]] = {}
    for name, specs in data.items():
        plan = program.stream(name)
        paths = files[name] = [p for s in ([specs] if isinstance(specs, (str, Path)) else specs) for p in resolve_paths(s)]
        rows += count_rows(paths)
        # No event time, no order but input order: such a stream is read by one partition.
        inputs.extend(split_parquet(plan, paths, n_parts if plan.time_field else 1, batch_rows))
    rules = {r.id: r for r in program.rules}

    def open_part(name: str) -> Any:
        return _DeadLetterFile(out) if name == DEAD_LETTER_PART else _RuleFile(rules[name], out)

    sink = RecordSink([*rules, DEAD_LETTER_PART], open_part)
    placement = None
    if weighed and rows >= WEIGH_FROM_ROWS:
        from runtime.distributed.placement import balance
        from runtime.distributed.routing import is_stateless, rule_key

        stateful = [r for r in program.rules if not is_stateless(r)]
        weights = weigh_rules(program, stateful, files)
        if weights:
            placement = balance(
                {rule_key(r): weights[r.id] for r in stateful},
                {rule_key(r) for r in stateful if r.group_keys},
                workers,
            )
    # Nothing is recovered in replay, so key names may depend on the worker count: placed evenly.
    flow = build_flow(program, inputs, sink, _record_part, buckets=buckets, place_on=workers if place else None, placement=placement)
    execute(flow, cluster)
    from runtime.dead_letter_writer import empty_dead_letters

    for rule in program.rules:
        write_empty_if_absent(out / f"{rule.id}.parquet", rule.empty_output())
    write_empty_if_absent(out / DEAD_LETTER_FILE, empty_dead_letters())
    matches = {}
    for rid in rules:
        path = out / f"{rid}.parquet"
        matches[rid] = pl.scan_parquet(path).select(pl.len()).collect().item() if path.exists() else 0
    return DistributedSummary(rows, time.perf_counter() - started, out, matches)


#: Replay weighs its stateful rules (to place them) only on inputs at least this large: on
#: smaller ones the sample would cost more than any imbalance.
WEIGH_FROM_ROWS = 2_000_000
#: Rows of each stream the rules are weighed on, after as many that warm their state up (a
#: rule's first rows cost mostly fixed work: new keys, first dispatches; its shares of the
#: steady state are what placing by cost needs).
WEIGH_ROWS = 100_000


def weigh_rules(program: Program, rules: Sequence[RulePlan], files: Mapping[str, Sequence[Path]]) -> dict[str, float]:
    """Per rule id, its evaluation seconds (`Session.stats()`) over WEIGH_ROWS rows of its
    stream (`files`: each stream's Parquet files, resolved), after the first WEIGH_ROWS.
    {} when a stream cannot be sampled."""
    from cepdsl.engine import Session
    from runtime.sources.parquet import scan

    weights: dict[str, float] = {}
    for name, paths in files.items():
        mine = tuple(r for r in rules if r.stream.name == name)
        plan = program.stream(name)
        if not mine or plan.time_field is None or not paths:
            continue
        try:
            sample = scan(plan, paths[0]).head(2 * WEIGH_ROWS).collect()
        except Exception:  # noqa: BLE001 - the replay itself reports a bad file, with its name
            return {}
        sample = sample.filter(pl.col(plan.time_field).is_not_null())  # dead letters weigh nothing
        times = sample[plan.time_field].dt.epoch("us")
        half = sample.height // 2
        if not half:
            return {}
        session = Session(Program((plan,), (), mine), replay=True)
        session.push(name, sample[:half])
        session.advance(name, int(times[:half].max()))  # type: ignore[arg-type]
        warm = {rid: row["eval_s"] for rid, row in session.stats(state_size=False).items()}
        session.push(name, sample[half:])
        session.advance(name, int(times.max()))  # type: ignore[arg-type]
        weights.update({rid: row["eval_s"] - warm[rid] for rid, row in session.stats(state_size=False).items()})
    return weights if len(weights) == len(rules) else {}


# ----------------------------------------------------------------------------- live


class _Outbox:
    """The notification outbox (and DIR/<rule>.jsonl when asked) for every match of the flow:
    one partition, so one notifier owns the outbox file; redelivery after a restart is
    harmless, the outbox drops a match whose idempotency key it already has."""

    def __init__(
        self,
        program: Program,
        outbox: str | None,
        out_dir: str | None,
        allow_hosts: Sequence[str],
        control: ControlFeed | None = None,
        on_matches: Callable[[str, pl.DataFrame], None] | None = None,
        notifier: Any = None,
    ) -> None:
        from runtime.distributed.control import RuleTable
        from runtime.notify import DestinationPolicy, Notifier
        from runtime.run import DEFAULT_OUTBOX, JsonlSink

        self.program, self.control, self.on_matches = program, control, on_matches
        self.owned = notifier is None  # `cep serve` shares its notifier with the API (health, simulate)
        if notifier is None:
            notifier = Notifier(program, outbox=outbox or DEFAULT_OUTBOX, policy=DestinationPolicy.from_entries(allow_hosts))
            notifier.start()
        self.notifier = notifier
        self.sink = JsonlSink(out_dir) if out_dir else None
        self.table = RuleTable(program)
        self.known = {r.id for r in program.rules}
        self._looked_at = 0.0

    def write(self, records: list[tuple]) -> None:
        self._follow_control()
        for record in records:
            if record[0] == "m":
                rid, frame = record[1], record[2]
                if self.sink is not None:
                    self.sink.matches(rid, frame)
                if self.on_matches is not None:
                    self.on_matches(rid, frame)
                if rid not in self.known:
                    self._follow_control(force=True)
                if rid in self.known:
                    self.notifier.submit(rid, frame)
                else:
                    log.error("rule %s: %d match(es) not notified (unknown to the notifier)", rid, frame.height)
            elif record[0] == "d" and self.sink is not None:
                self.sink.dead(record[1])

    def _follow_control(self, force: bool = False) -> None:
        """Rules registered or changed through the control feed: the notifier learns them and
        their channels (a rule's changed message or channel takes effect here)."""
        now = time.monotonic()
        if self.control is None or (not force and now - self._looked_at < 0.5):
            return
        self._looked_at = now
        try:
            new = self.control.read(self.table.applied)
        except Exception as e:  # noqa: BLE001 - the readers report an unreadable feed; try again later
            log.debug("control feed unreadable: %s", e)
            return
        if not new or not self.table.apply(new):
            return
        program = self.table.as_program()
        try:
            self.notifier.reload(program)
        except Exception as e:  # noqa: BLE001 - e.g. a channel's env() unset: keep notifying as before, say why
            log.error("rule changes not taken by the notifier (matches of new rules are not notified): %s", e)
            return
        self.known = set(self.table.rules)

    def close(self) -> None:
        if self.owned:
            self.notifier.stop(drain=True, timeout=30.0)


def live_partitions(program: Program, specs: Mapping[str, tuple[str, str]], idle_after_s: float = 1.0) -> list[LivePartition]:
    """One partition per `--source` (their order within a stream is their ordinal)."""
    by_stream: dict[str, list[str]] = {}
    for stream, spec in specs.values():
        by_stream.setdefault(stream, []).append(spec)
    parts: list[LivePartition] = []
    for stream, listed in by_stream.items():
        parts.extend(LivePartition(stream, i, len(listed), s, idle_after_s) for i, s in enumerate(listed))
    return parts


def run_distributed(
    program: Program,
    specs: Mapping[str, tuple[str, str]],
    cluster: Cluster = Cluster(),
    *,
    outbox: str | None = None,
    out_dir: str | None = None,
    allow_hosts: Sequence[str] = (),
    buckets: int = 16,
    control: ControlFeed | None = None,
    idle_after_s: float = 1.0,
    stop: threading.Event | None = None,
    on_matches: Callable[[str, pl.DataFrame], None] | None = None,
    notifier: Any = None,
) -> None:
    """`cep run --workers N`: live sources as input partitions, matches to the outbox.
    Returns when every source has ended, or soon after `stop` is set (state snapshotted,
    open windows left open for the next run)."""
    inputs = live_partitions(program, specs, idle_after_s)
    sink = RecordSink(["outbox"], lambda _name: _Outbox(program, outbox, out_dir, allow_hosts, control, on_matches, notifier))
    flow = build_flow(program, inputs, sink, lambda _r: "outbox", buckets=buckets, control=control, stop=stop)
    execute(flow, cluster)


class FlowHandle:
    """What the HTTP API asks a running engine (`stats()`, `health()`, `program`), for a flow
    on workers: rule stats summed over key partitions, input partitions and their lag.

    It is also the engine the operations API's control plane reloads: a catalogue change
    (`reload_assembly`) becomes control commands appended to the flow's feed, only for the
    rules that changed (runtime.distributed.control.reconcile), so unchanged rules keep
    their state and every worker, in every process following the feed, applies the same."""

    def __init__(self, program: Program, cluster: Cluster, control: ControlFeed | None = None) -> None:
        from runtime.distributed.control import RuleTable

        self.base = program  # the flow's own program; the feed's commands apply on top of it
        self.cluster = cluster
        self.control = control
        self._table = RuleTable(program)
        self._lock = threading.RLock()
        self._looked_at = 0.0

    def _follow(self, force: bool = False) -> Any:
        with self._lock:
            now = time.monotonic()
            if self.control is not None and (force or now - self._looked_at >= 0.2):
                self._looked_at = now
                try:
                    self._table.apply(self.control.read(self._table.applied))
                except Exception as e:  # noqa: BLE001 - shown by the readers' health; the last fold stands
                    if force:
                        raise
                    log.debug("control feed unreadable: %s", e)
            return self._table

    @property
    def program(self) -> Program:
        """The rules in force (disabled ones left out, as the single-process engine does)."""
        return self._follow().as_program(enabled_only=True)

    def list_registered_rules(self) -> list[dict[str, Any]]:
        return self._follow().listing()

    def reload_assembly(self, assembly: Any, toggles: Mapping[str, bool]) -> Any:
        """The control plane's hook (runtime.control): take the flow to `assembly.program`
        through the control feed. Returns the reload report (kept/changed/added/removed)."""
        from types import SimpleNamespace

        from runtime.distributed.control import reconcile

        if self.control is None or not hasattr(self.control, "append"):
            raise RuntimeError("this flow has no control feed to apply rule changes through")
        disabled = {rid for rid, on in toggles.items() if not on}
        with self._lock:  # one change at a time: each reconciles against the feed with the last one in it
            table = self._follow(force=True)
            done = reconcile(table, assembly.program, assembly.declared, disabled)
            errors_before = len(table.errors)
            for cmd in done.commands:
                self.control.append(cmd)
            table = self._follow(force=True)
            new_errors = table.errors[errors_before:]
        if new_errors:
            raise ValueError("; ".join(new_errors))
        return SimpleNamespace(report=done)

    def reload(self, program: Program) -> Any:
        raise RuntimeError("a flow on workers changes rules through reload_assembly (the control feed)")

    def stats(self) -> dict[str, Any]:
        from runtime.distributed.stats import BOARD

        return {
            "engine": {"workers": self.cluster.workers, "processes": self.cluster.processes},
            "streams": {},
            "rules": BOARD.all_rules(),
            "health": self.health(),
        }

    def health(self) -> dict[str, Any]:
        from runtime.distributed.stats import BOARD

        now_us = int(time.time() * 1_000_000)
        inputs = {}
        for name, row in BOARD.inputs().items():
            horizon = row.get("horizon_us")
            lag = (now_us - horizon) / 1e6 if isinstance(horizon, int) and 0 < horizon < 2**62 else None
            inputs[name] = {**row, "lag_s": lag}
        errors = [e for row in inputs.values() for e in row.get("control_errors", [])]
        return {
            "degraded": False,
            "errors": errors,
            "bytewax": {
                "workers_per_process": self.cluster.workers,
                "processes": self.cluster.processes,
                "process_id": self.cluster.process_id,
                "input_partitions": inputs,
                "key_partitions": BOARD.key_partitions(),
            },
        }
