"""Diagnostics for machines: JSON (the shape the HTTP API answers with), SARIF 2.1.0
(code-scanning uploads) and GitHub Actions workflow commands (annotations on a pull
request). The text form stays in `cepdsl.diagnostics.render` (LANGUAGE.md §8)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from cepdsl.diagnostics import Diagnostic, render

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def diagnostic_dict(d: Diagnostic, source: str | None = None) -> dict[str, Any]:
    """One diagnostic as JSON; `rendered` (the text form with caret) when the source is known."""
    out: dict[str, Any] = {
        "file": d.span.file,
        "line": d.span.line,
        "col": d.span.col,
        "end_line": d.span.end_line,
        "end_col": d.span.end_col,
        "severity": d.severity,
        "code": d.code,
        "message": d.message,
        "hints": list(d.hints),
    }
    if source is not None:
        out["rendered"] = render(d, source)
    return out


def to_json(diags: Sequence[Diagnostic], sources: Mapping[str, str], *, files: Sequence[str], rules: int) -> str:
    doc = {
        "ok": not diags,
        "files": list(files),
        "rules": rules,
        "diagnostics": [diagnostic_dict(d, sources.get(d.span.file)) for d in diags],
    }
    return json.dumps(doc, indent=2, ensure_ascii=False)


def to_sarif(diags: Sequence[Diagnostic], *, version: str = "") -> str:
    codes = sorted({d.code or "error" for d in diags})
    results = []
    for d in diags:
        text = d.message + "".join(f"\nhint: {h}" for h in d.hints)
        region = {"startLine": max(d.span.line, 1), "startColumn": max(d.span.col, 1)}
        if d.span.end_line >= d.span.line and d.span.end_line:
            region["endLine"] = d.span.end_line
            if d.span.end_col:
                region["endColumn"] = d.span.end_col
        results.append(
            {
                "ruleId": d.code or "error",
                "level": "error" if d.severity == "error" else "warning",
                "message": {"text": text},
                "locations": [{"physicalLocation": {"artifactLocation": {"uri": d.span.file}, "region": region}}],
            }
        )
    run = {
        "tool": {"driver": {"name": "cep", "version": version, "rules": [{"id": c} for c in codes]}},
        "results": results,
    }
    return json.dumps({"version": "2.1.0", "$schema": SARIF_SCHEMA, "runs": [run]}, indent=2, ensure_ascii=False)


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def to_github(diags: Sequence[Diagnostic]) -> str:
    """`::error file=F,line=L,col=C,endLine=..,endColumn=..,title=cep CODE::MESSAGE` per diagnostic."""
    lines = []
    for d in diags:
        props = [f"file={_escape_property(d.span.file)}", f"line={d.span.line}", f"col={d.span.col}"]
        if d.span.end_line:
            props.append(f"endLine={d.span.end_line}")
        if d.span.end_col:
            props.append(f"endColumn={d.span.end_col}")
        props.append(f"title={_escape_property('cep ' + (d.code or d.severity))}")
        message = d.message + "".join(f"\nhint: {h}" for h in d.hints)
        level = "error" if d.severity == "error" else "warning"
        lines.append(f"::{level} {','.join(props)}::{_escape_data(message)}")
    return "\n".join(lines) + ("\n" if lines else "")
