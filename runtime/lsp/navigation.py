"""Go to definition and find references for streams, channels, rules, pattern steps
and fields, across the files of the program."""

from __future__ import annotations

import re
from collections.abc import Callable

from lsprotocol import types

from runtime.lsp.documents import Lines, uri_of
from runtime.lsp.lsp_diagnostics import span_range
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


def references(
    index: Index, occ: Occurrence | None, include_declaration: bool, lines_of: Callable[[str], Lines | None]
) -> list[types.Location]:
    if occ is None or occ.kind not in DECLARED + ("aggregate", "function", "channel_kind"):
        return []
    return _locations(index.references(occ, include_declaration), lines_of)


#: Names whose every use the index sees. A rule id also stands in silences' string
#: lists and in test files, a field or step in message templates (`{{ fail_count }}`):
#: renaming those here would leave uses behind, so they are not offered.
RENAMABLE = ("stream", "table", "channel", "template")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def rename_refused(occ: Occurrence | None) -> str | None:
    """Why `occ` cannot be renamed, or None when it can."""
    if occ is None:
        return "no name here"
    if occ.kind not in RENAMABLE:
        return f"renaming a {occ.kind.replace('_', ' ')} is not supported (it may be used in templates or strings)"
    return None


def rename(index: Index, occ: Occurrence, new_name: str, lines_of: Callable[[str], Lines | None]) -> types.WorkspaceEdit:
    if not _IDENT.fullmatch(new_name):
        raise ValueError(f"`{new_name}` is not a name: letters, digits and `_`, not starting with a digit")
    from cepdsl.parser import keywords

    text = f"`{new_name}`" if new_name in keywords() else new_name
    changes: dict[str, list[types.TextEdit]] = {}
    for loc, o in zip(_locations(index.references(occ), lines_of), index.references(occ)):
        # `template("oncall")` names the template inside a string: keep the quotes.
        piece = f'"{new_name}"' if occ.kind == "template" and not o.definition else text
        changes.setdefault(loc.uri, []).append(types.TextEdit(loc.range, piece))
    return types.WorkspaceEdit(changes=changes)
