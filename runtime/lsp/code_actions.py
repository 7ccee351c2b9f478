"""Quick fixes: a diagnostic whose hint says "did you mean `cpu`?" offers to write
`cpu` in place of the name it marks (an unknown field, stream, channel, type, option,
step or template variable: the checker's span is the misspelt name)."""

from __future__ import annotations

from lsprotocol import types


def quick_fixes(uri: str, diagnostics: list[types.Diagnostic]) -> list[types.CodeAction]:
    out = []
    for d in diagnostics:
        data = d.data if isinstance(d.data, dict) else {}
        word = data.get("replacement")
        if not isinstance(word, str) or d.source != "cep":
            continue
        edit = types.WorkspaceEdit(changes={uri: [types.TextEdit(d.range, word)]})
        out.append(
            types.CodeAction(
                title=f"Replace with `{word}`",
                kind=types.CodeActionKind.QuickFix,
                diagnostics=[d],
                edit=edit,
                is_preferred=True,
            )
        )
    return out
