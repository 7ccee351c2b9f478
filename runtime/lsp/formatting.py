"""Formatting: the formatter's output (`cep fmt`) as one edit over the whole document.
A file that does not parse is left alone (the formatter refuses it; the diagnostics
already say why)."""

from __future__ import annotations

from lsprotocol import types

from cepdsl.diagnostics import CheckError
from cepdsl.fmt import format_source
from runtime.lsp.documents import Lines


def format_document(text: str, path: str, lines: Lines) -> list[types.TextEdit] | None:
    try:
        out = format_source(text, path)
    except CheckError:
        return None
    if out == text:
        return []
    last = len(lines.lines) - 1
    end_line, end_col = lines.to_client(last, len(lines.lines[last]))
    return [types.TextEdit(types.Range(types.Position(0, 0), types.Position(end_line, end_col)), out)]
