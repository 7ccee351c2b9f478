"""The checker's diagnostics as LSP diagnostics: the same message, code and span.

The message is the checker's message, word for word; its hints travel as related
information at the same place (editors show them under the message) and in `data`,
where the quick fixes read the "did you mean" ones.  A span is 1-based with an
exclusive end column; LSP ranges are 0-based, in the client's units.
"""

from __future__ import annotations

import re

from lsprotocol import types

from cepdsl.diagnostics import Diagnostic
from runtime.lsp.documents import Lines, uri_of

SOURCE = "cep"
_DID_YOU_MEAN = re.compile(r"did you mean `([^`]+)`\?")


def span_range(span, lines: Lines) -> types.Range:
    """A span (1-based line and column, end exclusive) as an LSP range."""
    sl, sc = lines.to_client(span.line - 1, span.col - 1)
    if span.end_line > 0:
        el, ec = lines.to_client(span.end_line - 1, span.end_col - 1)
    else:
        el, ec = sl, sc
    if (el, ec) <= (sl, sc):  # an empty or inverted span still marks one character
        el, ec = sl, sc + 1
    return types.Range(types.Position(sl, sc), types.Position(el, ec))


def suggestion(diag: Diagnostic) -> str | None:
    """The replacement a "did you mean" hint offers, if any."""
    for h in diag.hints:
        m = _DID_YOU_MEAN.search(h)
        if m:
            return m.group(1)
    return None


def to_lsp(diag: Diagnostic, lines: Lines, related: bool = True) -> types.Diagnostic:
    rng = span_range(diag.span, lines)
    severity = {
        "error": types.DiagnosticSeverity.Error,
        "warning": types.DiagnosticSeverity.Warning,
        "info": types.DiagnosticSeverity.Information,
    }.get(diag.severity, types.DiagnosticSeverity.Error)
    info = None
    if related and diag.hints:
        loc = types.Location(uri_of(diag.span.file), rng)
        info = [types.DiagnosticRelatedInformation(loc, f"hint: {h}") for h in diag.hints]
    data: dict[str, object] = {"hints": list(diag.hints)}
    fix = suggestion(diag)
    if fix is not None:
        data["replacement"] = fix
    return types.Diagnostic(
        range=rng,
        message=diag.message,
        severity=severity,
        code=diag.code or None,
        source=SOURCE,
        related_information=info,
        data=data,
    )
