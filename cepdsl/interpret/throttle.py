"""Throttle (LANGUAGE.md §5.7): per (rule, group key), a match is suppressed when
an earlier *emitted* match of the same key has ts in (ts − D, ts].

Suppressed matches do not reset the clock: only emitted ones count, so a
steady stream of matches gets one through every D.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cepdsl.interpret.rows import Match


def apply_throttle(matches: Sequence[Match], throttle_us: int | None) -> tuple[list[Match], int]:
    """(emitted matches, number suppressed); `matches` must already be in output order."""
    if throttle_us is None:
        return list(matches), 0
    last_emitted: dict[tuple[Any, ...], int] = {}
    kept: list[Match] = []
    suppressed = 0
    for m in matches:
        prev = last_emitted.get(m.key)
        if prev is not None and m.ts - throttle_us < prev <= m.ts:
            suppressed += 1
            continue
        last_emitted[m.key] = m.ts
        kept.append(m)
    return kept, suppressed
