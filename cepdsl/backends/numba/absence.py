"""Absence rules (LANGUAGE.md §5.5): a group that goes silent for D fires at t + D.

Rows come in time order, so one pass with each group's last row (time, seq) in
a slot array finds every gap: a row at t' > last + D proves the deadline
last + D silent.  Such a deadline — and a last row's own deadline, once the
watermark passes it — fires when the watermark reaches it.  Between batches the
state is only each group's last row and the proven deadlines not yet due.
"""

from __future__ import annotations

from typing import Any

import numba as nb
import numpy as np
import polars as pl

from cepdsl.backends.base import SEQ, TIME, Executor, Progress, finalize
from cepdsl.backends.numba.frames import take
from cepdsl.backends.numba.groups import GroupTable
from cepdsl.plan import RulePlan


@nb.njit(cache=True)
def silent_gaps(
    slots: np.ndarray,
    t: np.ndarray,
    seq: np.ndarray,
    last_t: np.ndarray,
    last_seq: np.ndarray,
    state: np.ndarray,  # int8 per slot: 0 no row yet, 1 last row open, 2 last row's deadline fired
    d: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Deadlines proven silent by a later row: (slot, deadline, last_seen, seq of that row).
    Updates each slot's last row in place."""
    n = slots.shape[0]
    o_slot = np.empty(n, np.int64)
    o_dead = np.empty(n, np.int64)
    o_seen = np.empty(n, np.int64)
    o_seq = np.empty(n, np.int64)
    m = 0
    for i in range(n):
        s = slots[i]
        if state[s] == 1 and t[i] > last_t[s] + d:
            o_slot[m] = s
            o_dead[m] = last_t[s] + d
            o_seen[m] = last_t[s]
            o_seq[m] = last_seq[s]
            m += 1
        # A tie keeps the same deadline; the later row in input order stands for it.
        last_t[s] = t[i]
        last_seq[s] = seq[i]
        state[s] = 1
    return o_slot[:m].copy(), o_dead[:m].copy(), o_seen[:m].copy(), o_seq[:m].copy()


class AbsenceExecutor(Executor):
    STATE_VERSION = 1

    def __init__(self, rule: RulePlan) -> None:
        super().__init__(rule)
        assert rule.absent is not None
        self.d = int(rule.absent.duration_us)
        self.groups = GroupTable({f.name: f.dtype for f in rule.group_by})
        self.last_t = np.zeros(0, np.int64)
        self.last_seq = np.zeros(0, np.int64)
        self.slot_state = np.zeros(0, np.int8)
        # Proven deadlines not yet reached by the watermark: slot, deadline, last_seen, seq.
        self.due = np.zeros((4, 0), np.int64)
        self._fired_before = np.iinfo(np.int64).min + 1

    def _grow(self, n: int) -> None:
        if n <= self.last_t.shape[0]:
            return
        cap = max(n, 2 * self.last_t.shape[0], 16)
        for name, dtype in (("last_t", np.int64), ("last_seq", np.int64), ("slot_state", np.int8)):
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
            found = silent_gaps(
                slots,
                np.ascontiguousarray(rows.get_column(TIME).to_numpy(), dtype=np.int64),
                np.ascontiguousarray(rows.get_column(SEQ).to_numpy(), dtype=np.int64),
                self.last_t,
                self.last_seq,
                self.slot_state,
                self.d,
            )
            self.due = np.concatenate([self.due, np.stack(found)], axis=1)
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
        opened = np.stack([open_slots, self.last_t[open_slots] + self.d, self.last_t[open_slots], self.last_seq[open_slots]])
        now = self.due[1] <= limit
        fired = np.concatenate([self.due[:, now], opened], axis=1)
        self.due = self.due[:, ~now]
        if fired.shape[1] == 0:
            return self.rule.empty_output()
        order = np.lexsort((fired[3], fired[1]))  # by deadline, then the last row's arrival
        fired = fired[:, order]
        times = pl.DataFrame({"ts": fired[1], "last_seen": fired[2]}, schema={"ts": pl.Int64, "last_seen": pl.Int64})
        out = pl.concat([take(self.groups.table, fired[0]), times], how="horizontal") if self.groups.keys else times
        return finalize(self.rule, out)

    def state(self) -> dict[str, Any]:
        n = len(self.groups) if self.groups.keys else min(1, self.slot_state.shape[0])
        return {
            "groups": self.groups.state(),
            "last_t": self.last_t[:n].copy(),
            "last_seq": self.last_seq[:n].copy(),
            "slot_state": self.slot_state[:n].copy(),
            "due": self.due.copy(),
            "fired_before": self._fired_before,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.groups.load_state(state["groups"])
        self.last_t = np.array(state["last_t"], np.int64)
        self.last_seq = np.array(state["last_seq"], np.int64)
        self.slot_state = np.array(state["slot_state"], np.int8)
        self.due = np.array(state["due"], np.int64).reshape(4, -1)
        self._fired_before = int(state["fired_before"])
