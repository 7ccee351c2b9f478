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
from cepdsl.backends.numba.groups import counting_sort, group_ids
from cepdsl.backends.numba.pattern_compile import compile_pattern
from cepdsl.backends.numba.pattern_match import match_groups
from cepdsl.backends.polars import evaluate_many
from cepdsl.plan import PatternSpec, RulePlan

_NO_TIME = np.iinfo(np.int64).min


class PatternExecutor(Executor):
    STATE_VERSION = 1

    def __init__(self, rule: RulePlan) -> None:
        super().__init__(rule)
        assert rule.pattern is not None
        self.spec: PatternSpec = rule.pattern
        self.program = compile_pattern(self.spec)
        self.keys = rule.group_keys
        self.columns = input_columns(rule)
        self._conditions = [(k, c) for k, (_, c) in enumerate(self.spec.defines) if c is not None]
        self._buffer: pl.DataFrame | None = None  # rows from each group's earliest undecided start
        self._held: pl.DataFrame | None = None  # decided matches that may not be emitted yet (order)
        self._max_t = _NO_TIME  # largest event time released to this rule
        self._bound = _NO_TIME  # rows earlier than this can no longer be taken
        self._earliest_undecided = _NO_TIME  # time of the earliest undecided start, if any

    # -- Executor ----------------------------------------------------------------------
    def process(self, rows: pl.DataFrame, progress: Progress) -> pl.DataFrame:
        rows = rows.select(self.columns)
        if rows.height:
            self._max_t = max(self._max_t, int(rows.get_column(TIME).max()))  # type: ignore[arg-type]
        frame = concat_rows(self._buffer, rows)
        return self._run(frame, max(self._max_t, progress.watermark_us), final=False)

    def advance(self, progress: Progress) -> pl.DataFrame:
        w = self.spec.within_us
        bound = max(self._max_t, progress.watermark_us)
        if self._buffer is None or w is None or bound - self._earliest_undecided <= w:
            return self.rule.empty_output()
        return self._run(self._buffer, bound, final=False)

    def finish(self, progress: Progress) -> pl.DataFrame:
        frame = self._buffer if self._buffer is not None else pl.DataFrame()
        return self._run(frame, max(self._max_t, progress.watermark_us), final=True)

    def late_mask(self, ts_us: np.ndarray, released_us: int) -> np.ndarray:
        # Starts were decided assuming no row earlier than `_bound` would come.
        return ts_us < max(released_us, self._bound)

    # -- matching ------------------------------------------------------------------------
    def _step_columns(self, frame: pl.DataFrame, perm: np.ndarray) -> np.ndarray:
        n = frame.height
        conds = np.ones((len(self.spec.steps), n), dtype=np.bool_)
        if self._conditions:
            values = evaluate_many(frame, [c for _, c in self._conditions])
            for j, (k, _) in enumerate(self._conditions):
                conds[k] = values.to_series(j).to_numpy()[perm]
        return conds

    def _run(self, frame: pl.DataFrame, bound: int, final: bool) -> pl.DataFrame:
        self._bound = max(self._bound, bound)
        if frame.height == 0:
            return self._release(None, final, has_undecided=False)
        ids, firsts = group_ids(frame, self.keys)
        perm, offsets = counting_sort(ids, len(firsts))
        t = np.ascontiguousarray(frame.get_column(TIME).to_numpy()[perm])
        conds = self._step_columns(frame, perm)
        p = self.program
        within = -1 if self.spec.within_us is None else int(self.spec.within_us)
        m_first, m_last, m_counts, undecided = match_groups(
            t, conds, offsets, p.op, p.a, p.b, p.memo, p.n_registers, p.first, within, int(bound), final
        )
        open_groups = np.flatnonzero(undecided >= 0)
        if len(open_groups):
            keep = np.concatenate([perm[undecided[g] : offsets[g + 1]] for g in open_groups])
            keep.sort()  # back to arrival order, so the buffer stays time-ordered per group
            self._buffer = take(frame, keep)
            self._earliest_undecided = int(t[undecided[open_groups]].min())
        else:
            self._buffer = None
            self._earliest_undecided = _NO_TIME
        records = None
        if len(m_first):
            # The frame is in (TIME, SEQ) order, so ordering matches by their last row's
            # position orders them for output without a frame sort.
            order = np.argsort(perm[m_last], kind="stable")
            m_first, m_last, m_counts = m_first[order], m_last[order], m_counts[order]
            records = take(frame, perm[m_last]).with_columns(
                pl.Series("match_start", t[m_first], dtype=pl.Int64),
                *(pl.Series(f"{s}_count", m_counts[:, k], dtype=pl.Int64) for k, s in enumerate(self.spec.steps)),
            )
        return self._release(records, final, has_undecided=len(open_groups) > 0)

    def _release(self, records: pl.DataFrame | None, final: bool, has_undecided: bool) -> pl.DataFrame:
        """Emit decided matches in (ts, last row) order; hold back those an undecided
        start could still precede, so the output order does not depend on batching."""
        if self._held is None:
            pending = records  # already in order
        else:
            pending = self._held if records is None else concat_rows(self._held, records).sort([TIME, SEQ])
        if pending is None or pending.height == 0:
            self._held = None
            return self.rule.empty_output()
        if final or not has_undecided:
            out, self._held = pending, None
        else:
            early = pending.get_column(TIME) < self._earliest_undecided
            out, self._held = pending.filter(early), pending.filter(~early)
            if self._held.height == 0:
                self._held = None
        return finalize(self.rule, out.with_columns(pl.col(TIME).alias("ts")))

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
        self._held = frame_from_bytes(state["held"])
        self._max_t = int(state["max_t"])
        self._bound = int(state["bound"])
        self._earliest_undecided = int(state["earliest_undecided"])
