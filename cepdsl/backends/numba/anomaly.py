"""Anomaly rules (LANGUAGE.md §5.6): zscore, iqr and ema over per-group baselines.

Group keys map to slots (`GroupTable`); each slot's baseline lives in rows of
compact 2-D numpy arrays (ring buffer, and for iqr the same values kept sorted),
so the whole batch is one Numba pass (`anomaly_kernels`).  The arrays are the
executor's state: serialisable as they are.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from cepdsl.backends.base import TIME, Executor, Progress, finalize
from cepdsl.backends.numba.anomaly_kernels import ema_scan, iqr_scan, zscore_scan
from cepdsl.backends.numba.frames import take
from cepdsl.backends.numba.groups import GroupTable
from cepdsl.plan import AnomalySpec, RulePlan

#: Per method, the state arrays: name → (dtype, per-slot shape suffix uses the baseline size).
_ARRAYS: dict[str, tuple[tuple[str, Any, bool], ...]] = {
    "zscore": (
        ("ring", np.float64, True),
        ("count", np.int64, False),
        ("head", np.int64, False),
        ("shift", np.float64, False),
        ("s1", np.float64, False),
        ("s2", np.float64, False),
        ("since", np.int64, False),
        ("eq_run", np.int64, False),
    ),
    "iqr": (
        ("ring", np.float64, True),
        ("ordered", np.float64, True),
        ("count", np.int64, False),
        ("head", np.int64, False),
    ),
    "ema": (
        ("count", np.int64, False),
        ("mean", np.float64, False),
        ("var", np.float64, False),
    ),
}


class AnomalyExecutor(Executor):
    STATE_VERSION = 1

    def __init__(self, rule: RulePlan) -> None:
        super().__init__(rule)
        assert rule.anomaly is not None
        self.spec: AnomalySpec = rule.anomaly
        if self.spec.method not in _ARRAYS:
            raise NotImplementedError(f"rule {rule.id}: anomaly method {self.spec.method!r}")
        self.n_max = max(1, min(int(self.spec.baseline), 1000))
        self.groups = GroupTable({f.name: f.dtype for f in rule.group_by})
        self.arrays: dict[str, np.ndarray] = {}
        self._alloc(0)

    def _alloc(self, n_slots: int) -> None:
        cap = n_slots
        if self.arrays:
            have = self.arrays["count"].shape[0]
            if n_slots <= have:
                return
            cap = max(n_slots, 2 * have)
        new: dict[str, np.ndarray] = {}
        for name, dtype, per_value in _ARRAYS[self.spec.method]:
            shape = (cap, self.n_max) if per_value else (cap,)
            arr = np.zeros(shape, dtype)
            old = self.arrays.get(name)
            if old is not None:
                arr[: old.shape[0]] = old
            new[name] = arr
        self.arrays = new

    def process(self, rows: pl.DataFrame, progress: Progress) -> pl.DataFrame:
        if rows.height == 0:
            return self.rule.empty_output()
        slots = self.groups.slots(rows)
        self._alloc(len(self.groups))
        x = rows.get_column(self.spec.field).cast(pl.Float64).fill_null(np.nan).to_numpy()
        x = np.ascontiguousarray(x, dtype=np.float64)
        a, spec = self.arrays, self.spec
        if spec.method == "zscore":
            out_i, out_f = zscore_scan(
                slots, x, a["ring"], a["count"], a["head"], a["shift"], a["s1"], a["s2"], a["since"], a["eq_run"],
                self.n_max, int(spec.warmup), float(spec.threshold),
            )
        elif spec.method == "iqr":
            out_i, out_f = iqr_scan(
                slots, x, a["ring"], a["ordered"], a["count"], a["head"], self.n_max, int(spec.warmup),
                float(spec.multiplier),
            )
        else:
            out_i, out_f = ema_scan(slots, x, a["count"], a["mean"], a["var"], int(spec.warmup), float(spec.alpha),
                                    float(spec.threshold))
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
        n = len(self.groups) if self.groups.keys else min(1, self.arrays["count"].shape[0])
        return {"groups": self.groups.state(), "arrays": {k: v[:n].copy() for k, v in self.arrays.items()}}

    def load_state(self, state: dict[str, Any]) -> None:
        self.groups.load_state(state["groups"])
        self.arrays = {k: np.array(v) for k, v in state["arrays"].items()}
