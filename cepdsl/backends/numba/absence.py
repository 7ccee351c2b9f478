"""Absence rules (LANGUAGE.md §5.5): a group that goes silent for D fires at t + D.

Rows come in time order, so one pass with each group's last row (time, rank in
release order) in slot arrays finds every gap: a row at t' > last + D proves the deadline
last + D silent.  Such a deadline — and a last row's own deadline, once the
watermark passes it — fires when the watermark reaches it.  Between batches the
state is only each group's last row and the proven deadlines not yet due.
"""

from __future__ import annotations

from typing import Any

import numba as nb
import numpy as np
import polars as pl

from cepdsl.backends.numba.row_buffers import take
from cepdsl.executor import TIME, Executor, Progress, finalize
from cepdsl.kernels.groups import GroupTable
from cepdsl.kernels.prefetch import AHEAD, prefetch
from cepdsl.plan import RulePlan


@nb.njit(cache=True, nogil=True)
def silent_gaps(
    slots: np.ndarray,
    t: np.ndarray,
    first_rank: int,
    last_t: np.ndarray,
    last_rank: np.ndarray,
    state: np.ndarray,  # int8 per slot: 0 no row yet, 1 last row open, 2 last row's deadline fired
    d: int,
    out: np.ndarray,  # int64[4, n] out: slot, deadline, last_seen, rank of that row
) -> int:
    """Deadlines proven silent by a later row, written to `out`; returns how many.
    Updates each slot's last row in place.  Row i's rank is first_rank + i: ranks
    follow release order, i.e. (TIME, SEQ), across batches."""
    n = slots.shape[0]
    m = 0
    for i in range(n):
        if i + AHEAD < n:
            prefetch(last_t, slots[i + AHEAD])
            prefetch(last_rank, slots[i + AHEAD])
            prefetch(state, slots[i + AHEAD])
        s = slots[i]
        if state[s] == 1 and t[i] > last_t[s] + d:
            out[0, m] = s
            out[1, m] = last_t[s] + d
            out[2, m] = last_t[s]
            out[3, m] = last_rank[s]
            m += 1
        # A tie keeps the same deadline; the later row in input order stands for it.
        last_t[s] = t[i]
        last_rank[s] = first_rank + i
        state[s] = 1
    return m


def by_rank(items: np.ndarray) -> np.ndarray:
    """The columns of `items` (int64[4, n]) sorted by rank (row 3).

    Each rank is one row's (the last row of one deadline), so ranks are distinct integers,
    mostly of recent rows: placed by value over their range in one pass (`_placed`), where
    a sort of millions of deadlines took ~0.4 s. A range much wider than the count (an old
    silent group among few deadlines) is sorted instead."""
    n = items.shape[1]
    if n > 1:
        lo = int(items[3].min())
        span = int(items[3].max()) - lo + 1
        if span <= 4 * n + 1024 and n < 2**31:
            out, distinct = _placed(items, lo, span)
            if distinct:  # as they must be; else sort below
                return out
    order = np.argsort(items[3], kind="stable")
    # Row by row `take`: numpy's 2-D column gather (`items[:, order]`) is ~10x slower.
    return np.stack([np.take(items[r], order) for r in range(4)])


@nb.njit(cache=True, nogil=True)
def _placed(items: np.ndarray, lo: int, span: int) -> tuple[np.ndarray, bool]:
    """`items`' columns in rank order, ranks lo..lo+span-1 placed by value; False when two
    columns share a rank."""
    n = items.shape[1]
    at = np.full(span, -1, np.int32)  # n < 2**31 (checked by the caller): half the cache lines
    for i in range(n):
        k = items[3, i] - lo
        if at[k] >= 0:
            return items, False
        at[k] = i
    out = np.empty((4, n), np.int64)
    m = 0
    for k in range(span):
        i = at[k]
        if i >= 0:
            for r in range(4):
                out[r, m] = items[r, i]
            m += 1
    return out, True


class AbsenceExecutor(Executor):
    STATE_VERSION = 2

    def __init__(self, rule: RulePlan) -> None:
        super().__init__(rule)
        assert rule.absent is not None
        self.d = int(rule.absent.duration_us)
        self.groups = GroupTable({f.name: f.dtype for f in rule.group_by})
        self.last_t = np.zeros(0, np.int64)
        self.last_rank = np.zeros(0, np.int64)
        self.slot_state = np.zeros(0, np.int8)
        self.released = 0  # rows processed so far: the next row's rank
        # Proven deadlines not yet reached by the watermark: slot, deadline, last_seen, rank.
        self.due = np.zeros((4, 0), np.int64)
        self._fired_before = np.iinfo(np.int64).min + 1

    def _grow(self, n: int) -> None:
        if n <= self.last_t.shape[0]:
            return
        cap = max(n, 2 * self.last_t.shape[0], 16)
        for name, dtype in (("last_t", np.int64), ("last_rank", np.int64), ("slot_state", np.int8)):
            old = getattr(self, name)
            new = np.zeros(cap, dtype)
            new[: old.shape[0]] = old
            setattr(self, name, new)

    def late_mask(self, ts_us: np.ndarray, released_us: int) -> np.ndarray:
        # Deadlines before `_fired_before` were fired assuming no row earlier than it would come.
        return ts_us < max(released_us, self._fired_before)

    def process(self, rows: pl.DataFrame, progress: Progress) -> pl.DataFrame:
        if rows.height:
            slots = self.groups.slots(rows)
            self._grow(len(self.groups))
            out = np.empty((4, rows.height), np.int64)  # numpy: huge pages, few page faults
            m = silent_gaps(
                slots,
                np.ascontiguousarray(rows.get_column(TIME).to_numpy(), dtype=np.int64),
                self.released,
                self.last_t,
                self.last_rank,
                self.slot_state,
                self.d,
                out,
            )
            self.released += rows.height
            self.due = out[:, :m] if self.due.shape[1] == 0 else np.concatenate([self.due, out[:, :m]], axis=1)
        return self._fire(progress.watermark_us - 1)

    def advance(self, progress: Progress) -> pl.DataFrame:
        return self._fire(progress.watermark_us - 1)

    def finish(self, progress: Progress) -> pl.DataFrame:
        limit = progress.max_ts_us if progress.max_ts_us is not None else progress.watermark_us
        return self._fire(limit)

    def _fire(self, limit: int) -> pl.DataFrame:
        """Fire the deadlines ≤ `limit`: a row at the watermark itself may still come
        (it is not late), so while streaming the limit is watermark − 1µs."""
        self._fired_before = max(self._fired_before, limit + 1)
        n = len(self.groups) if self.groups.keys else (1 if self.slot_state.shape[0] else 0)
        open_slots = np.flatnonzero(self.slot_state[:n] == 1)
        open_slots = open_slots[self.last_t[open_slots] + self.d <= limit]
        self.slot_state[open_slots] = 2
        opened = np.stack([open_slots, self.last_t[open_slots] + self.d, self.last_t[open_slots], self.last_rank[open_slots]])
        if self.due.shape[1] and self.due[1].max() <= limit:
            now_due, self.due = self.due, np.zeros((4, 0), np.int64)
        else:
            now = np.flatnonzero(self.due[1] <= limit)
            keep = np.flatnonzero(self.due[1] > limit)
            now_due = np.stack([np.take(self.due[r], now) for r in range(4)])
            self.due = np.stack([np.take(self.due[r], keep) for r in range(4)])
        if now_due.shape[1] + opened.shape[1] == 0:
            return self.rule.empty_output()
        # By deadline, then the last row's arrival: deadline = last_seen + D, and ranks
        # follow (TIME, SEQ), so the rank alone orders them.
        fired = by_rank(np.concatenate([now_due, opened], axis=1))
        times = pl.DataFrame({"ts": fired[1], "last_seen": fired[2]}, schema={"ts": pl.Int64, "last_seen": pl.Int64})
        out = pl.concat([take(self.groups.table, fired[0]), times], how="horizontal") if self.groups.keys else times
        return finalize(self.rule, out)

    def state(self) -> dict[str, Any]:
        n = len(self.groups) if self.groups.keys else min(1, self.slot_state.shape[0])
        return {
            "groups": self.groups.state(),
            "last_t": self.last_t[:n].copy(),
            "last_rank": self.last_rank[:n].copy(),
            "slot_state": self.slot_state[:n].copy(),
            "released": self.released,
            "due": self.due.copy(),
            "fired_before": self._fired_before,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.groups.load_state(state["groups"])
        self.last_t = np.array(state["last_t"], np.int64)
        self.last_rank = np.array(state["last_rank"], np.int64)
        self.slot_state = np.array(state["slot_state"], np.int8)
        self.released = int(state["released"])
        self.due = np.array(state["due"], np.int64).reshape(4, -1)
        self._fired_before = int(state["fired_before"])
