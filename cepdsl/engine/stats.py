"""Per-rule counters for `Session.stats()` (and the live table of `cep run`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: How many recent batch timings the p99 is taken over.
TIMING_WINDOW = 1024


def p99(values: np.ndarray) -> float:
    """np.quantile(values, 0.99) (linear interpolation) by partitioning around the two ranks
    it needs: ~30x cheaper than np.quantile, which a stats read calls once per rule."""
    n = len(values)
    pos = 0.99 * (n - 1)
    lo = int(pos)
    hi = min(lo + 1, n - 1)
    part = np.partition(values, (lo, hi))
    return float(part[lo] + (part[hi] - part[lo]) * (pos - lo))


@dataclass
class RuleStats:
    events_in: int = 0  # rows of the rule's stream released to it (before `where`)
    passed: int = 0  # rows that passed `where`
    matches: int = 0  # emitted (after throttle)
    suppressed: int = 0  # dropped by throttle
    late: int = 0  # rows refused as late
    silenced: int = 0  # emitted matches held back from notification by a silence (§9.4)
    batches: int = 0
    total_eval_s: float = 0.0
    recent_s: np.ndarray = field(default_factory=lambda: np.zeros(TIMING_WINDOW))

    def timed(self, seconds: float) -> None:
        self.recent_s[self.batches % TIMING_WINDOW] = seconds
        self.batches += 1
        self.total_eval_s += seconds

    def summary(self) -> dict[str, float | int]:
        n = min(self.batches, TIMING_WINDOW)
        return {
            "events_in": self.events_in,
            "passed": self.passed,
            "matches": self.matches,
            "suppressed": self.suppressed,
            "late": self.late,
            "silenced": self.silenced,
            "batches": self.batches,
            "eval_s": self.total_eval_s,
            "mean_eval_ms": 1e3 * self.total_eval_s / self.batches if self.batches else 0.0,
            "p99_eval_ms": 1e3 * p99(self.recent_s[:n]) if n else 0.0,
        }

    def counters(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in ("events_in", "passed", "matches", "suppressed", "late", "silenced")}

    def load_counters(self, counters: dict[str, int]) -> None:
        for k, v in counters.items():
            setattr(self, k, int(v))
