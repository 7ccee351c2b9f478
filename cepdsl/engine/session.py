"""The engine core: every rule of a Program over micro-batches of several streams.

A `Session` owns what is common to all rules — conversion of incoming frames,
arrival numbers (SEQ) and event time (TIME), the per-stream watermark and
reorder buffer, late rows, the one-pass `where` of all rules of a stream, and
throttle — and hands each rule's executor (`cepdsl.backends.executor_for`) the
rows that passed its `where`, in (TIME, SEQ) order.  It is pure: no I/O and no
wall clock; time comes in as data (`advance` is how the runtime's clock or the
replay driver's knowledge of the input moves a watermark).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import functools
import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from cepdsl.backends.polars.rowsets import WhereSet, decode
from cepdsl.engine.dead_letter_rows import concat_dead_letters, rows_as_dead_letters
from cepdsl.engine.frames import conform
from cepdsl.engine.ordering import NO_WATERMARK, StreamState
from cepdsl.engine.rule_stats import RuleStats
from cepdsl.engine.throttle import Throttle
from cepdsl.executor import SEQ, TIME, Executor, Progress
from cepdsl.plan import FieldPlan, Program, RuleKind, RulePlan, StreamPlan
from cepdsl.state_format import StateFormatError, decode_state, encode_state

#: From this many rows, a join group of one rule looks keys up only for the rows its
#: `where`'s join-free conjuncts keep (below it, one pass over all rows is cheaper).
PREFILTER_ROWS = 4096
#: Bumped when the layout of `Session.snapshot()` changes.
#: 2: msgpack checkpoints (cepdsl/state_format.py); 1 was pickle (`cep state migrate` converts).
ENGINE_STATE_VERSION = 2
#: Snapshot keys of per-stream state; rule IDs are identifiers, so ":" cannot clash.
STREAM_KEY = "stream:"

ExecutorSource = Mapping[str, Executor] | Callable[[RulePlan], Executor] | None


#: RulePlan fields that say where a rule is written or how its matches are announced, not
#: what it matches: editing them (or moving the rule in its file) keeps the rule's state.
PRESENTATION_FIELDS = {"file": "", "line": 0, "title": None, "notify": (), "fallback": None, "message": None}


def matching_part(plan: RulePlan) -> RulePlan:
    # `silenced` comes and goes with the program's silences (§9.4): not the rule's matching.
    output = tuple(f for f in plan.output if f.name != "silenced")
    plan = dataclasses.replace(plan, output=output, **PRESENTATION_FIELDS)
    if plan.resolve is not None and plan.resolve.message is not None:
        # The resolved message is presentation too: editing it keeps the episodes (§9.3).
        plan = dataclasses.replace(plan, resolve=dataclasses.replace(plan.resolve, message=None))
    return plan


def same_matching(a: RulePlan, b: RulePlan) -> bool:
    """True when `a` and `b` produce the same matches from the same rows (state can carry over)."""
    return matching_part(a) == matching_part(b)


def fingerprint(plan: RulePlan | StreamPlan) -> str:
    """Stable across processes (unlike `hash`): a restored state is only reused by the same plan."""
    if isinstance(plan, RulePlan):
        plan = matching_part(plan)
    return hashlib.sha256(repr(plan).encode()).hexdigest()[:16]


def _join_groups(runs: list[RuleRun]) -> list[JoinGroup]:
    from cepdsl.plan import TBinary
    from cepdsl.plan import fields_read as fields
    from cepdsl.types import Type

    by_joins: dict[tuple[Any, ...], list[int]] = {}
    for i, run in enumerate(runs):
        if run.plan.joins:
            by_joins.setdefault(run.plan.joins, []).append(i)
    groups = []
    for joins, idx in by_joins.items():
        needed: set[str] = set()
        for i in idx:
            if runs[i].plan.where is not None:
                needed |= fields(runs[i].plan.where)
        for j in joins:
            needed |= fields(j.on)
        pre = None
        where = runs[idx[0]].plan.where
        if len(idx) == 1 and where is not None:
            joined_cols = {c.name for j in joins for c in j.columns}
            parts = _conjuncts(where)
            free = [c for c in parts if not fields(c) & joined_cols]
            if free and len(free) < len(parts):
                pre = functools.reduce(lambda a, b: TBinary(Type.BOOL, "and", a, b), free)
        direct = None
        if len(idx) == 1:
            from cepdsl.backends.polars.joins import JoinedFilter

            direct = JoinedFilter.of(where, joins)
        groups.append(JoinGroup(joins, idx, WhereSet([runs[i].plan.where for i in idx]), frozenset(needed), pre, direct))
    return groups


def _conjuncts(e: Any) -> list[Any]:
    from cepdsl.plan import TBinary

    if isinstance(e, TBinary) and e.op == "and":
        return _conjuncts(e.left) + _conjuncts(e.right)
    return [e]


def _iso(us: int) -> str:
    if us <= NO_WATERMARK:
        return "-inf"
    return (_dt.datetime(1970, 1, 1) + _dt.timedelta(microseconds=us)).isoformat() + "Z"


@functools.lru_cache(maxsize=4096)
def _empty_frame(output: tuple[FieldPlan, ...]) -> pl.DataFrame:
    # Building a frame from a schema costs ~1 ms: with 1,000 rules, share one per layout.
    return pl.DataFrame(schema={f.name: f.dtype for f in output})


@dataclass
class RuleRun:
    """One rule inside a session: its plan, executor, throttle and counters."""

    plan: RulePlan
    executor: Executor
    throttle: Throttle | None
    stats: RuleStats = field(default_factory=RuleStats)

    @property
    def empty(self) -> pl.DataFrame:
        return _empty_frame(self.plan.output)


@dataclass
class JoinGroup:
    """Rules of a stream with the same joins (§9.2): the batch is joined once for them,
    and their `where`s run on the joined rows."""

    joins: tuple[Any, ...]  # JoinPlan
    rules: list[int]  # positions in StreamRun.rules
    wheres: WhereSet
    needed: frozenset[str]  # joined columns `where` (or a later join) reads: gathered before `where`
    #: The conjuncts of `where` that read no joined column, when the group is one rule: only
    #: rows they keep are looked up (the others are dropped by `where` whatever they join).
    pre: Any = None
    #: A group of one rule: its joins and `where` as one filter (joins.JoinedFilter), which
    #: gathers joined columns only for the rows that need them.  Late rows take the general path.
    direct: Any = None


@dataclass
class StreamRun:
    state: StreamState
    rules: list[RuleRun]
    wheres: WhereSet  # the `where` of every rule without joins (`plain`), evaluated in one pass
    joined: list[JoinGroup] = field(default_factory=list)  # rules with joins, by join group
    plain: list[int] | None = None  # positions in `rules` of the rules `wheres` covers (None: all)


@dataclass(frozen=True)
class ReloadReport:
    kept: tuple[str, ...]
    changed: tuple[str, ...]
    added: tuple[str, ...]
    removed: tuple[str, ...]
    #: §9.3: resolved records of the firing episodes of changed and removed rules
    resolved: dict[str, pl.DataFrame] = field(default_factory=dict)


@dataclass(frozen=True)
class RestoreReport:
    restored: tuple[str, ...]  # rule IDs and `stream:NAME` keys taken over
    skipped: tuple[str, ...]  # keys whose plan changed or that no longer exist: those start fresh
    #: With `skip_unreadable`: (key, why) of entries that could not be read; those start fresh.
    unreadable: tuple[tuple[str, str], ...] = ()


def prepared_file_table(plan: Any) -> Any:
    """A file table read and prepared (key index, per-row masks: `joins.PreparedTable`), shared
    by every session of this process while the file's bytes stay the same: a
    backtest calling `replay` in a loop, or a reload, does not read and index it again
    (~50 ms for 100k rows: a quarter of a 10M-event join replay)."""
    from cepdsl.tables import table_file_path

    try:
        with open(table_file_path(plan), "rb") as f:
            # The bytes' digest, not the mtime: a file rewritten within the clock's tick keeps
            # its mtime. Hashing is ~1 ms per MB, far less than parsing and indexing them.
            digest = hashlib.file_digest(f, "blake2b").hexdigest()
    except OSError:
        digest = None  # (the load names the problem)
    return _prepared_file_table(plan, digest)


@functools.lru_cache(maxsize=32)
def _prepared_file_table(plan: Any, digest: str | None) -> Any:
    from cepdsl.backends.polars.joins import PreparedTable
    from cepdsl.tables import load_file_table

    return PreparedTable(plan, load_file_table(plan))


class Session:
    """Runs every rule of `program`.  See docs/engine.md for the guarantees."""

    def __init__(
        self,
        program: Program,
        *,
        executors: ExecutorSource = None,
        replay: bool = False,
        tables: Mapping[str, pl.DataFrame] | None = None,
    ) -> None:
        """`tables`: rows of lookup tables by name (§9.2); tables not given are read from
        their files (a Redis table must be given: the runtime reads it)."""
        self.program = program
        self.replay = replay
        self._executor_source = executors
        self._dead: list[pl.DataFrame] = []
        self._streams: dict[str, StreamRun] = {}
        self._rules: dict[str, RuleRun] = {}
        self._tables: dict[str, Any] = {}  # name -> PreparedTable
        self._load_tables(program, tables or {})
        self._build(program, old_rules={}, old_streams={})

    # ------------------------------------------------------------------ lookup tables
    def _load_tables(self, program: Program, given: Mapping[str, pl.DataFrame]) -> None:
        """Tables the program joins: kept when their declaration is unchanged, else loaded."""
        used = {j.table.name: j.table for r in program.rules for j in r.joins}
        if not used:
            self._tables = {}
            return
        from cepdsl.backends.polars.joins import PreparedTable
        from cepdsl.tables import load_file_tables

        keep = {n: t for n, t in self._tables.items() if n in used and t.plan == used[n] and n not in given}
        files = {n: prepared_file_table(p) for n, p in used.items() if n not in keep and n not in given and p.source == "file"}
        keep.update(files)
        missing = {n: f for n, f in given.items() if n in used}
        fresh = load_file_tables(
            dataclasses.replace(program, rules=tuple(r for r in program.rules if any(j.table.name not in keep for j in r.joins))),
            missing,
        )
        self._tables = {**{n: PreparedTable(used[n], f) for n, f in fresh.items()}, **keep}

    def set_table(self, name: str, frame: pl.DataFrame) -> None:
        """Replace a table's rows (a reload in streaming): checked first, so a bad frame
        raises `TableError` and the previous rows stay."""
        from cepdsl.backends.polars.joins import PreparedTable
        from cepdsl.tables import check_table_frame

        plan = next((j.table for r in self.program.rules for j in r.joins if j.table.name == name), None)
        if plan is None:
            return  # no rule joins it (any more)
        self._tables[name] = PreparedTable(plan, check_table_frame(frame, plan, f"table {name}"))

    def table(self, name: str) -> pl.DataFrame | None:
        t = self._tables.get(name)
        return None if t is None else t.frame

    # ------------------------------------------------------------------ construction
    def _make_executor(self, rule: RulePlan) -> Executor:
        if rule.lifecycle and not isinstance(self._executor_source, Mapping):
            from cepdsl.engine.lifecycle import LifecycleExecutor

            # §9.3: the rule's own executor, told to emit every evaluation, then the episodes.
            return LifecycleExecutor(rule, self._plain_executor)
        return self._plain_executor(rule)

    def _plain_executor(self, rule: RulePlan) -> Executor:
        src = self._executor_source
        if src is None:
            from cepdsl.backends import executor_for

            return executor_for(rule)
        if isinstance(src, Mapping):
            return src[rule.id]
        return src(rule)

    def _build(self, program: Program, old_rules: dict[str, RuleRun], old_streams: dict[str, StreamRun]) -> None:
        from cepdsl.backends.polars.rowsets import WhereSet

        # Built aside and swapped in whole: `stats()` may read from another thread (the live
        # table, the HTTP API) while a reload builds, and must see the old set or the new one.
        # Nothing old is touched until every new executor is built: a failure part way leaves
        # the running program whole (the engine reports it and keeps running).
        rules: dict[str, RuleRun] = {}
        renamed: list[tuple[RuleRun, RulePlan]] = []
        for rule in program.rules:
            old = old_rules.get(rule.id)
            if old is not None and same_matching(old.plan, rule):
                renamed.append((old, rule))  # new title/message/notify, same state
                rules[rule.id] = old
            else:
                throttle = Throttle(rule.throttle_us, rule.group_keys) if rule.throttle_us else None
                rules[rule.id] = RuleRun(rule, self._make_executor(rule), throttle)
        streams: dict[str, StreamRun] = {}
        for stream in program.streams:
            state = StreamState(stream, external_watermark=self.replay)
            rules_here = [r for r in program.rules if r.stream.name == stream.name]
            # Filter executors never look at SEQ: a filter-only stream skips numbering rows.
            state.need_seq = self._executor_source is not None or any(r.kind is not RuleKind.FILTER for r in rules_here)
            previous = old_streams.get(stream.name)
            if previous is not None:
                state.adopt(previous.state)
            runs = [rules[r.id] for r in program.rules if r.stream.name == stream.name]
            # Rules with joins see joined rows: their `where` runs in their join group.
            groups = _join_groups(runs)
            plain = [i for i, run in enumerate(runs) if not run.plan.joins] if groups else None
            wheres = WhereSet([runs[i].plan.where for i in plain] if plain is not None else [run.plan.where for run in runs])
            streams[stream.name] = StreamRun(state, runs, wheres, groups, plain)
        from cepdsl.silences import applicable

        # Per rule, the file's silences that may apply to its records (§9.4).
        silences = {r.id: applicable(r, program.silences) for r in program.rules} if program.silences else {}
        for run, plan in renamed:
            run.plan = run.executor.rule = plan
        self._silences = silences
        self._rules, self._streams = rules, streams

    def _stream(self, name: str) -> StreamRun:
        try:
            return self._streams[name]
        except KeyError:
            raise KeyError(f"unknown stream {name!r} (declared: {', '.join(self._streams)})") from None

    def _outputs(self) -> dict[str, list[pl.DataFrame]]:
        return {rid: [] for rid in self._rules}

    # ------------------------------------------------------------------ rows in
    def push(self, stream: str, frame: Any) -> dict[str, pl.DataFrame]:
        """Take a micro-batch of `stream` (Polars/Arrow/pandas); return every rule's matches now due."""
        run = self._stream(stream)
        st = run.state
        rows = st.number(conform(st.plan, frame, source=f"a batch of stream {stream}"))
        outs = self._outputs()
        scan = None
        if st.has_time:
            if rows[TIME].null_count():  # metadata: no pass when there are no nulls
                missing = rows[TIME].is_null()
                self._dead.append(
                    rows_as_dead_letters(stream, decode(rows.filter(missing).select(st.plan.schema.keys())), "missing time")
                )
                rows = rows.filter(~missing)
            before = st.watermark
            # One scan gives min, max and sortedness; an in-order batch (min ≥ the old
            # watermark) needs no "behind" comparison, no sort and no buffer pass.
            scan = st.observe(rows[TIME])
            if scan is not None and before > NO_WATERMARK and scan.lo < before:
                behind = rows[TIME] < before
                late = rows.filter(behind)
                late = late.sort([TIME, SEQ]) if SEQ in late.columns else late.sort(TIME, maintain_order=True)
                rows = rows.filter(~behind)
                scan = None  # the rest is re-scanned by `release` if needed
                self._run_rows(run, late, Progress(before, st.first_ts, st.max_ts), outs, late=True)
        if st.buffer is not None and st.buffer.height and st.buffer.schema != rows.schema:
            # Dictionary-encoded and plain String batches meet in the buffer: plain String.
            st.buffer, rows = decode(st.buffer), decode(rows)
        st.hold(rows, scan)
        self._release(run, outs)
        return self._finish_outputs(outs)

    def advance(self, stream: str | None, watermark_us: int) -> dict[str, pl.DataFrame]:
        """Move the watermark of `stream` (None: every stream with a time field) to at least
        `watermark_us`: the runtime's wall clock on a silent stream, or the replay driver's
        knowledge that no older row is left.  Returns the matches now due."""
        outs = self._outputs()
        runs = [self._stream(stream)] if stream is not None else list(self._streams.values())
        for run in runs:
            st = run.state
            if not st.has_time or watermark_us <= st.watermark:
                continue
            st.watermark = int(watermark_us)
            self._release(run, outs)
        return self._finish_outputs(outs)

    def note_extent(self, stream: str, first_ts_us: int | None = None, max_ts_us: int | None = None) -> None:
        """Event times seen on `stream` by other readers: a key partition of a distributed run
        (runtime.distributed) gets only its keys' rows, yet a schedule starts at the stream's
        first event (§5.3) and `flush` closes up to its last.  Only ever widens the extent."""
        st = self._stream(stream).state
        if first_ts_us is not None:
            st.first_ts = int(first_ts_us) if st.first_ts is None else min(st.first_ts, int(first_ts_us))
        if max_ts_us is not None:
            st.max_ts = int(max_ts_us) if st.max_ts is None else max(st.max_ts, int(max_ts_us))

    def flush(self) -> dict[str, pl.DataFrame]:
        """End of replay input: release every buffered row, close windows and sessions, and
        fire schedule ticks and absence deadlines up to the largest event time seen (§6)."""
        outs = self._outputs()
        for run in self._streams.values():
            st = run.state
            for rule in run.rules:
                before_flush = getattr(rule.executor, "before_flush", None)
                if before_flush is not None:  # §9.3: the grid up to the largest event time, as replay
                    before_flush(st.watermark if st.max_ts is None else max(st.watermark, st.max_ts))
            if st.max_ts is not None:
                st.watermark = max(st.watermark, st.max_ts)
            rows = st.release(upto=np.iinfo(np.int64).max)
            progress = st.progress()
            if rows is not None:
                self._run_rows(run, rows, progress, outs)
            for rule in run.rules:
                t0 = time.perf_counter()
                outs[rule.plan.id].append(rule.executor.finish(progress))
                rule.stats.total_eval_s += time.perf_counter() - t0
        return self._finish_outputs(outs)

    # ------------------------------------------------------------------ the pipeline
    def _release(self, run: StreamRun, outs: dict[str, list[pl.DataFrame]]) -> None:
        st = run.state
        rows = st.release()
        progress = st.progress()
        if rows is not None:
            self._run_rows(run, rows, progress, outs)
        elif st.has_time:
            for rule in run.rules:
                outs[rule.plan.id].append(rule.executor.advance(progress))

    def _run_rows(
        self,
        run: StreamRun,
        rows: pl.DataFrame,
        progress: Progress,
        outs: dict[str, list[pl.DataFrame]],
        late: bool = False,
    ) -> None:
        """Evaluate every rule's `where` in one pass, then feed each executor its rows."""
        if not run.rules:
            return
        t0 = time.perf_counter()
        if late:
            masks = run.wheres.masks(rows) if run.plain is None or run.plain else []
        else:
            # The common path: rows per rule by index gathers, no per-rule filter pass.
            # Filter-only streams (no SEQ) gather without TIME: the filter executor reads
            # the time field itself, one column less to gather per rule.
            subs = run.wheres.split(rows if run.state.need_seq else rows.drop(TIME)) if run.plain is None or run.plain else []
        if run.plain is not None:  # spread over every rule's position; join groups fill the rest
            spread: list[Any] = [None] * len(run.rules)
            for k, i in enumerate(run.plain):
                spread[i] = (masks if late else subs)[k]
            if late:
                masks = spread
            else:
                subs = spread
        rows_for: dict[int, pl.DataFrame] = {}  # rules with joins: the joined rows
        if run.joined:
            from cepdsl.backends.polars.joins import apply_joins, complete_joins

            for g in run.joined:
                if g.direct is not None and not late:
                    subs[g.rules[0]] = g.direct.run(rows if run.state.need_seq else rows.drop(TIME), self._tables)
                    continue
                only = None
                if g.pre is not None and not late and rows.height >= PREFILTER_ROWS:
                    from cepdsl.kernels.polars_expressions import compile_condition

                    only = rows.select(compile_condition(g.pre).arg_true()).to_series().to_numpy()
                joined = apply_joins(rows, g.joins, self._tables, g.needed, only)
                if late:
                    for i, m in zip(g.rules, g.wheres.masks(joined)):
                        masks[i] = m
                        rows_for[i] = joined
                else:
                    for i, sub in zip(g.rules, g.wheres.split(joined if run.state.need_seq else joined.drop(TIME))):
                        subs[i] = decode(complete_joins(sub, g.joins, self._tables))
        where_share = (time.perf_counter() - t0) / len(run.rules)
        ts_np = rows[TIME].to_numpy() if late else None
        stream = run.state.plan.name
        for i, rule in enumerate(run.rules):
            t1 = time.perf_counter()
            if not late:
                self._feed(rule, rows.height, subs[i], progress, outs)
                rule.stats.timed(where_share + time.perf_counter() - t1)
                continue
            mask = masks[i]
            if rule.plan.kind is not RuleKind.FILTER:
                refused = pl.Series(rule.executor.late_mask(ts_np, run.state.released_us), dtype=pl.Boolean)
                if mask is not None:
                    refused = refused & mask.fill_null(False)
                n_refused = int(refused.sum())
                if n_refused:
                    rule.stats.late += n_refused
                    reason = (
                        f"late for rule {rule.plan.id}: older than rows already processed (watermark {_iso(progress.watermark_us)})"
                    )
                    self._dead.append(
                        rows_as_dead_letters(stream, decode(rows.filter(refused).select(run.state.plan.schema.keys())), reason)
                    )
                    mask = ~refused if mask is None else (mask & ~refused)
            source = rows_for.get(i, rows)
            sub = decode(source if mask is None else source.filter(mask))
            if i in rows_for:
                from cepdsl.backends.polars.joins import complete_joins

                sub = decode(complete_joins(sub, rule.plan.joins, self._tables))
            self._feed(rule, rows.height, sub, progress, outs)
            rule.stats.timed(where_share + time.perf_counter() - t1)

    @staticmethod
    def _feed(rule: RuleRun, n_in: int, sub: pl.DataFrame, progress: Progress, outs: dict[str, list[pl.DataFrame]]) -> None:
        rule.stats.events_in += n_in
        rule.stats.passed += sub.height
        if sub.height:
            out = rule.executor.process(sub, progress)
        else:
            out = rule.executor.advance(progress)
        outs[rule.plan.id].append(out)

    def _finish_outputs(self, outs: dict[str, list[pl.DataFrame]]) -> dict[str, pl.DataFrame]:
        """Per rule: one frame in ts order, throttled; counters updated."""
        result: dict[str, pl.DataFrame] = {}
        for rid, parts in outs.items():
            rule = self._rules[rid]
            parts = [p for p in parts if p is not None and p.height]
            if not parts:
                result[rid] = rule.empty
                continue
            out = parts[0] if len(parts) == 1 else pl.concat(parts, how="vertical")
            if rule.plan.stream.time_field is not None and not out["ts"].is_sorted():
                out = out.sort("ts", maintain_order=True, nulls_last=False)
            if rule.throttle is not None:
                before = rule.throttle.suppressed
                out = rule.throttle.mark_firing(out) if rule.plan.lifecycle else rule.throttle.apply(out)
                rule.stats.suppressed += rule.throttle.suppressed - before
            sils = self._silences.get(rid)
            if sils:
                from cepdsl.silences import apply_silences

                out, n_silenced = apply_silences(out, sils, rule.plan)
                rule.stats.silenced += n_silenced
            annotate = getattr(rule.executor, "annotate", None)
            if annotate is not None:  # after silences: a resolved record follows its firing record's notification
                out = annotate(out)
            rule.stats.matches += out.height
            result[rid] = out
        return result

    def carry_holds(self, rule_id: str, frame: pl.DataFrame) -> pl.DataFrame:
        """After the runtime silenced some of a rule's firing records (run-time silences,
        §9.4): their episodes' resolved records are held back too (§9.3)."""
        rule = self._rules.get(rule_id)
        carry = getattr(rule.executor, "carry_holds", None) if rule is not None else None
        return carry(frame) if carry is not None else frame

    # ------------------------------------------------------------------ observability
    def dead_letters(self) -> pl.DataFrame:
        """Rows the engine could not use so far (not cleared)."""
        merged = concat_dead_letters(self._dead)
        self._dead = [merged] if merged.height else []
        return merged

    def take_dead_letters(self) -> pl.DataFrame:
        """Rows the engine could not use since the last call (cleared)."""
        merged = concat_dead_letters(self._dead)
        self._dead = []
        return merged

    def progress(self, stream: str) -> Progress:
        return self._stream(stream).state.progress()

    def progresses(self) -> dict[str, Progress]:
        """Every stream's progress, from one view of the stream set (safe to call from
        another thread while a reload swaps it)."""
        return {name: run.state.progress() for name, run in list(self._streams.items())}

    def stats(self, *, state_size: bool = True) -> dict[str, dict[str, Any]]:
        """Per rule: events in, passed `where`, matches, suppressed, late, batches, mean and
        p99 evaluation time per batch (ms), and the size of its snapshot in bytes."""
        out = {}
        for rid, rule in list(self._rules.items()):  # one step under the GIL: safe from another thread
            row: dict[str, Any] = {"stream": rule.plan.stream.name, "kind": rule.plan.kind.value}
            row.update(rule.stats.summary())
            if state_size:
                row["state_bytes"] = len(self._rule_snapshot(rule))
            out[rid] = row
        return out

    # ------------------------------------------------------------------ state
    def _rule_snapshot(self, rule: RuleRun) -> bytes:
        return encode_state(
            {
                "version": ENGINE_STATE_VERSION,
                "plan": fingerprint(rule.plan),
                "executor": rule.executor.snapshot_data(),  # embedded: one encoding, no nested payload
                "throttle": rule.throttle.state() if rule.throttle else None,
                "counters": rule.stats.counters(),
            }
        )

    def snapshot(self) -> dict[str, bytes]:
        """Everything the session remembers: one entry per rule, one per stream
        (`stream:NAME`: watermark, arrival counter and the reorder buffer's rows)."""
        snap = {rid: self._rule_snapshot(rule) for rid, rule in self._rules.items()}
        for name, run in self._streams.items():
            snap[STREAM_KEY + name] = encode_state(
                {"version": ENGINE_STATE_VERSION, "plan": fingerprint(run.state.plan), "state": run.state.state()}
            )
        return snap

    def restore(self, snapshot: Mapping[str, bytes], *, skip_unreadable: bool = False) -> RestoreReport:
        """Take over a snapshot.  A rule whose plan changed since (or that no longer exists)
        starts fresh; a stream whose declaration changed keeps its progress and buffered rows.
        Payloads are read as data only (cepdsl/state_format.py): a pickle, or anything else
        that is not a checkpoint, raises `StateFormatError` and is never executed. With
        `skip_unreadable` (what the streaming engine does on start: a damaged or crafted
        entry must not stop it), such an entry is reported and its rule or stream starts fresh."""
        restored, skipped, unreadable = [], [], []
        for key, payload in snapshot.items():
            try:
                if self._restore_entry(key, payload):
                    restored.append(key)
                else:
                    skipped.append(key)
            except Exception as e:
                if not skip_unreadable:
                    raise
                self._start_fresh(key)
                unreadable.append((key, f"{type(e).__name__}: {e}"))
        return RestoreReport(tuple(restored), tuple(skipped), tuple(unreadable))

    def _restore_entry(self, key: str, payload: bytes) -> bool:
        data = decode_state(payload)
        if not isinstance(data, dict):
            raise StateFormatError(f"{key}: a checkpoint entry is a map")
        if data.get("version") != ENGINE_STATE_VERSION:
            raise ValueError(f"{key}: engine state version {data.get('version')}, expected {ENGINE_STATE_VERSION}")
        if key.startswith(STREAM_KEY):
            run = self._streams.get(key[len(STREAM_KEY) :])
            if run is None:
                return False
            old = StreamState(run.state.plan, external_watermark=self.replay)
            old.load_state(data["state"])
            if data["plan"] == fingerprint(run.state.plan):
                run.state.load_state(data["state"])
            else:
                run.state.adopt(old)
            return True
        rule = self._rules.get(key)
        if rule is None or data["plan"] != fingerprint(rule.plan):
            return False
        rule.executor.restore_data(data["executor"])
        if rule.throttle is not None and data["throttle"] is not None:
            rule.throttle.load_state(data["throttle"])
        rule.stats.load_counters(data["counters"])
        return True

    def _start_fresh(self, key: str) -> None:
        """Undo whatever part of an entry was loaded before it failed."""
        if key.startswith(STREAM_KEY):
            run = self._streams.get(key[len(STREAM_KEY) :])
            if run is not None:
                fresh = StreamState(run.state.plan, external_watermark=self.replay)
                fresh.need_seq = run.state.need_seq
                run.state = fresh
            return
        rule = self._rules.get(key)
        if rule is not None:
            rule.executor = self._make_executor(rule.plan)
            if rule.throttle is not None:
                rule.throttle = Throttle(rule.plan.throttle_us, rule.plan.group_keys)
            rule.stats = RuleStats()

    # ------------------------------------------------------------------ hot reload
    def reload(self, program: Program, tables: Mapping[str, pl.DataFrame] | None = None) -> ReloadReport:
        """Switch to `program` between batches: unchanged rules (equal RulePlan, leaving out
        where the rule is written and how it is announced: file, line, title, notify,
        fallback, message) keep their state, changed and new rules start fresh, removed rules stop.  Streams keep their
        watermark and buffered rows, so no event is dropped."""
        old_ids = set(self._rules)
        new_by_id = {r.id: r for r in program.rules}
        kept = tuple(r for r in new_by_id if r in old_ids and same_matching(self._rules[r].plan, new_by_id[r]))
        changed = tuple(r for r in new_by_id if r in old_ids and r not in kept)
        added = tuple(r for r in new_by_id if r not in old_ids)
        removed = tuple(r for r in self._rules if r not in new_by_id)
        self._load_tables(program, tables or {})  # first: a table that cannot load leaves all as it was
        resolved: dict[str, pl.DataFrame] = {}
        for rid in (*changed, *removed):
            old = self._rules[rid]
            resolve_all = getattr(old.executor, "resolve_all", None)
            if resolve_all is not None:
                stream = self._streams.get(old.plan.stream.name)
                frame = resolve_all(stream.state.watermark if stream is not None else 0)
                if frame.height:
                    old.stats.matches += frame.height
                    resolved[rid] = frame
        self._build(program, old_rules=self._rules, old_streams=self._streams)
        self.program = program
        return ReloadReport(kept, changed, added, removed, resolved)
