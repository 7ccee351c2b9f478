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

from cepdsl.backends.numba.anomaly_kernels import ema_scan, iqr_scan, run_scan, width_of, zscore_scan
from cepdsl.backends.numba.row_buffers import take
from cepdsl.executor import TIME, Executor, Progress, finalize
from cepdsl.kernels.groups import GroupTable
from cepdsl.plan import AnomalySpec, RulePlan


class AnomalyExecutor(Executor):
    STATE_VERSION = 2

    def __init__(self, rule: RulePlan) -> None:
        super().__init__(rule)
        assert rule.anomaly is not None
        self.spec: AnomalySpec = rule.anomaly
        if self.spec.method not in ("zscore", "iqr", "ema"):
            raise NotImplementedError(f"rule {rule.id}: anomaly method {self.spec.method!r}")
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

    def process(self, rows: pl.DataFrame, progress: Progress) -> pl.DataFrame:
        if rows.height == 0:
            return self.rule.empty_output()
        slots = self.groups.slots(rows)
        self._alloc(len(self.groups))
        x = rows.get_column(self.spec.field).cast(pl.Float64).fill_null(np.nan).to_numpy()
        x = np.ascontiguousarray(x, dtype=np.float64)
        spec, st, w = self.spec, self.st, self.width
        threshold = -np.inf if self.emit_all else float(spec.threshold)
        if spec.method == "zscore":
            out_i, out_f = run_scan(zscore_scan, slots, x, st, w, self.n_max, int(spec.warmup), threshold)
        elif spec.method == "iqr":
            out_i, out_f = run_scan(iqr_scan, slots, x, st, w, self.n_max, int(spec.warmup), float(spec.multiplier), self.emit_all)
        else:
            out_i, out_f = run_scan(ema_scan, slots, x, st, w, int(spec.warmup), float(spec.alpha), threshold)
        if out_i.shape[0] == 0:
            return self.rule.empty_output()
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

    def state(self) -> dict[str, Any]:
        return {"groups": self.groups.state(), "st": self.st[: self._slots_used() * self.width].copy()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.groups.load_state(state["groups"])
        self.st = np.array(state["st"], np.float64)
