"""Go to definition and find references for streams, channels, rules, pattern steps
and fields, across the files of the program."""

from __future__ import annotations

from collections.abc import Callable

from lsprotocol import types

from runtime.lsp.diagnostics import span_range
from runtime.lsp.documents import Lines, uri_of
from runtime.lsp.occurrences import DECLARED, Index, Occurrence


def _locations(occs: list[Occurrence], lines_of: Callable[[str], Lines | None]) -> list[types.Location]:
    out = []
    for o in occs:
        lines = lines_of(o.span.file)
        if lines is not None:
            out.append(types.Location(uri_of(o.span.file), span_range(o.span, lines)))
    return out


def definition(index: Index, occ: Occurrence | None, lines_of: Callable[[str], Lines | None]) -> list[types.Location]:
    if occ is None or occ.kind not in DECLARED + ("template_var",):
        return []
    return _locations(index.definitions(occ), lines_of)


def references(index: Index, occ: Occurrence | None, include_declaration: bool, lines_of: Callable[[str], Lines | None]) -> list[types.Location]:
    if occ is None or occ.kind not in DECLARED + ("aggregate", "function", "channel_kind"):
        return []
    return _locations(index.references(occ, include_declaration), lines_of)
