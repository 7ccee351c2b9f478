"""Anomaly rules (LANGUAGE.md §5.6): zscore, iqr and ema over per-group baselines.

Group keys map to slots (`GroupTable`); each slot's baseline is one row of a
flat float64 array (header, ring buffer, and for iqr the same values kept sorted;
see `anomaly_kernels`), so the whole batch is one Numba pass.  The array is the
executor's state: serialisable as it is.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from cepdsl.backends.numba.anomaly_kernels import ema_scan, ema_stats, iqr_scan, ring_values, run_scan, width_of, zscore_scan
from cepdsl.backends.numba.row_buffers import take
from cepdsl.executor import TIME, Executor, Progress, finalize
from cepdsl.kernels.groups import GroupTable
from cepdsl.plan import AnomalySpec, RulePlan

_METHODS = ("zscore", "iqr", "ema")


def _spec_of(rule: RulePlan) -> AnomalySpec:
    """The rule's anomaly spec, of a method this executor has a kernel for."""
    spec = rule.anomaly
    assert spec is not None
    if spec.method not in _METHODS:
        raise NotImplementedError(f"rule {rule.id}: anomaly method {spec.method!r}")
    return spec


class AnomalyExecutor(Executor):
    STATE_VERSION = 2

    def __init__(self, rule: RulePlan) -> None:
        super().__init__(rule)
        self.spec = _spec_of(rule)
        self.n_max = max(1, min(int(self.spec.baseline), 1000))
        self.width = width_of(self.spec.method, self.n_max)
        self.groups = GroupTable({f.name: f.dtype for f in rule.group_by})
        self.st = np.zeros(0, np.float64)  # slot-major: slot s is st[s * width : (s + 1) * width]
        #: Every scored row, not only anomalies (the alert lifecycle's evaluations, §9.3):
        #: zscore/ema with no threshold, iqr with score 0 inside the fences.
        self.emit_all = False

    def _slots_used(self) -> int:
        return len(self.groups) if self.groups.keys else min(1, self.st.shape[0] // self.width)

    def _alloc(self, n_slots: int) -> None:
        have = self.st.shape[0] // self.width
        if n_slots <= have:
            return
        st = np.zeros(max(n_slots, 2 * have) * self.width, np.float64)
        st[: self.st.shape[0]] = self.st
        self.st = st

    def _scan(self, slots: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The method's kernel over values `x` of groups `slots` (`run_scan`)."""
        spec, st, w = self.spec, self.st, self.width
        need = max(int(spec.warmup), 1)  # a baseline of no values scores nothing
        threshold = -np.inf if self.emit_all else float(spec.threshold)
        if spec.method == "zscore":
            return run_scan(zscore_scan, slots, x, st, w, self.n_max, need, threshold)
        if spec.method == "iqr":
            return run_scan(iqr_scan, slots, x, st, w, self.n_max, need, float(spec.multiplier), self.emit_all)
        return run_scan(ema_scan, slots, x, st, w, need, float(spec.alpha), threshold)

    def process(self, rows: pl.DataFrame, progress: Progress) -> pl.DataFrame:
        if rows.height == 0:
            return self.rule.empty_output()
        slots = self.groups.slots(rows)
        self._alloc(len(self.groups))
        x = rows.get_column(self.spec.field).cast(pl.Float64).fill_null(np.nan).to_numpy()
        out_i, out_f = self._scan(slots, np.ascontiguousarray(x, dtype=np.float64))
        if out_i.shape[0] == 0:
            return self.rule.empty_output()
        spec = self.spec
        s1, s2 = spec.stat_columns
        records = take(rows, out_i[:, 0]).with_columns(
            pl.col(TIME).alias("ts"),
            pl.Series("score", out_f[:, 0], dtype=pl.Float64),
            pl.lit(spec.method, pl.String).alias("method"),
            pl.Series("baseline_n", out_i[:, 1], dtype=pl.Int64),
            pl.Series(s1, out_f[:, 1], dtype=pl.Float64),
            pl.Series(s2, out_f[:, 2], dtype=pl.Float64),
        )
        return finalize(self.rule, records)

    # -- baselines, for the HTTP API (read and changed between batches) -----------------
    def _slot(self, slot: int) -> np.ndarray | None:
        """Slot `slot`'s state row (a view); None before the state has room for it (a fresh
        baseline, as a zeroed row is)."""
        w = self.width
        return self.st[slot * w : (slot + 1) * w] if self.st.shape[0] >= (slot + 1) * w else None

    def baseline_values(self, slot: int) -> list[float] | None:
        """The values in slot `slot`'s baseline, oldest first; None for ema (it keeps none),
        or before the state has room for the slot."""
        row = self._slot(slot)
        return None if row is None or self.spec.method == "ema" else ring_values(row, self.n_max)

    def ema_baseline(self, slot: int) -> tuple[int, float, float] | None:
        """(values seen, mean, std) of an ema rule's slot; None for other methods, or before the
        state has room for the slot."""
        row = self._slot(slot)
        return None if row is None or self.spec.method != "ema" else ema_stats(row)

    def reset_baseline(self, slot: int) -> None:
        """Forget slot `slot`'s baseline (a zeroed slot is a fresh one)."""
        row = self._slot(slot)
        if row is not None:
            row[:] = 0.0

    def seed_baseline(self, slot: int, values: list[float] | np.ndarray) -> None:
        """Slot `slot`'s baseline afresh from `values` (oldest first), as seeing them in the
        stream would have left it: through the rule's kernel (sums, run counters, sorted copy)."""
        self._alloc(max(len(self.groups), slot + 1))
        self.reset_baseline(slot)
        x = np.ascontiguousarray(values, dtype=np.float64)
        self._scan(np.full(x.shape[0], slot, np.int64), x)

    # -- state ---------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"groups": self.groups.state(), "st": self.st[: self._slots_used() * self.width].copy()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.groups.load_state(state["groups"])
        self.st = np.array(state["st"], np.float64)
