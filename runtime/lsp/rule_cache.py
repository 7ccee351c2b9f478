"""Per-rule check results kept across keystrokes.

After the incremental parse, checking the program is most of a keystroke's cost (about
60 ms of a 1,000-rule file on a quiet machine, several times that on a loaded one).
The checker checks each rule on its own (`Checker.rule`) against the declarations
that are not rules (streams, tables, channels, templates); so while those are unchanged, a rule whose tree is the very same
object at the same line (the incremental parser hands back the same objects for
untouched declarations) gets the same diagnostics and plan as before; one that only
moved (lines inserted above it) and had no diagnostics gets its plan with the new line.  What a rule's
check added to the checker (diagnostics, plans, anything else kept in the checker's
lists, dicts and sets) is recorded and replayed.  If the checker stops checking rules
through `rule`, nothing is cached and everything stays correct.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from cepdsl import ast
from cepdsl.checker import Checker
from cepdsl.diagnostics import Diagnostic


class _Entry:
    __slots__ = ("rule", "line", "end", "delta")

    def __init__(self, rule: ast.RuleDecl, delta: list[tuple[str, Any]]):
        self.rule, self.line, self.end, self.delta = rule, rule.span.line, rule.span.end_line, delta


class RuleCache:
    def __init__(self) -> None:
        self._context: Any = None
        self._entries: dict[int, _Entry] = {}
        self.hits = 0

    def checker(self, files: list[ast.File]) -> Checker:
        """A checker of the program made of `files` (cepdsl.checker.Checker's input)."""
        others = tuple(d for f in files for d in f.decls if not isinstance(d, ast.RuleDecl))
        context = (others, frozenset().union(*(f.broken for f in files)), tuple(f.name for f in files))
        if context != self._context:  # a stream, table, channel, template or silence changed
            self._entries.clear()
            self._context = context
        checker = _CachingChecker(files if len(files) > 1 else files[0])
        checker.cache = self
        return checker

    def prune(self, checker: Checker) -> None:
        seen = getattr(checker, "seen", None)
        if seen is not None:
            self._entries = {k: v for k, v in self._entries.items() if k in seen}


class _CachingChecker(Checker):
    cache: RuleCache

    def rule(self, r: ast.RuleDecl, *args: Any, **kwargs: Any) -> Any:
        if not hasattr(self, "seen"):
            self.seen: set[int] = set()
        self.seen.add(id(r))
        entry = self.cache._entries.get(id(r))
        if entry is not None and entry.rule is r:
            if entry.line == r.span.line and entry.end == r.span.end_line:
                self.cache.hits += 1
                _replay(self, entry.delta)
                return None
            moved = _moved(entry, r)
            if moved is not None:  # a clean rule that only moved: its plan with the new line
                self.cache.hits += 1
                self.cache._entries[id(r)] = moved
                _replay(self, moved.delta)
                return None
        before = _sizes(self)
        result = super().rule(r, *args, **kwargs)
        self.cache._entries[id(r)] = _Entry(r, _delta(self, before))
        return result


def _moved(entry: _Entry, r: ast.RuleDecl) -> _Entry | None:
    """The entry of a rule that moved to another line, when what its check produced
    holds no position but the plan's `line` (no diagnostics: their spans and messages
    name lines)."""
    delta: list[tuple[str, Any]] = []
    for k, items in entry.delta:
        if not isinstance(items, list):
            return None
        shifted = []
        for item in items:
            if not dataclasses.is_dataclass(item) or isinstance(item, Diagnostic) or getattr(item, "line", None) != entry.line:
                return None
            shifted.append(_with_line(item, r.span.line))
        delta.append((k, shifted))
    return _Entry(r, delta)


def _with_line(item: Any, line: int) -> Any:
    """A copy of a frozen plan with another `line` (dataclasses.replace re-runs
    __init__, a third of a moved file's analysis)."""
    if not hasattr(item, "__dict__"):
        return dataclasses.replace(item, line=line)
    new = object.__new__(type(item))
    new.__dict__.update(item.__dict__)
    new.__dict__["line"] = line
    return new


def _state(checker: Checker) -> dict[str, Any]:
    return {k: v for k, v in vars(checker).items() if isinstance(v, (list, dict, set)) and k not in ("seen",)}


def _sizes(checker: Checker) -> dict[str, Any]:
    return {k: (set(v) if isinstance(v, set) else len(v)) for k, v in _state(checker).items()}


def _delta(checker: Checker, before: dict[str, Any]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for k, v in _state(checker).items():
        old = before.get(k)
        if isinstance(v, list):
            if len(v) > (old or 0):
                out.append((k, list(v[old or 0 :])))
        elif isinstance(v, dict):
            if len(v) > (old or 0):
                out.append((k, dict(list(v.items())[old or 0 :])))
        elif isinstance(v, set):
            new = v - (old or set())
            if new:
                out.append((k, set(new)))
    return out


def _replay(checker: Checker, delta: list[tuple[str, Any]]) -> None:
    for k, items in delta:
        target = getattr(checker, k)
        if isinstance(target, list):
            target.extend(items)
        else:
            target.update(items)
