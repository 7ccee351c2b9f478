"""Diagnostics are values: the checker collects them, one renderer prints them.

The printed form (LANGUAGE.md §8) is

    FILE:LINE:COL: error: MESSAGE
    <the source line, verbatim>
    <spaces>^^^^ under the exact token
    hint: ...
"""

from __future__ import annotations

import difflib
import unicodedata
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


#: Source lines longer than this are shown as a window around the caret.
MAX_SHOWN_LINE = 160


def _display(ch: str) -> str:
    """A source character as printed: control characters (NUL, escape, ...) would
    garble a terminal, so they print as U+FFFD, one column wide like the original."""
    if ch == "\t" or ch.isprintable():
        return ch
    return "\ufffd"


def _width(ch: str) -> int:
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def _source_lines(diag: Diagnostic, source: str) -> list[str]:
    """The source line and the caret line under the span."""
    lines = source.split("\n")  # the parser counts lines by "\n" only, so must we
    text = lines[diag.span.line - 1].rstrip("\r")
    start = min(max(diag.span.col - 1, 0), len(text))
    if diag.span.end_line == diag.span.line and diag.span.end_col > diag.span.col:
        end = diag.span.end_col - 1
    else:  # a span over several lines: mark to the end of the first
        end = max(len(text.rstrip()), start + 1)
    prefix = ""
    if len(text) > MAX_SHOWN_LINE:
        lo = max(0, min(start - MAX_SHOWN_LINE // 2, len(text) - MAX_SHOWN_LINE))
        hi = lo + MAX_SHOWN_LINE
        prefix = "..." if lo > 0 else ""
        suffix = "..." if hi < len(text) else ""
        text = text[lo:hi]
        start, end = start - lo, min(end - lo, hi - lo)
        shown = prefix + "".join(_display(c) for c in text) + suffix
    else:
        shown = "".join(_display(c) for c in text)
    end = max(end, start + 1)
    # Keep tabs so the caret lines up under tab-indented source; wide characters take two columns.
    pad = " " * len(prefix) + "".join("\t" if ch == "\t" else " " * _width(ch) for ch in text[:start])
    marked = text[start:end]
    carets = "^" * (sum(_width(ch) for ch in marked) + max(0, end - start - len(marked)))
    return [shown, pad + carets]


def render(diag: Diagnostic, source: str | None) -> str:
    out = [f"{diag.span.file}:{diag.span.line}:{diag.span.col}: {diag.severity}: {diag.message}"]
    if source is not None and 1 <= diag.span.line <= source.count("\n") + 1:
        out.extend(_source_lines(diag, source))
    out.extend(f"hint: {h}" for h in diag.hints)
    return "\n".join(out)


def render_all(diags: Iterable[Diagnostic], sources: dict[str, str]) -> str:
    return "\n".join(render(d, sources.get(d.span.file)) for d in diags)


def sort_key(d: Diagnostic) -> tuple[str, int, int]:
    return (d.span.file, d.span.line, d.span.col)
