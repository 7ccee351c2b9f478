"""Document symbols: the file's declarations, with a rule's pattern steps and a
stream's fields under them (the outline and "go to symbol" of an editor)."""

from __future__ import annotations

from lsprotocol import types

from cepdsl import ast
from runtime.lsp.documents import Lines
from runtime.lsp.lsp_diagnostics import span_range

S = types.SymbolKind


def document_symbols(tree: ast.File | None, lines: Lines) -> list[types.DocumentSymbol]:
    if tree is None:
        return []
    out = []
    for d in tree.decls:
        if isinstance(d, ast.StreamDecl):
            children = [_symbol(f.path.dotted, S.Field, f.span, f.path.span, lines, f.type.value) for f in d.fields]
            out.append(_symbol(d.name.value, S.Struct, d.span, d.name.span, lines, "stream", children))
        elif isinstance(d, ast.ChannelDecl):
            out.append(_symbol(d.name.value, S.Event, d.span, d.name.span, lines, f"channel: {d.kind.value}"))
        elif isinstance(d, ast.RuleDecl):
            steps = []
            define = d.clause(ast.Define)
            if define is not None:
                steps = [_symbol(i.name.value, S.EnumMember, i.span, i.name.span, lines, "step") for i in define.items]
            title = d.title.value if d.title is not None else "rule"
            out.append(_symbol(d.id.value, S.Function, d.span, d.id.span, lines, title, steps))
        elif isinstance(d, ast.TableDecl):  # §9.2
            children = [_symbol(f.path.dotted, S.Field, f.span, f.path.span, lines, f.type.value) for f in d.fields]
            out.append(_symbol(d.name.value, S.Struct, d.span, d.name.span, lines, "table", children))
        elif isinstance(d, ast.TemplateDecl):  # §9.5
            out.append(_symbol(d.name.value, S.String, d.span, d.name.span, lines, "template"))
        elif isinstance(d, ast.SilenceDecl):  # §9.4
            out.append(_symbol(d.name.value, S.Null, d.span, d.name.span, lines, "silence"))
    return out


def _symbol(name, kind, span, sel, lines, detail="", children=None) -> types.DocumentSymbol:
    full = span_range(span, lines)
    pick = span_range(sel, lines)
    if not (full.start.line, full.start.character) <= (pick.start.line, pick.start.character):
        full = pick
    return types.DocumentSymbol(
        name=name, kind=kind, range=full, selection_range=pick, detail=detail or None, children=children or None
    )
