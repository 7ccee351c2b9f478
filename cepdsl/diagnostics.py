"""Diagnostics are values: the checker collects them, one renderer prints them.

The printed form (LANGUAGE.md §8) is

    FILE:LINE:COL: error: MESSAGE
    <the source line, verbatim>
    <spaces>^^^^ under the exact token
    hint: ...
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field

from cepdsl.ast import Span


@dataclass(frozen=True)
class Diagnostic:
    span: Span
    message: str
    hints: tuple[str, ...] = ()
    severity: str = "error"
    code: str = field(default="", compare=False)  # stable id, e.g. "unknown-field"

    def __str__(self) -> str:
        return f"{self.span}: {self.severity}: {self.message}"


class CheckError(Exception):
    """A rule file did not check clean. Carries every diagnostic, never only the first."""

    def __init__(self, diagnostics: Iterable[Diagnostic], sources: dict[str, str] | None = None):
        self.diagnostics = tuple(diagnostics)
        self.sources = sources or {}
        super().__init__(render_all(self.diagnostics, self.sources))


def nearest(word: str, candidates: Iterable[str]) -> str | None:
    """The closest candidate by spelling, for "did you mean" hints."""
    found = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    if found:
        return found[0]
    lowered = {c.lower(): c for c in candidates}
    return lowered.get(word.lower())


def did_you_mean(word: str, candidates: Iterable[str]) -> tuple[str, ...]:
    best = nearest(word, candidates)
    return (f"did you mean `{best}`?",) if best else ()


def render(diag: Diagnostic, source: str | None) -> str:
    out = [f"{diag.span.file}:{diag.span.line}:{diag.span.col}: {diag.severity}: {diag.message}"]
    lines = source.splitlines() if source is not None else []
    if 1 <= diag.span.line <= len(lines):
        text = lines[diag.span.line - 1]
        out.append(text)
        start = max(diag.span.col - 1, 0)
        if diag.span.end_line == diag.span.line and diag.span.end_col > diag.span.col:
            width = diag.span.end_col - diag.span.col
        else:  # a span over several lines: mark to the end of the first
            width = max(len(text.rstrip()) - start, 1)
        # Keep tabs so the caret lines up under tab-indented source.
        pad = "".join("\t" if ch == "\t" else " " for ch in text[:start])
        out.append(pad + "^" * width)
    out.extend(f"hint: {h}" for h in diag.hints)
    return "\n".join(out)


def render_all(diags: Iterable[Diagnostic], sources: dict[str, str]) -> str:
    return "\n".join(render(d, sources.get(d.span.file)) for d in diags)


def sort_key(d: Diagnostic) -> tuple[str, int, int]:
    return (d.span.file, d.span.line, d.span.col)
