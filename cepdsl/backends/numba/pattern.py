"""Pattern rules (LANGUAGE.md §5.4) as a compiled backtracking matcher.

Per call: the buffered rows (each group's rows from its earliest undecided start)
plus the new rows are numbered by group, the `define` conditions become one
boolean column per step, rows are put group by group with a stable counting sort,
and `match_groups` runs every group in one Numba pass.  See
docs/patterns-absence-anomaly.md for when a match is decided.

Small batches cost what their Polars calls cost (tens of µs each, whatever the
height), so per batch only the new rows are evaluated and coded: buffered rows keep
their time, step columns and group code as numpy arrays, and stay where they are in
the rows received (the buffer is a list of positions, compacted now and then).  A
batch that emits no match returns before building any frame.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from cepdsl.backends.numba.pattern_compile import compile_pattern
from cepdsl.backends.numba.pattern_match import match_rows, take_columns
from cepdsl.backends.numba.row_buffers import concat_rows, input_columns, positions, take
from cepdsl.executor import SEQ, TIME, Executor, Progress, finalize, frame_from_state, frame_state
from cepdsl.kernels.key_codes import StableCodes, column_codes, frame_codes
from cepdsl.kernels.polars_expressions import compile_many, compile_predicate
from cepdsl.plan import PatternSpec, RulePlan

_NO_TIME = np.iinfo(np.int64).min
_NO_ROWS = np.empty(0, np.int64)
#: The rows frame gets a chunk per batch and keeps rows no longer buffered (after the
#: first buffered one) until it is compacted: when it holds more than 4x the buffered
#: rows and more than this many...
_COMPACT_ROWS = 32768
#: ...or more chunks than this (gathers over many chunks get slow).
_MAX_CHUNKS = 32
#: `define` conditions that read one (non-float) column are evaluated once per distinct
#: value, the results kept by value; past this many values they are evaluated per row.
_MAX_VALUES = 4096
#: Group codes are kept across batches (each batch codes its new rows only); the table
#: is started afresh when it holds this many more keys than 4x the buffered rows.
_STALE_KEYS = 65536
#: From this many new rows on, a batch is not small: its conditions are evaluated per
#: row (one Polars select, ~5 ns a row, beats coding values at ~30) and...
_VALUE_ROWS = 8192
#: ...from this many, its groups are numbered afresh over buffered and new rows in one
#: pass (faster per row than coding against a table kept across batches).
_FRESH_GROUP_ROWS = 1 << 16


def _own(a: np.ndarray) -> np.ndarray:
    """`a` as a writable C-contiguous array (np.require costs several µs)."""
    flags = a.flags
    return a if flags.writeable and flags.c_contiguous else np.array(a, order="C")


class PatternExecutor(Executor):
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
        # A Polars select costs ~0.1 ms whatever the height; coding one column against
        # the values seen before costs a third of that, and values are few (`status`).
        self._value_column = self._single_condition_column(rule)
        self._values = StableCodes(1) if self._value_column is not None else None
        self._value_conds = np.ones((self._n_steps, 0), dtype=np.bool_)  # [step, value code]
        self._groups = StableCodes(len(self.keys)) if self.keys else None
        self._scratch = np.full(64, -1, np.int64)  # for `dense_ids`: longer than the largest code
        self._count_names = [f"{s}_count" for s in self.spec.steps]
        # An input field named like a record column is replaced, not duplicated.
        self._records_replace = bool(self._column_set & {"match_start", *self._count_names})
        self._empty: tuple[RulePlan, pl.DataFrame] | None = None
        # The buffer (each group's rows from its earliest undecided start) is `_rows` at
        # positions `_live`; their TIME, step columns and group codes (None: not known
        # yet, after load_state or a fresh code table).
        self._rows: pl.DataFrame | None = None
        self._live = _NO_ROWS
        self._buffer_t = _NO_ROWS
        self._buffer_conds: np.ndarray | None = None
        self._buffer_codes: np.ndarray | None = None
        # Decided matches that may not be emitted yet (order): frames, each in (TIME, SEQ)
        # order, merged only when some are emitted; their TIME and SEQ, in part order.
        self._held: list[pl.DataFrame] = []
        self._held_t = _NO_ROWS
        self._held_seq = _NO_ROWS
        self._max_t = _NO_TIME  # largest event time released to this rule
        self._bound = _NO_TIME  # rows earlier than this can no longer be taken
        self._earliest_undecided = _NO_TIME  # time of the earliest undecided start, if any

    @property
    def _buffer(self) -> pl.DataFrame | None:
        """The buffered rows as a frame (snapshots, tests)."""
        if self._rows is None:
            return None
        return self._rows if len(self._live) == self._rows.height else take(self._rows, self._live)

    # -- Executor ----------------------------------------------------------------------
    def process(self, rows: pl.DataFrame, progress: Progress) -> pl.DataFrame:
        names = rows.columns
        # Any order of the input columns will do (outputs are built by name): no select.
        if names != self.columns and (len(names) != len(self.columns) or not self._column_set.issuperset(names)):
            rows = rows[self.columns]
        t_new = rows.get_column(TIME).to_numpy()
        if rows.height:
            self._max_t = max(self._max_t, int(t_new.max()))
        bound = max(self._max_t, progress.watermark_us)
        fresh = rows.height >= _FRESH_GROUP_ROWS  # group codes: None, numbered in `_run`
        if self._rows is None:
            codes = None if fresh else self._group_codes(rows)
            return self._run(rows, None, t_new, self._step_columns(rows), codes, bound, final=False)
        conds_old, codes_old = self._buffered(codes=not fresh)
        n_old = self._rows.height
        return self._run(
            concat_rows(self._rows, rows),
            np.concatenate((self._live, np.arange(n_old, n_old + rows.height, dtype=np.int64))),
            np.concatenate((self._buffer_t, t_new)),
            np.concatenate((conds_old, self._step_columns(rows)), axis=1),
            None if codes_old is None else np.concatenate((codes_old, self._group_codes(rows))),
            bound,
            final=False,
        )

    def advance(self, progress: Progress) -> pl.DataFrame:
        w = self.spec.within_us
        bound = max(self._max_t, progress.watermark_us)
        if self._rows is None or w is None or bound - self._earliest_undecided <= w:
            return self._empty_output()
        return self._run(self._rows, self._live, self._buffer_t, *self._buffered(), bound, final=False)

    def finish(self, progress: Progress) -> pl.DataFrame:
        bound = max(self._max_t, progress.watermark_us)
        if self._rows is None:
            self._bound = max(self._bound, bound)
            return self._release(None, final=True, has_undecided=False)
        return self._run(self._rows, self._live, self._buffer_t, *self._buffered(), bound, final=True)

    def late_mask(self, ts_us: np.ndarray, released_us: int) -> np.ndarray:
        # Starts were decided assuming no row earlier than `_bound` would come.
        return ts_us < max(released_us, self._bound)

    def _empty_output(self) -> pl.DataFrame:
        # `rule.empty_output()` hashes the rule's output fields on every call.
        if self._empty is None or self._empty[0] is not self.rule:
            self._empty = (self.rule, self.rule.empty_output())
        return self._empty[1].clear()

    # -- per-row columns ---------------------------------------------------------------
    def _single_condition_column(self, rule: RulePlan) -> str | None:
        """The one column every `define` reads, if its values can be told apart exactly
        (floats cannot: -0.0 and 0.0 are one key)."""
        names = {n for _, c in self._conditions for n in compile_predicate(c).meta.root_names()}
        if len(names) != 1:
            return None
        (name,) = names
        dtype = next((f.dtype for f in rule.stream.fields if f.name == name), None)
        if dtype is None or not (dtype == pl.String or dtype == pl.Boolean or dtype.is_integer()):
            return None
        return name

    def _step_columns(self, frame: pl.DataFrame) -> np.ndarray:
        """bool[n_steps, rows]: row satisfies step k (steps without `define`: every row)."""
        if self._values is not None and 0 < frame.height < _VALUE_ROWS:
            column = frame.get_column(self._value_column)  # type: ignore[arg-type]
            codes, new = self._values.codes([column])
            if len(self._values) > _MAX_VALUES:
                self._values, self._value_conds = None, self._value_conds[:, :0]
            else:
                if len(new):
                    sample = column[positions(new)].to_frame()
                    self._value_conds = np.concatenate((self._value_conds, self._evaluate(sample)), axis=1)
                return take_columns(self._value_conds, codes)
        return self._evaluate(frame)

    def _evaluate(self, frame: pl.DataFrame) -> np.ndarray:
        conds = np.ones((self._n_steps, frame.height), dtype=np.bool_)
        if self._conditions and frame.height:
            # Eager select: the lazy engine's optimiser costs more than it saves on two
            # or three predicates.
            values = frame.select(self._condition_exprs)
            for j, (k, _) in enumerate(self._conditions):
                conds[k] = values.to_series(j).to_numpy()
        return conds

    def _group_codes(self, frame: pl.DataFrame) -> np.ndarray:
        """Each row's group code (the same for the same key in every batch: exact)."""
        if self._groups is None:
            return np.zeros(frame.height, np.int64)
        codes, _ = self._groups.codes([frame.get_column(k) for k in self.keys])
        return codes

    def _buffered(self, codes: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """The buffered rows' step columns and (if `codes`) group codes, worked out from the
        rows where not known (after load_state; codes after a fresh code table)."""
        conds, kept = self._buffer_conds, self._buffer_codes
        if conds is None or (codes and kept is None):
            buffer = self._buffer
            assert buffer is not None
            if conds is None:
                conds = self._buffer_conds = self._step_columns(buffer)
            if codes and kept is None:
                kept = self._buffer_codes = self._group_codes(buffer)
        return conds, kept if codes else None

    def _fresh_group_ids(self, rows: pl.DataFrame, live: np.ndarray | None, n: int) -> tuple[np.ndarray, int]:
        """Group ids 0.. numbered over these rows alone, and how many."""
        if not self.keys:
            return np.zeros(n, np.int64), 1
        at = None if live is None else positions(live)
        if len(self.keys) == 1:
            key = rows.get_column(self.keys[0])
            ids, firsts = column_codes(key if at is None else key[at])
        else:
            keys = rows[list(self.keys)]
            ids, firsts = frame_codes(keys if at is None else keys[at])
        return ids, len(firsts)

    # -- matching ------------------------------------------------------------------------
    def _run(
        self,
        rows: pl.DataFrame,
        live: np.ndarray | None,
        t: np.ndarray,
        conds: np.ndarray,
        codes: np.ndarray | None,
        bound: int,
        final: bool,
    ) -> pl.DataFrame:
        """Match over `rows` at positions `live` (None: all of them), in (TIME, SEQ)
        order: buffered rows, then new rows.  `t`, `conds` and `codes` (group codes
        kept across batches; None: number the groups here) are theirs."""
        self._bound = max(self._bound, bound)
        n = len(t)
        if n == 0:
            return self._release(None, final, has_undecided=False)
        kept_codes = codes is not None
        if codes is None:
            codes, n_codes = self._fresh_group_ids(rows, live, n)
            # These ids are not the kept codes: the buffered rows are coded again next time,
            # against a fresh table (the old one would only hold keys no longer buffered).
            self._groups = StableCodes(len(self.keys)) if self.keys else None
        else:
            n_codes = len(self._groups) if self._groups is not None else 1
        if n_codes > self._scratch.shape[0]:
            self._scratch = np.full(2 * n_codes, -1, np.int64)
        p = self.program
        # One array layout for the kernel, so it is compiled (and cached) once: the
        # TIME column's numpy view is read-only, kept step columns are strided.
        t, conds, codes = _own(t), _own(conds), _own(codes)
        last, start_t, counts, keep, earliest = match_rows(
            t, conds, codes, self._scratch, p.op, p.a, p.b, p.memo, p.n_registers, p.first,
            self._within, int(bound), final,
        )  # fmt: skip
        has_undecided = len(keep) > 0  # an open group keeps at least its start row
        records = None
        if len(last):
            extra = [  # int64 arrays: Series of numpy's dtype, no cast
                pl.Series("match_start", start_t),
                *(pl.Series(name, counts[:, k]) for k, name in enumerate(self._count_names)),
            ]
            records = take(rows, last if live is None else live[last])
            records = records.with_columns(extra) if self._records_replace else records.hstack(extra)
        if has_undecided:
            self._earliest_undecided = int(earliest)
            if len(keep) == n:
                live = np.arange(n, dtype=np.int64) if live is None else live
                self._keep(rows, live, t, conds, codes if kept_codes else None)
            else:
                live = keep if live is None else live[keep]
                self._keep(rows, live, t[keep], conds[:, keep], codes[keep] if kept_codes else None)
        else:
            self._rows, self._live, self._buffer_t = None, _NO_ROWS, _NO_ROWS
            self._buffer_conds = self._buffer_codes = None
            self._earliest_undecided = _NO_TIME
        if self._groups is not None and len(self._groups) > 4 * len(self._live) + _STALE_KEYS:
            # Keys no longer buffered would stay in the table for ever: start it afresh
            # (the buffered rows are coded again on the next call).
            self._groups, self._buffer_codes = StableCodes(len(self.keys)), None
        return self._release(records, final, has_undecided)

    def _keep(self, rows: pl.DataFrame, live: np.ndarray, t: np.ndarray, conds: np.ndarray, codes: np.ndarray | None) -> None:
        if live[0] > 0:  # rows before the first buffered one: dropped by a zero-copy slice
            rows, live = rows.slice(int(live[0])), live - live[0]
        if rows.height > max(4 * len(live), _COMPACT_ROWS) or rows.n_chunks() > _MAX_CHUNKS:
            rows, live = take(rows, live), np.arange(len(live), dtype=np.int64)
        self._rows, self._live, self._buffer_t = rows, live, t
        self._buffer_conds, self._buffer_codes = conds, codes

    def _release(self, records: pl.DataFrame | None, final: bool, has_undecided: bool) -> pl.DataFrame:
        """Emit decided matches in (ts, last row) order; hold back those an undecided
        start could still precede, so the output order does not depend on batching."""
        if records is not None and records.height:
            self._held.append(records)
            self._held_t = np.concatenate((self._held_t, records.get_column(TIME).to_numpy()))
            self._held_seq = np.concatenate((self._held_seq, records.get_column(SEQ).to_numpy()))
        n = len(self._held_t)
        n_out = n if final or not has_undecided else int(np.count_nonzero(self._held_t < self._earliest_undecided))
        if n_out == 0:  # the common case while a start is open: nothing to build
            return self._empty_output()
        pending, order = self._merged_held()
        rest: pl.DataFrame | None = None
        if order is None:  # already in order: slices, no gathers
            out = pending if n_out == n else pending.slice(0, n_out)
            if n_out < n:
                rest = pending.slice(n_out)
                if rest.n_chunks() > _MAX_CHUNKS:
                    rest = rest.rechunk()
            self._held_t, self._held_seq = self._held_t[n_out:], self._held_seq[n_out:]
        else:
            # In (TIME, SEQ) order the matches before the earliest undecided start come first.
            out = take(pending, order[:n_out])
            if n_out < n:
                rest = take(pending, order[n_out:])
            self._held_t, self._held_seq = self._held_t[order[n_out:]], self._held_seq[order[n_out:]]
        self._held = [] if rest is None else [rest]
        return finalize(self.rule, out, {"ts": TIME})

    def _merged_held(self) -> tuple[pl.DataFrame, np.ndarray | None]:
        """The held matches as one frame, and the order that sorts it (None: sorted;
        parts are, and usually follow each other: a match ending on a row it needed
        no later row to decide is decided in the batch of that row)."""
        parts = self._held
        if len(parts) == 1:
            return parts[0], None
        merged = parts[0]
        for part in parts[1:]:
            merged = concat_rows(merged, part)
        order = np.lexsort((self._held_seq, self._held_t))
        return merged, None if np.array_equal(order, np.arange(len(order))) else order

    # -- state ---------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "buffer": frame_state(self._buffer),
            "held": frame_state(self._held_frame()),
            "max_t": self._max_t,
            "bound": self._bound,
            "earliest_undecided": self._earliest_undecided,
        }

    def _held_frame(self) -> pl.DataFrame | None:
        if not self._held:
            return None
        merged, order = self._merged_held()
        return merged if order is None else take(merged, order)

    def load_state(self, state: dict[str, Any]) -> None:
        self._rows = frame_from_state(state["buffer"])
        if self._rows is None:
            self._live, self._buffer_t = _NO_ROWS, _NO_ROWS
        else:
            self._live = np.arange(self._rows.height, dtype=np.int64)
            self._buffer_t = self._rows.get_column(TIME).to_numpy()
        self._buffer_conds = self._buffer_codes = None
        held = frame_from_state(state["held"])
        if held is None or held.height == 0:
            self._held, self._held_t, self._held_seq = [], _NO_ROWS, _NO_ROWS
        else:
            self._held = [held]
            self._held_t, self._held_seq = held.get_column(TIME).to_numpy(), held.get_column(SEQ).to_numpy()
        self._max_t = int(state["max_t"])
        self._bound = int(state["bound"])
        self._earliest_undecided = int(state["earliest_undecided"])
