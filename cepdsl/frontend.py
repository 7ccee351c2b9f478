"""The front end in one call: text → AST → checked, typed Program.

Every consumer (the CLI, the embedding API, tests) goes through here, so a
rule file is read, parsed and checked the same way everywhere.
"""

from __future__ import annotations

from pathlib import Path

from cepdsl import ast
from cepdsl.checker import check
from cepdsl.diagnostics import CheckError, Diagnostic, sort_key
from cepdsl.parser import parse
from cepdsl.plan import Program

__all__ = ["CheckError", "check_source", "compile_source", "compile_path", "parse_source"]


def parse_source(text: str, filename: str = "<string>") -> tuple[ast.File | None, list[Diagnostic]]:
    return parse(text, filename)


def check_source(text: str, filename: str = "<string>") -> tuple[Program | None, list[Diagnostic]]:
    """Every diagnostic of a file (syntax and semantic), and its plan when it is clean."""
    tree, diags = parse(text, filename)
    if tree is None:
        return None, diags
    program, semantic = check(tree)
    diags = sorted(diags + semantic, key=sort_key)
    return (program if not diags else None), diags


def compile_source(text: str, filename: str = "<string>") -> Program:
    program, diags = check_source(text, filename)
    if diags or program is None:
        raise CheckError(diags, {filename: text})
    return program


def read_rule_file(path: str | Path) -> str:
    """A rule file's text; undecodable bytes are an error naming the file."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        span = ast.Span(str(path), line, col, line, col + 1)
        raise CheckError([Diagnostic(span, "the file is not valid UTF-8", code="encoding")], {}) from None


def compile_path(path: str | Path) -> Program:
    return compile_source(read_rule_file(path), str(path))
