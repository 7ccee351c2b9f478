"""Pattern rules (LANGUAGE.md §5.4): SQL MATCH_RECOGNIZE, ONE ROW PER MATCH,
AFTER MATCH SKIP PAST LAST ROW, plus `within`.

A plain recursive backtracking matcher in continuation-passing style over the
PNode tree. Preference order is the one a backtracking regex engine has:
greedy quantifiers (more iterations first), left alternative first, and a row
that satisfies several steps is tried against them in the pattern's order.
The first complete match (in that order) that is non-empty and satisfies
`last.ts − first.ts ≤ within` wins. Clarity over speed: the worst case is
exponential in the pattern and quadratic in the rows.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from cepdsl.interpret.rows import SEQ, TIME, Match, Row, partition
from cepdsl.interpret.values import eval_expr, is_true
from cepdsl.plan import PAlt, PatternSpec, PNode, PRepeat, PSeq, PStep, RulePlan

# The steps taken so far, newest first, as a cons list: (step, rest) or None.
Path = tuple[str, Any] | None
# What to do after a sub-pattern matched up to row j along path p.
Continuation = Callable[[int, Path], "tuple[int, Path] | None"]


class _Search:
    """Matches of one pattern over one group's rows."""

    def __init__(self, spec: PatternSpec, rows: list[Row]) -> None:
        self.spec = spec
        self.rows = rows
        self.conditions = dict(spec.defines)
        self._holds: dict[tuple[str, int], bool] = {}
        self.start = 0

    def step_holds(self, step: str, i: int) -> bool:
        # A `define` is a pure function of the row, so it is evaluated once per (step, row).
        key = (step, i)
        if key not in self._holds:
            cond = self.conditions.get(step)
            self._holds[key] = cond is None or is_true(eval_expr(cond, self.rows[i]))
        return self._holds[key]

    def within_ok(self, i: int) -> bool:
        # Times never decrease, so once a row is too late every longer match is too:
        # checking each row as it is taken is the same as checking the last one.
        d = self.spec.within_us
        return d is None or self.rows[i][TIME] - self.rows[self.start][TIME] <= d

    def match(self, node: PNode, i: int, path: Path, k: Continuation) -> tuple[int, Path] | None:
        if isinstance(node, PStep):
            if i >= len(self.rows) or not self.within_ok(i) or not self.step_holds(node.name, i):
                return None
            return k(i + 1, (node.name, path))
        if isinstance(node, PSeq):
            return self._sequence(node.items, 0, i, path, k)
        if isinstance(node, PAlt):
            for option in node.options:  # left alternative first
                found = self.match(option, i, path, k)
                if found is not None:
                    return found
            return None
        if isinstance(node, PRepeat):
            return self._repeat(node, 0, i, path, k)
        raise NotImplementedError(f"pattern node {type(node).__name__}")

    def _sequence(self, items: tuple[PNode, ...], idx: int, i: int, path: Path, k: Continuation) -> tuple[int, Path] | None:
        if idx == len(items):
            return k(i, path)
        return self.match(items[idx], i, path, lambda j, p: self._sequence(items, idx + 1, j, p, k))

    def _repeat(self, node: PRepeat, done: int, i: int, path: Path, k: Continuation) -> tuple[int, Path] | None:
        if node.max is None or done < node.max:

            def after_one(j: int, p: Path) -> tuple[int, Path] | None:
                # An iteration that takes no row once the minimum is met would repeat
                # forever; like ECMAScript regexes, it fails instead.
                if j == i and done >= node.min:
                    return None
                return self._repeat(node, done + 1, j, p, k)

            found = self.match(node.item, i, path, after_one)  # greedy: one more first
            if found is not None:
                return found
        if done >= node.min:
            return k(i, path)
        return None

    def match_from(self, start: int) -> tuple[int, Path] | None:
        """The preferred non-empty match starting at row `start`: (end row + 1, path)."""
        self.start = start
        return self.match(self.spec.regex, start, None, lambda j, p: (j, p) if j > start else None)

    def matches(self) -> Iterator[tuple[int, int, Path]]:
        """(first row, end row + 1, path) of each match, skipping past the last row."""
        start = 0
        while start < len(self.rows):
            found = self.match_from(start)
            if found is None:
                start += 1
                continue
            end, path = found
            yield start, end, path
            start = end


def _step_counts(spec: PatternSpec, path: Path) -> dict[str, int]:
    counts = {f"{s}_count": 0 for s in spec.steps}
    while path is not None:
        step, path = path
        counts[f"{step}_count"] += 1
    return counts


@contextmanager
def _recursion_room(rows: int) -> Iterator[None]:
    # Each row taken adds a handful of Python frames; CPython ≥ 3.11 keeps those
    # off the C stack, so raising the limit is safe.
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 100 * rows + 1000))
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


def pattern_matches(rule: RulePlan, rows: list[Row]) -> list[Match]:
    spec = rule.pattern
    assert spec is not None
    out: list[Match] = []
    for key, group_rows in partition(rows, rule.group_keys).items():
        search = _Search(spec, group_rows)
        with _recursion_room(len(group_rows)):
            found = list(search.matches())
        for first, end, path in found:
            last = group_rows[end - 1]
            record = {k: v for k, v in last.items() if k not in (SEQ, TIME)}
            record.update(ts=last[TIME], match_start=group_rows[first][TIME], **_step_counts(spec, path))
            out.append(Match((last[TIME], last[SEQ]), key, record))
    return out
