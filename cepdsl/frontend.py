"""The front end in one call: text → AST → checked, typed Program.

Every consumer (the CLI, the embedding API, tests) goes through here, so a
rule file is read, parsed and checked the same way everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from cepdsl import ast
from cepdsl.checker import check
from cepdsl.diagnostics import CheckError, Diagnostic, sort_key
from cepdsl.parser import parse
from cepdsl.plan import Program

__all__ = [
    "CheckError",
    "check_source",
    "check_sources",
    "compile_source",
    "compile_sources",
    "compile_path",
    "parse_source",
    "program_files",
    "read_program",
]


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


def check_sources(sources: Mapping[str, str]) -> tuple[Program | None, list[Diagnostic]]:
    """Several files as one program (§9.1): one namespace, every diagnostic of every
    file; `sources` maps each file name (as diagnostics name it) to its text."""
    if len(sources) == 1:
        ((name, text),) = sources.items()
        return check_source(text, name)
    trees: list[ast.File] = []
    diags: list[Diagnostic] = []
    whole = True
    for name, text in sources.items():
        tree, found = parse(text, name)
        diags += found
        if tree is None:
            whole = False
        else:
            trees.append(tree)
    if not whole:  # a file that did not parse at all: its names are unknown, so stop here
        return None, sorted(diags, key=sort_key)
    program, semantic = check(trees)
    diags = sorted(diags + semantic, key=sort_key)
    return (program if not diags else None), diags


def compile_sources(sources: Mapping[str, str]) -> Program:
    program, diags = check_sources(sources)
    if diags or program is None:
        raise CheckError(diags, dict(sources))
    return program


def program_files(paths: str | Path | Iterable[str | Path]) -> list[str]:
    """The rule files of a program: each path as given, a directory as its `*.cep` files
    (recursively, in name order). Duplicates are dropped, so `a.cep dir/` with `a.cep`
    inside `dir` does not declare everything twice."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    out: list[str] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            out += [str(f) for f in sorted(path.rglob("*.cep")) if f.is_file()]
        else:
            out.append(str(p))
    seen: set[Path] = set()
    unique = []
    for f in out:
        key = Path(f).resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique


def read_program(paths: str | Path | Iterable[str | Path]) -> dict[str, str]:
    """{file: text} of a program's files (see `program_files`); a directory without any
    `.cep` file is an error naming it."""
    files = program_files(paths)
    if not files:
        raise FileNotFoundError(f"{paths}: no .cep files")
    return {f: read_rule_file(f) for f in files}


def compile_path(path: str | Path | Iterable[str | Path]) -> Program:
    """A program from one rule file, several, or a directory of them."""
    return compile_sources(read_program(path))
