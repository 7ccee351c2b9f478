"""Parsing a document declaration by declaration, so a keystroke re-parses one declaration.

A whole parse of a 1,000-rule file takes about 300 ms, the checker about 60 ms: an
editor that re-parsed everything on each keystroke would lag behind the typing.  A
`.cep` declaration runs until the next top-level keyword, and the parser's error
recovery already cuts the text there (`cepdsl.parser._TOP_LEVEL`), so the text is cut
at the same places and each piece is parsed on its own and cached by its text.  A
piece that moved (lines inserted above it) keeps its tree: only the line numbers of
its spans are shifted.

The result must be exactly what `cepdsl.parser.parse` gives for the whole text (the
editor shows what `cep check` prints).  Pieces that parse alone are the whole parse's
declarations (the grammar is `decl*`, LALR, so their concatenation has one parse).
A piece that fails alone is parsed again as the whole parser sees it: after the clean
pieces above (which leave the parser between declarations) and followed by the next
piece's keyword, because the whole parser meets that keyword instead of the end of
input.  If the keyword fits inside the piece (`channel = "#ops"` on its own line of a
multi-line `slack(...)`), the piece and the next are joined.  Anything else (the
brackets or size limits, too many errors, long joins) falls back to one whole parse.
tests/lsp/test_incremental.py checks the equality on the corpus and on mutations of it.
"""

from __future__ import annotations

import bisect
import dataclasses
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from cepdsl import ast
from cepdsl.diagnostics import Diagnostic

# The parser's own cut points: recovery blanks the text between two of them, so the
# pieces here must be the same (a private name on purpose: the two must not drift).
from cepdsl.parser import (
    _TOP_LEVEL,  # noqa: PLC2701
    MAX_FILE_BYTES,
    MAX_NESTING,
    MAX_SYNTAX_ERRORS,
    parse,
)

#: Codes of the diagnostics that make the parser drop a declaration (see `_parse`).
_RECOVERY_CODES = frozenset({"syntax", "keyword-as-name", "limit"})
_CONTEXT_CODES = frozenset({"syntax", "keyword-as-name"})
_MAX_JOIN = 8
_BRACKETS = re.compile(r'"""(?:.|\n)*?"""|"(?:\\.|[^"\\\n])*"|`[^`\n]*`|#[^\n]*|[()\[\]{}]')


@dataclass(frozen=True)
class Piece:
    """What one piece of text contributes to the file's parse."""

    decls: tuple[ast.Decl, ...]
    comments: tuple[ast.Comment, ...]
    recovery: tuple[Diagnostic, ...]  # syntax errors: the piece was dropped
    problems: tuple[Diagnostic, ...]  # found while building the tree (bad escapes, ...)
    broken: frozenset[str]


class _Lru(OrderedDict):
    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def get_or(self, key: Any, make: Any) -> Any:
        if key in self:
            self.move_to_end(key)
            return self[key]
        value = make()
        self[key] = value
        if len(self) > self.size:
            self.popitem(last=False)
        return value


class _Placed:
    """A clean piece's tree and where it stands now.  Moving it rewrites its spans in
    place: copying a 1,000-rule file's trees after an inserted line took as long as
    parsing them again."""

    __slots__ = ("piece", "line", "_spans")

    def __init__(self, piece: Piece, line: int):
        self.piece, self.line = piece, line
        self._spans: list[ast.Span] | None = None

    def move_to(self, line: int) -> None:
        delta = line - self.line
        if not delta:
            return
        if self._spans is None:
            found: dict[int, ast.Span] = {}
            p = self.piece
            _collect((p.decls, p.comments, p.recovery, p.problems), found)
            self._spans = list(found.values())
        for sp in self._spans:
            d = sp.__dict__  # Span is frozen to its users; only this cache moves it
            d["line"] += delta
            d["end_line"] += delta
        self.line = line


def _collect(node: Any, out: dict[int, ast.Span]) -> None:
    if isinstance(node, _PLAIN):
        return
    if isinstance(node, ast.Span):
        if node is not ast.NO_SPAN and node.line > 0:  # the shared "no position" span never moves
            out[id(node)] = node
        return
    if isinstance(node, tuple):
        for x in node:
            _collect(x, out)
        return
    names = _node_fields(type(node))
    if names:
        d = node.__dict__
        for name in names:
            _collect(d[name], out)


_FIELDS: dict[type, tuple[str, ...] | None] = {}
_PLAIN = (str, int, float, bool, type(None))


def _node_fields(cls: type) -> tuple[str, ...] | None:
    """The fields of an AST node (or diagnostic) that can hold spans or nodes."""
    if cls not in _FIELDS:
        if not dataclasses.is_dataclass(cls) or not (cls.__module__ == ast.__name__ or cls is Diagnostic):
            _FIELDS[cls] = None
        else:
            _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return _FIELDS[cls]


class IncrementalParser:
    """`parse(text, file)` with a cache of pieces; one per document.  Not thread-safe:
    a document's analyses run one at a time."""

    def __init__(self, cache_size: int = 4_000):
        self._alone: _Lru = _Lru(cache_size)  # (piece text, file) -> [_Placed] (a text may repeat) | None
        self._context: _Lru = _Lru(256)  # (text, file, first line, next keyword) -> Piece | None
        self._brackets: _Lru = _Lru(cache_size)  # piece text -> balanced and shallow on its own

    def parse(self, text: str, file: str) -> tuple[ast.File | None, list[Diagnostic]]:
        if len(text) > MAX_FILE_BYTES // 4 and len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
            return parse(text, file)
        starts = [m.start() for m in _TOP_LEVEL.finditer(text)]
        bounds = ([0] if not starts or starts[0] != 0 else []) + starts + [len(text)]
        chunks = [text[bounds[k] : bounds[k + 1]] for k in range(len(bounds) - 1)]
        if not all(self._brackets.get_or(c, lambda c=c: _balanced(c)) for c in chunks) and not _brackets_fine(text):
            return parse(text, file)
        first_lines = _line_numbers(text, bounds)
        if not self._alone and len(bounds) > 8:
            seeded = self._seed(text, file, bounds, first_lines)
            if seeded is not None:
                return seeded
        pieces: list[Piece] = []
        used: set[int] = set()
        recovered = 0
        i = 0
        while i < len(bounds) - 1:
            j = i + 1
            while True:
                chunk = chunks[i] if j == i + 1 else text[bounds[i] : bounds[j]]
                piece = self._piece(chunk, file, first_lines[i], text, bounds, j, used)
                if piece is not None:
                    break
                j += 1
                if j - i > _MAX_JOIN or j >= len(bounds):
                    return parse(text, file)
            pieces.append(piece)
            recovered += len(piece.recovery)
            if recovered >= MAX_SYNTAX_ERRORS:
                diags = [d for p in pieces for d in p.recovery]
                return None, diags[:MAX_SYNTAX_ERRORS]
            i = j
        diags = [d for p in pieces for d in p.recovery] + [d for p in pieces for d in p.problems]
        decls = tuple(d for p in pieces for d in p.decls)
        comments = tuple(c for p in pieces for c in p.comments)
        broken = frozenset().union(*(p.broken for p in pieces)) if pieces else frozenset()
        return ast.File(decls, comments, file, broken), diags

    def _seed(
        self, text: str, file: str, bounds: list[int], first_lines: list[int]
    ) -> tuple[ast.File | None, list[Diagnostic]] | None:
        """A document's first parse: one whole parse (four times faster than piece by
        piece), cut into pieces for the next keystrokes when it found no syntax error."""
        tree, diags = parse(text, file)
        if tree is None or any(d.code in _RECOVERY_CODES for d in diags):
            return None
        starts = first_lines[:-1]
        buckets: list[tuple[list[Any], list[Any], list[Any]]] = [([], [], []) for _ in starts]

        def bucket(span: ast.Span) -> tuple[list[Any], list[Any], list[Any]]:
            return buckets[max(bisect.bisect_right(starts, span.line) - 1, 0)]

        for d in tree.decls:
            bucket(d.span)[0].append(d)
        for c in tree.comments:
            bucket(c.span)[1].append(c)
        for d in diags:
            bucket(d.span)[2].append(d)
        for k, (decls, comments, problems) in enumerate(buckets):
            chunk = text[bounds[k] : bounds[k + 1]]
            piece = Piece(tuple(decls), tuple(comments), (), tuple(problems), frozenset())
            placed = self._alone.get_or((chunk, file), list)
            placed.append(_Placed(piece, first_lines[k]))
        return tree, diags

    def _piece(self, chunk: str, file: str, line: int, text: str, bounds: list[int], next_index: int, used: set[int]) -> Piece | None:
        """The piece's share of the whole parse, or None when it must be joined with the next."""
        placed: list[_Placed] | None = self._alone.get_or((chunk, file), lambda: _parse_alone(chunk, file))
        if placed is not None:
            free = [p for p in placed if id(p) not in used]
            spot = next((p for p in free if p.line == line), None) or (free[0] if free else None)
            if spot is None:
                fresh = _parse_alone(chunk, file)
                assert fresh is not None  # the same text parsed alone before
                spot = fresh[0]
                placed.append(spot)
            spot.move_to(line)
            used.add(id(spot))
            return spot.piece
        last = next_index >= len(bounds) - 1
        keyword = "" if last else _keyword_at(text, bounds[next_index])
        return self._context.get_or((chunk, file, line, keyword), lambda: _parse_in_context(chunk, file, line, keyword))


def _balanced(chunk: str) -> bool:
    """Brackets that close within the piece and nest at most MAX_NESTING deep: then the
    pieces together cannot reach the whole parser's limit (checked on the whole text
    otherwise)."""
    if "(" not in chunk and "[" not in chunk and "{" not in chunk and ")" not in chunk and "]" not in chunk and "}" not in chunk:
        return True
    too_deep, stray_closer, still_open = _bracket_walk(chunk)
    return not too_deep and not stray_closer and still_open == 0


def _brackets_fine(text: str) -> bool:
    """False when the whole parser's bracket limit might apply (it counts over the whole text)."""
    if text.count("(") + text.count("[") + text.count("{") <= MAX_NESTING:
        return True
    return not _bracket_walk(text)[0]


def _bracket_walk(text: str) -> tuple[bool, bool, int]:
    """(more than MAX_NESTING open at once, a closer with nothing open, brackets open at the
    end), skipping strings and comments.  The walk stops at the first bracket too deep; a
    stray closer counts as nothing, as the whole parser's depth never goes below zero."""
    depth, stray = 0, False
    for m in _BRACKETS.finditer(text):
        tok = m.group(0)
        if tok in "([{":
            depth += 1
            if depth > MAX_NESTING:
                return True, stray, depth
        elif tok in ")]}":
            if depth == 0:
                stray = True
            depth = max(depth - 1, 0)
    return False, stray, depth


def _line_numbers(text: str, offsets: list[int]) -> list[int]:
    out, line, pos = [], 1, 0
    for off in offsets:
        line += text.count("\n", pos, off)
        pos = off
        out.append(line)
    return out


def _keyword_at(text: str, offset: int) -> str:
    """The next piece's first line up to the end of its keyword (indentation kept)."""
    m = _TOP_LEVEL.match(text, offset)
    return m.group(0) if m else ""


def _parse_alone(chunk: str, file: str) -> list[_Placed] | None:
    tree, diags = parse(chunk, file)
    recovery = tuple(d for d in diags if d.code in _RECOVERY_CODES)
    if any(d.code in _CONTEXT_CODES for d in recovery) or tree is None:
        return None
    problems = tuple(d for d in diags if d.code not in _RECOVERY_CODES)
    return [_Placed(Piece(tree.decls, tree.comments, recovery, problems, tree.broken), 1)]


def _parse_in_context(chunk: str, file: str, line: int, keyword: str) -> Piece | None:
    """A piece that does not parse alone, as the whole parser sees it: at its own lines,
    followed by the next declaration's keyword."""
    work = "\n" * (line - 1) + chunk + keyword
    tree, diags = parse(work, file)
    kw_line = line + chunk.count("\n")
    kw_col = len(keyword) - len(keyword.lstrip()) + 1
    mine = [d for d in diags if (d.span.line, d.span.col) < (kw_line, kw_col) or not keyword]
    if not mine or mine[0].code not in _RECOVERY_CODES:
        return None  # the keyword continued the piece: join it with the next one
    recovery = tuple(d for d in mine if d.code in _RECOVERY_CODES)
    problems = tuple(d for d in mine if d.code not in _RECOVERY_CODES)
    if tree is None:
        return Piece((), (), recovery, (), frozenset())
    decls = tuple(d for d in tree.decls if (d.span.line, d.span.col) < (kw_line, kw_col) or not keyword)
    comments = tuple(c for c in tree.comments if (c.span.line, c.span.col) < (kw_line, kw_col) or not keyword)
    return Piece(decls, comments, recovery, problems, tree.broken)
