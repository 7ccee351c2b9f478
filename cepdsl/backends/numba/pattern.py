"""Pattern rules (LANGUAGE.md §5.4) as a compiled backtracking matcher.

Per call: the buffered rows (each group's rows from its earliest undecided start)
plus the new rows are numbered by group, the `define` conditions become one
boolean column per step (one vectorised Polars select), rows are put group by
group with a stable counting sort, and `match_groups` runs every group in one
Numba pass.  See docs/patterns-absence-anomaly.md for when a match is decided.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from cepdsl.backends.base import SEQ, TIME, Executor, Progress, finalize
from cepdsl.backends.numba.frames import concat_rows, frame_from_bytes, frame_to_bytes, input_columns, take
from cepdsl.backends.numba.groups import counting_sort
from cepdsl.backends.numba.key_codes import column_codes, frame_codes
from cepdsl.backends.numba.pattern_compile import compile_pattern
from cepdsl.backends.numba.pattern_match import match_groups
from cepdsl.backends.polars.expressions import compile_many
from cepdsl.plan import PatternSpec, RulePlan

_NO_TIME = np.iinfo(np.int64).min
#: Frames grow a chunk per batch while a group's start stays undecided; gathers over
#: many chunks get slow, so past this many they are joined.
_MAX_CHUNKS = 16


class PatternExecutor(Executor):
    """Small batches cost what their Polars calls cost (tens of µs each, whatever the
    height), so per batch: the `define` conditions are evaluated once per row (the
    buffered rows keep their step columns and times as numpy arrays), frames are
    stacked and gathered without query plans, and a batch that decides no match
    returns before building any frame."""

    STATE_VERSION = 1

    def __init__(self, rule: RulePlan) -> None:
        super().__init__(rule)
        assert rule.pattern is not None
        self.spec: PatternSpec = rule.pattern
        self.program = compile_pattern(self.spec)
        self.keys = rule.group_keys
        self.columns = input_columns(rule)
        self._column_set = frozenset(self.columns)
        self._n_steps = len(self.spec.steps)
        self._within = -1 if self.spec.within_us is None else int(self.spec.within_us)
        self._conditions = [(k, c) for k, (_, c) in enumerate(self.spec.defines) if c is not None]
        self._condition_exprs = compile_many([c for _, c in self._conditions]) if self._conditions else []
        self._count_names = [f"{s}_count" for s in self.spec.steps]
        # An input field named like a record column is replaced, not duplicated.
        self._records_replace = bool(self._column_set & {"match_start", *self._count_names})
        self._buffer: pl.DataFrame | None = None  # rows from each group's earliest undecided start
        self._buffer_t = np.empty(0, np.int64)  # their TIME
        self._buffer_conds: np.ndarray | None = None  # their step columns (None: not evaluated yet)
        self._held: pl.DataFrame | None = None  # decided matches that may not be emitted yet (order)
        self._max_t = _NO_TIME  # largest event time released to this rule
        self._bound = _NO_TIME  # rows earlier than this can no longer be taken
        self._earliest_undecided = _NO_TIME  # time of the earliest undecided start, if any

    # -- Executor ----------------------------------------------------------------------
    def process(self, rows: pl.DataFrame, progress: Progress) -> pl.DataFrame:
        names = rows.columns
        # Any order of the input columns will do (outputs are built by name): no select.
        if names != self.columns and (len(names) != len(self.columns) or not self._column_set.issuperset(names)):
            rows = rows[self.columns]
        t_new = rows.get_column(TIME).to_numpy()
        if rows.height:
            self._max_t = max(self._max_t, int(t_new.max()))
        conds_new = self._step_columns(rows)
        if self._buffer is None:
            frame, t, conds = rows, t_new, conds_new
        else:
            frame = concat_rows(self._buffer, rows)
            t = np.concatenate((self._buffer_t, t_new))
            conds = np.concatenate((self._buffered_conds(), conds_new), axis=1)
        return self._run(frame, t, conds, max(self._max_t, progress.watermark_us), final=False)

    def advance(self, progress: Progress) -> pl.DataFrame:
        w = self.spec.within_us
        bound = max(self._max_t, progress.watermark_us)
        if self._buffer is None or w is None or bound - self._earliest_undecided <= w:
            return self.rule.empty_output()
        return self._run(self._buffer, self._buffer_t, self._buffered_conds(), bound, final=False)

    def finish(self, progress: Progress) -> pl.DataFrame:
        bound = max(self._max_t, progress.watermark_us)
        if self._buffer is None:
            self._bound = max(self._bound, bound)
            return self._release(None, final=True, has_undecided=False)
        return self._run(self._buffer, self._buffer_t, self._buffered_conds(), bound, final=True)

    def late_mask(self, ts_us: np.ndarray, released_us: int) -> np.ndarray:
        # Starts were decided assuming no row earlier than `_bound` would come.
        return ts_us < max(released_us, self._bound)

    # -- matching ------------------------------------------------------------------------
    def _step_columns(self, frame: pl.DataFrame) -> np.ndarray:
        """bool[n_steps, rows]: row satisfies step k (steps without `define`: every row)."""
        conds = np.ones((self._n_steps, frame.height), dtype=np.bool_)
        if self._conditions and frame.height:
            # Eager select: the lazy engine's optimiser costs more than it saves on two
            # or three predicates.
            values = frame.select(self._condition_exprs)
            for j, (k, _) in enumerate(self._conditions):
                conds[k] = values.to_series(j).to_numpy()
        return conds

    def _buffered_conds(self) -> np.ndarray:
        if self._buffer_conds is None:
            assert self._buffer is not None
            self._buffer_conds = self._step_columns(self._buffer)
        return self._buffer_conds

    def _group_ids(self, frame: pl.DataFrame) -> tuple[np.ndarray, int]:
        n = frame.height
        if not self.keys:
            return np.zeros(n, np.int64), 1
        if len(self.keys) == 1:
            ids, firsts = column_codes(frame.get_column(self.keys[0]))
        else:
            ids, firsts = frame_codes(frame[list(self.keys)])
        return ids, len(firsts)

    def _run(self, frame: pl.DataFrame, t: np.ndarray, conds: np.ndarray, bound: int, final: bool) -> pl.DataFrame:
        """Match over `frame` (buffered rows then new rows, in (TIME, SEQ) order) whose
        TIME is `t` and step columns `conds`."""
        self._bound = max(self._bound, bound)
        n = frame.height
        if n == 0:
            return self._release(None, final, has_undecided=False)
        ids, n_groups = self._group_ids(frame)
        perm, offsets = counting_sort(ids, n_groups)
        t_sorted = t[perm]
        p = self.program
        # np.take, not conds[:, perm]: the kernel is compiled for C-contiguous arrays.
        m_first, m_last, m_counts, undecided = match_groups(
            t_sorted, np.take(conds, perm, axis=1), offsets, p.op, p.a, p.b, p.memo, p.n_registers, p.first,
            self._within, int(bound), final,
        )  # fmt: skip
        is_open = undecided >= 0
        if is_open.any():
            # Keep each open group's rows from its undecided start on.  Sorting is stable,
            # so those are the group's rows at or after the start's row in the frame.
            start_row = np.full(n_groups, n, np.int64)
            start_row[is_open] = perm[undecided[is_open]]
            self._earliest_undecided = int(t[start_row[is_open]].min())
            keep = np.flatnonzero(np.arange(n) >= start_row[ids])
            if len(keep) == n:
                if frame.n_chunks() > _MAX_CHUNKS:
                    frame = frame.rechunk()
                self._buffer, self._buffer_t, self._buffer_conds = frame, t, conds
            else:
                self._buffer, self._buffer_t, self._buffer_conds = take(frame, keep), t[keep], conds[:, keep]
        else:
            self._buffer, self._buffer_t, self._buffer_conds = None, np.empty(0, np.int64), None
            self._earliest_undecided = _NO_TIME
        records = None
        if len(m_first):
            # The frame is in (TIME, SEQ) order, so ordering matches by their last row's
            # position orders them for output without a frame sort.
            last = perm[m_last]
            order = np.argsort(last, kind="stable")
            m_counts = m_counts[order]
            extra = [
                pl.Series("match_start", t_sorted[m_first[order]], dtype=pl.Int64),
                *(pl.Series(name, m_counts[:, k], dtype=pl.Int64) for k, name in enumerate(self._count_names)),
            ]
            records = take(frame, last[order])
            records = records.with_columns(extra) if self._records_replace else records.hstack(extra)
        return self._release(records, final, has_undecided=bool(is_open.any()))

    def _release(self, records: pl.DataFrame | None, final: bool, has_undecided: bool) -> pl.DataFrame:
        """Emit decided matches in (ts, last row) order; hold back those an undecided
        start could still precede, so the output order does not depend on batching."""
        if self._held is None:
            pending = records  # already in order
        elif records is None:
            pending = self._held
        else:
            both = concat_rows(self._held, records)
            order = np.lexsort((both.get_column(SEQ).to_numpy(), both.get_column(TIME).to_numpy()))
            pending = take(both, order)
        if pending is None or pending.height == 0:
            self._held = None
            return self.rule.empty_output()
        if final or not has_undecided:
            out, self._held = pending, None
        else:
            early = pending.get_column(TIME).to_numpy() < self._earliest_undecided
            n_early = int(early.sum())
            if n_early == 0:  # the common case while a start is open: nothing to build
                self._held = pending
                return self.rule.empty_output()
            if n_early == pending.height:
                out, self._held = pending, None
            elif early[:n_early].all():  # pending is in TIME order: early rows come first
                out, self._held = pending.slice(0, n_early), pending.slice(n_early)
            else:
                out, self._held = take(pending, np.flatnonzero(early)), take(pending, np.flatnonzero(~early))
        return finalize(self.rule, out, {"ts": TIME})

    # -- state ---------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "buffer": frame_to_bytes(self._buffer),
            "held": frame_to_bytes(self._held),
            "max_t": self._max_t,
            "bound": self._bound,
            "earliest_undecided": self._earliest_undecided,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self._buffer = frame_from_bytes(state["buffer"])
        self._buffer_t = np.empty(0, np.int64) if self._buffer is None else self._buffer.get_column(TIME).to_numpy()
        self._buffer_conds = None
        self._held = frame_from_bytes(state["held"])
        self._max_t = int(state["max_t"])
        self._bound = int(state["bound"])
        self._earliest_undecided = int(state["earliest_undecided"])
