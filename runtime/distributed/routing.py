"""The reader side: what happens to a micro-batch on the worker that read it.

Stateless filter rules run right here, in a session of those rules alone (no
exchange).  For each stateful rule, the rows that pass its `where` are split
by a hash of the rule's group key into `buckets` key partitions (an ungrouped
rule has one: a constant key) and sent, one Slice per key partition, rows or
not, numbered per (input partition, rule).  Rows without an event time are
dead letters here, once, rather than once per rule downstream.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from cepdsl.backends.polars.rowsets import WhereSet, decode
from cepdsl.engine import Session
from cepdsl.engine.dead_letter_rows import rows_as_dead_letters
from cepdsl.engine.frames import conform
from cepdsl.engine.session import fingerprint
from cepdsl.executor import TIME
from cepdsl.plan import Program, RuleKind, RulePlan, StreamPlan
from runtime.distributed.slices import OFFSET, PART, Slice

#: Fixed seeds: every worker and every execution must send a key to the same partition.
HASH_SEED = 0x0CE95EED


def is_stateless(rule: RulePlan) -> bool:
    """Filter rules without throttle and without a lifecycle (`for`/`resolve`, §9.3) remember
    nothing: they run where rows are read."""
    return (
        rule.kind is RuleKind.FILTER
        and not rule.throttle_us
        and getattr(rule, "for_us", None) is None
        and getattr(rule, "resolve", None) is None
    )


def rule_key(rule: RulePlan) -> str:
    """A rule's key prefix: a rule whose matching changes gets fresh key partitions (and
    state), an unchanged one (title, message, channels edited) keeps them."""
    return f"{rule.id}@{fingerprint(rule)}"


def bucket_count(rule: RulePlan, buckets: int) -> int:
    return buckets if rule.group_keys else 1


def keys_of(rule: RulePlan, buckets: int) -> list[str]:
    return key_names(rule_key(rule), bucket_count(rule, buckets))


def key_names(prefix: str, n: int) -> list[str]:
    """The names of a rule version's `n` key partitions: `RULE@FINGERPRINT#B`."""
    return [f"{prefix}#{b}" for b in range(n)]


#: Kinds whose match record holds no row fields but group keys and aggregates (§7): their
#: rows travel with only the fields the executor reads.
_AGGREGATING = (RuleKind.WINDOW, RuleKind.SCHEDULE, RuleKind.ABSENT)


def carried_fields(rule: RulePlan) -> tuple[str, ...] | None:
    """The declared fields a key partition of `rule` needs (None: all of them). Its `where`
    has been applied by the reader, so only the time field, group keys and aggregated
    fields remain; the others travel as nothing and arrive as nulls."""
    if rule.kind not in _AGGREGATING or getattr(rule, "resolve", None) is not None:
        return None  # a resolve message may name any field
    wanted = {*rule.group_keys, *(a.field for a in rule.aggregates if a.field is not None)}
    if rule.stream.time_field is not None:
        wanted.add(rule.stream.time_field)
    return tuple(f.name for f in rule.stream.fields if f.name in wanted)


def _carry(rule: RulePlan, rows: pl.DataFrame) -> pl.DataFrame:
    carried = carried_fields(rule)
    return rows if carried is None else rows.select(*carried, TIME, PART, OFFSET)


def bucket_of(frame: pl.DataFrame, keys: tuple[str, ...], n: int) -> pl.Series:
    """Per row, its key partition: a seeded hash of the group key (strings decoded first,
    so a dictionary-encoded batch hashes like a plain one)."""
    cols = decode(frame.select(keys))
    return (cols.hash_rows(seed=HASH_SEED) % n).cast(pl.Int64)


@dataclass
class RouterState:
    """What a reader must remember across executions (kept in the source's snapshot)."""

    next_offset: int = 0
    lo: int | None = None
    hi: int | None = None
    seqs: dict[str, int] = field(default_factory=dict)  # per rule key prefix: next Slice number


class Router:
    def __init__(
        self,
        stream: StreamPlan,
        part: int,
        parts: int,
        buckets: int,
        state: RouterState | None = None,
        place_on: int | None = None,
        placement: Mapping[str, tuple[int, ...]] | None = None,
    ) -> None:
        self.stream = stream
        self.part, self.parts, self.buckets = part, parts, buckets
        #: Replay: key names chosen so that Bytewax spreads them evenly over this many workers
        #: (runtime.distributed.placement). None: plain names (a live flow's must not depend on it).
        self.place_on = place_on
        #: Replay, rules weighed: per rule key prefix, the worker of each of its key partitions
        #: (`placement.balance`); a rule not in it gets `buckets` key partitions round the workers.
        self.placement = placement or {}
        self._keys: dict[str, list[str]] = {}  # per rule key prefix: its key partitions' names
        self.state = state or RouterState()
        self.rules: tuple[RulePlan, ...] = ()
        self.enabled: dict[str, bool] = {}
        self.silences: tuple = ()
        self._filters: Session | None = None
        self._stateful: list[RulePlan] = []
        #: stateful rules deleted or changed since the last batch: their key partitions get a last Slice
        self._gone: list[RulePlan] = []
        #: stateful rules by routing (group keys, key partition count), each with its `where`s
        self._groups: list[tuple[tuple[str, ...], int, list[RulePlan], WhereSet]] = []

    def set_rules(self, rules: tuple[RulePlan, ...], enabled: dict[str, bool], silences: tuple = ()) -> None:
        """The rules of this stream as the control feed now has them (and the program's silences)."""
        self.silences = tuple(silences)
        mine = tuple(r for r in rules if r.stream.name == self.stream.name)
        # Key partition names, once per rule version. Placed: the k-th key partition overall (all
        # streams' stateful rules in order, each rule's in bucket order) on worker k mod W, so
        # rules of one key partition go round the workers and a rule of W covers them all.
        k = 0
        for r in rules:
            if is_stateless(r):
                continue
            prefix = rule_key(r)
            if prefix not in self._keys:
                self._keys[prefix] = self._names(r, prefix, k)
            k += len(self._keys[prefix])
        self.enabled = dict(enabled)
        if mine == self.rules:
            return
        kept = {rule_key(r) for r in mine if not is_stateless(r)}
        self._gone.extend(r for r in self._stateful if rule_key(r) not in kept)
        self.rules = mine
        filters = tuple(r for r in mine if is_stateless(r))
        program = Program((self.stream,), (), filters, silences=self.silences)
        if not filters:
            self._filters = None
        elif self._filters is None:
            self._filters = Session(program, replay=True)
        else:
            self._filters.reload(program)  # unchanged filters keep their counters
        self._stateful = [r for r in mine if not is_stateless(r)]
        by_route: dict[tuple[tuple[str, ...], int], list[RulePlan]] = {}
        for r in self._stateful:
            by_route.setdefault((r.group_keys, len(self._keys[rule_key(r)])), []).append(r)
        self._groups = [(keys, n, rs, WhereSet([r.where for r in rs])) for (keys, n), rs in by_route.items()]

    def _names(self, rule: RulePlan, prefix: str, k: int) -> list[str]:
        """The key partitions of a rule version: as placed, or `buckets` of them (grouped)
        with the k-th overall on worker k mod W, so a rule of W covers every worker."""
        if not self.place_on:
            return keys_of(rule, self.buckets)
        from runtime.distributed.placement import placed_key

        workers = self.placement.get(prefix)
        if workers is None:  # round the workers, from the k-th
            n = bucket_count(rule, self.buckets)
            workers = tuple((k + b) % self.place_on for b in range(n))
        return [placed_key(name, w, self.place_on) for name, w in zip(key_names(prefix, len(workers)), workers)]

    def route(self, frame: pl.DataFrame | None, horizon: int, offset: int | None = None) -> list[tuple]:
        """Records for one micro-batch (None: no rows, only progress): ("k", key, Slice) for
        key partitions, ("m", rule, matches) from filters, ("d", dead letters)."""
        st = self.state
        out: list[tuple] = []
        rows = None
        if frame is not None and frame.height:
            rows = conform(self.stream, frame, source=f"a batch of stream {self.stream.name}")
            n = rows.height
            first = st.next_offset if offset is None else offset
            rows = rows.with_columns(pl.int_range(first, first + n, dtype=pl.Int64).alias(OFFSET))
            st.next_offset += n
            if self.stream.time_field is not None:
                rows = rows.with_columns(pl.col(self.stream.time_field).dt.epoch("us").alias(TIME))
                missing = rows[TIME].is_null()
                if missing.any():
                    dead = rows.filter(missing).select(self.stream.schema.keys())
                    out.append(("d", rows_as_dead_letters(self.stream.name, decode(dead), "missing time")))
                    rows = rows.filter(~missing)
                if rows.height:
                    lo, hi = int(rows[TIME].min()), int(rows[TIME].max())  # type: ignore[arg-type]
                    st.lo = lo if st.lo is None else min(st.lo, lo)
                    st.hi = hi if st.hi is None else max(st.hi, hi)
            else:
                rows = rows.with_columns(pl.lit(None, pl.Int64).alias(TIME))
            # Rows numbered across the whole input (Parquet) all rank as partition 0.
            rows = rows.with_columns(pl.lit(self.part if offset is None else 0, pl.Int64).alias(PART))
            if rows.height and self._filters is not None:
                out.extend(self._run_filters(rows))
        per_rule = self._split(rows) if rows is not None and rows.height else {}
        for rule in self._stateful:
            out.extend(self._slices(rule, per_rule.get(rule.id, {}), horizon))
        for rule in self._gone:
            out.extend(self._slices(rule, {}, horizon, gone=True))
        self._gone = []
        return out

    def _split(self, rows: pl.DataFrame) -> dict[str, dict[int, pl.DataFrame]]:
        """Per stateful rule, per key partition: its rows that pass its `where`, with only the
        fields it carries.  One ungrouped key partition: the `where`s split the batch in one
        pass.  Several: every rule's `where` mask and the rows' key partitions are computed
        once, then each (rule, key partition) gathers exactly its rows — no gather of the
        whole batch into key-partition order first (strings make gathers the main cost)."""
        out: dict[str, dict[int, pl.DataFrame]] = {r.id: {} for r in self._stateful}
        for keys, n, rules, wheres in self._groups:
            live = [r for r in rules if self.enabled.get(r.id, True)]
            if not live:
                continue
            if n == 1:
                for rule, sub in zip(rules, wheres.split(rows)):
                    if sub.height:
                        out[rule.id][0] = _carry(rule, sub)
                continue
            b = bucket_of(rows, keys, n).to_numpy()
            # Within a key partition: row (offset) order. As uint32, each slice becomes a Polars
            # index without a conversion pass.
            order = np.argsort(b, kind="stable").astype(np.uint32)
            ends = np.cumsum(np.bincount(b, minlength=n))
            starts = ends - np.bincount(b, minlength=n)
            masks = wheres.masks(rows)
            whole: dict[int, pl.DataFrame] = {}  # per key partition, all its rows: shared by rules without `where`
            for rule, mask in zip(rules, masks):
                if rule not in live:
                    continue
                keep = None if mask is None else mask.fill_null(False).to_numpy()
                for k in range(n):
                    idx = order[starts[k] : ends[k]]
                    if keep is None:
                        if idx.size:
                            if k not in whole:
                                whole[k] = decode(rows[pl.Series(idx, dtype=pl.UInt32)])
                            out[rule.id][k] = _carry(rule, whole[k])  # a select: no copy
                        continue
                    idx = idx[keep[idx]]
                    if idx.size:
                        out[rule.id][k] = decode(_carry(rule, rows)[pl.Series(idx, dtype=pl.UInt32)])
        return out

    def _run_filters(self, rows: pl.DataFrame) -> list[tuple]:
        session = self._filters
        assert session is not None
        name = self.stream.name
        got = [session.push(name, rows.select(self.stream.schema.keys()))]
        if self.stream.time_field is not None:
            # Filters need no order: release the whole batch now.
            got.append(session.advance(name, int(rows[TIME].max())))  # type: ignore[arg-type]
        out: list[tuple] = []
        for outs in got:
            for rid, matches in outs.items():
                if matches.height and self.enabled.get(rid, True):
                    out.append(("m", rid, matches))
        dead = session.take_dead_letters()
        if dead.height:
            out.append(("d", dead))
        return out

    def _slices(self, rule: RulePlan, per_key: dict[int, pl.DataFrame], horizon: int, gone: bool = False) -> list[tuple]:
        st = self.state
        prefix = rule_key(rule)
        seq = st.seqs.get(prefix, 0)
        if gone:
            st.seqs.pop(prefix, None)  # registered again later: new key partitions, from Slice 0
            if seq == 0:
                return []  # this partition never sent it anything
        else:
            st.seqs[prefix] = seq + 1
        enabled = self.enabled.get(rule.id, True)
        keys = self._keys.get(prefix) or keys_of(rule, self.buckets)
        if not enabled:
            per_key = {}  # a disabled rule gets time, no rows
        first = rule if seq == 0 else None
        return [
            (
                "k",
                key,
                Slice(
                    self.part,
                    self.parts,
                    seq,
                    horizon,
                    st.lo,
                    st.hi,
                    per_key.get(b),
                    enabled,
                    first,
                    gone,
                    self.silences if first is not None else (),
                ),
            )
            for b, key in enumerate(keys)
        ]

    def filter_stats(self) -> dict[str, dict[str, Any]]:
        """Stats of the filter rules evaluated here, by stats key `RULE@FP#rPART` (summed per
        rule with the key partitions' by the stats board)."""
        if self._filters is None:
            return {}
        by_id = {r.id: r for r in self.rules}
        return {
            f"{rule_key(by_id[rid])}#r{self.part}": row for rid, row in self._filters.stats(state_size=False).items() if rid in by_id
        }

    def snapshot(self) -> dict[str, Any]:
        st = self.state
        return {"next_offset": st.next_offset, "lo": st.lo, "hi": st.hi, "seqs": dict(st.seqs)}

    @staticmethod
    def state_of(data: dict[str, Any] | None) -> RouterState | None:
        if data is None:
            return None
        return RouterState(data["next_offset"], data["lo"], data["hi"], dict(data["seqs"]))
