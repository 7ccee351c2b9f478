"""Pane arithmetic of tumbling and sliding windows (LANGUAGE.md §5.2), written once for
the two executors that run them (the Polars `group_by` path and the Numba kernels).

Window k is `[kS, kS + D)` for every integer k (tumbling: S = D).  Time is cut into
panes of P = gcd(D, S) µs aligned to the epoch, so a window is exactly the panes it
covers.  The formulas below are plain integer arithmetic on purpose: they work on
Python ints, numpy arrays and Polars expressions alike, and `first_window` is also
compiled into the Numba window kernel, so both paths agree to the microsecond.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from cepdsl.plan import RulePlan


def first_window(pane_start: Any, size: Any, every: Any, pane: Any) -> Any:
    """Smallest k with kS + D ≥ pane_start + P: the first window covering the whole pane."""
    return -((size - pane - pane_start) // every)


def last_window(start: Any, every: Any) -> Any:
    """Largest k with kS ≤ start: the last window holding time `start`."""
    return start // every


@dataclass(frozen=True)
class PaneGrid:
    """One window rule's sizes (µs) and what follows from them."""

    size: int  # D
    every: int  # S
    pane: int  # P = gcd(D, S)

    @classmethod
    def of(cls, rule: RulePlan, size_us: int | None = None, every_us: int | None = None) -> PaneGrid:
        """The grid of a `tumbling`/`sliding` rule; `size_us`/`every_us` override the plan's."""
        w = rule.window
        if size_us is None:
            size_us = w.size_us if w is not None else None
        if every_us is None and w is not None:
            every_us = w.every_us if w.kind == "sliding" else size_us
        if size_us is None or every_us is None or size_us <= 0 or every_us <= 0 or every_us > size_us:
            raise ValueError(f"rule {rule.id}: bad window size {size_us} / every {every_us}")
        return cls(size_us, every_us, math.gcd(size_us, every_us))

    def last_end(self, t: Any) -> Any:
        """End of the last window holding time `t` (the window that starts at ⌊t / S⌋·S)."""
        return last_window(t, self.every) * self.every + self.size

    def due(self, emitted_us: int | None, watermark_us: int) -> tuple[int | None, int]:
        """Windows to emit now, as k from .. to (inclusive): those ending after `emitted_us`
        (None: nothing emitted yet, no lower bound) and at or before the watermark."""
        lo = None if emitted_us is None else (emitted_us - self.size) // self.every + 1
        return lo, (watermark_us - self.size) // self.every

    def late_mask(self, ts_us: np.ndarray, emitted_us: int | None) -> np.ndarray:
        """Late only when every window holding the row has been emitted (Flink's rule)."""
        if emitted_us is None:
            return np.zeros(len(ts_us), dtype=bool)
        return self.last_end(ts_us) <= emitted_us

    def finish_at(self, watermark_us: int, last_pane: int) -> int:
        """The watermark that closes every window holding pane `last_pane` (end of input)."""
        return max(watermark_us, self.last_end(last_pane * self.pane))
