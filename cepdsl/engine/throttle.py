"""Throttle (LANGUAGE.md §5.7): per (rule, group key), a match is suppressed when
an earlier emitted match of the same key lies within `(ts − D, ts]`.

Applied by the engine to an executor's output in ts order, so the only thing to
remember per key is the time of the newest emitted match.  A match older than
that (only possible for rows an executor accepted late) is suppressed when it is
within D of it on either side: a late repeat is still a repeat.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import polars as pl

_NONE = np.iinfo(np.int64).min


def _keep_mask_py(codes: np.ndarray, ts: np.ndarray, last: np.ndarray, period: np.int64) -> np.ndarray:
    """Sequential by nature (an emitted match hides the next ones), hence a kernel.
    Specialised only by dtype (int64 arrays), so every rule shares one compile."""
    keep = np.zeros(codes.shape[0], dtype=np.bool_)
    none = np.iinfo(np.int64).min
    for i in range(codes.shape[0]):
        k = codes[i]
        t = ts[i]
        prev = last[k]
        if prev != none and abs(t - prev) < period:
            continue
        keep[i] = True
        if prev == none or t > prev:
            last[k] = t
    return keep


@functools.cache
def _keep_mask():  # noqa: ANN202 - a Numba dispatcher
    # Numba is imported on first use: a session without throttled rules never pays for it.
    import numba

    return numba.njit(cache=True)(_keep_mask_py)


class Throttle:
    """Per-key memory of the last emitted match of one rule."""

    def __init__(self, period_us: int, keys: tuple[str, ...]) -> None:
        self.period_us = period_us
        self.keys = keys
        self.slots: dict[tuple, int] = {}
        self.last = np.full(16, _NONE, dtype=np.int64)
        self.suppressed = 0

    def _codes(self, out: pl.DataFrame) -> np.ndarray:
        if not self.keys:
            self.slots.setdefault((), 0)
            return np.zeros(out.height, dtype=np.int64)
        uniq = out.select(self.keys).unique(maintain_order=True)
        local_to_slot = np.empty(uniq.height, dtype=np.int64)
        for i, key in enumerate(uniq.iter_rows()):
            slot = self.slots.get(key)
            if slot is None:
                slot = self.slots[key] = len(self.slots)
            local_to_slot[i] = slot
        if len(self.slots) > self.last.shape[0]:
            grown = np.full(max(len(self.slots), 2 * self.last.shape[0]), _NONE, dtype=np.int64)
            grown[: self.last.shape[0]] = self.last
            self.last = grown
        local = out.select(self.keys).join(
            uniq.with_row_index("__k"), on=list(self.keys), how="left", nulls_equal=True, maintain_order="left"
        )["__k"]
        return local_to_slot[local.to_numpy().astype(np.int64)]

    def keep_mask(self, out: pl.DataFrame) -> np.ndarray:
        """Which matches of `out` (sorted by ts) are not repeats; the kept ones are remembered."""
        if out.height == 0:
            return np.zeros(0, np.bool_)
        codes = self._codes(out)
        # Throttle needs time (the checker ensures it), so `ts` is never null here.
        ts = out["ts"].dt.epoch("us").to_numpy().astype(np.int64)
        keep = _keep_mask()(codes, ts, self.last, np.int64(self.period_us))
        self.suppressed += out.height - int(keep.sum())
        return keep

    def apply(self, out: pl.DataFrame) -> pl.DataFrame:
        """Keep the matches that are not repeats; `out` is sorted by ts."""
        if out.height == 0:
            return out
        keep = self.keep_mask(out)
        return out if bool(keep.all()) else out.filter(pl.Series(keep))

    def mark_firing(self, out: pl.DataFrame) -> pl.DataFrame:
        """A rule with `for`/`resolve` (§9.3): throttle applies to firing records only, and a
        throttled one stays in the output with `suppressed` set (it is not notified)."""
        if out.height == 0:
            return out
        firing = (out["state"] == "firing").fill_null(False).to_numpy()
        if not firing.any():
            return out
        idx = np.flatnonzero(firing)
        keep = self.keep_mask(out[idx.tolist()] if idx.shape[0] < out.height else out)
        if bool(keep.all()):
            return out
        held = np.zeros(out.height, np.bool_)
        held[idx[~keep]] = True
        return out.with_columns((pl.col("suppressed").fill_null(False) | pl.Series(held)).alias("suppressed"))

    # -- state ---------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        n = len(self.slots)
        return {"slots": list(self.slots.items()), "last": self.last[:n].copy(), "suppressed": self.suppressed}

    def load_state(self, state: dict[str, Any]) -> None:
        self.slots = {tuple(k): int(v) for k, v in state["slots"]}
        self.last = np.full(max(16, len(self.slots)), _NONE, dtype=np.int64)
        self.last[: len(state["last"])] = state["last"]
        self.suppressed = int(state["suppressed"])
