"""What every command shares: user mistakes end in one `error:` line and an exit code, never a traceback."""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import click

from cepdsl.diagnostics import CheckError, render_all


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def read_rules(path: str) -> str:
    from cepdsl.frontend import read_rule_file

    try:
        return read_rule_file(path)
    except FileNotFoundError:
        fail(f"{path}: no such file", 2)
    except IsADirectoryError:
        fail(f"{path}: is a directory, not a rule file", 2)
    except CheckError as e:
        click.echo(render_all(e.diagnostics, {}), err=True)
        sys.exit(1)


def read_program_files(paths: str | tuple[str, ...] | list[str]) -> dict[str, str]:
    """{file: text} of the rule files given (directories expanded to their `*.cep`
    files); a missing path or an empty directory exits 2."""
    from pathlib import Path

    from cepdsl.frontend import program_files

    given = [paths] if isinstance(paths, str) else list(paths)
    sources: dict[str, str] = {}
    for p in given:
        if Path(p).is_dir():
            files = program_files(p)
            if not files:
                fail(f"{p}: a directory without .cep files", 2)
        else:
            files = [p]
        for f in files:
            if f not in sources:
                sources[f] = read_rules(f)
    return sources


def load_program(path: str | tuple[str, ...] | list[str]) -> Any:
    """The checked plan of a rule file, of several or of a directory (one program,
    LANGUAGE.md §9.1), or exit 1 with every diagnostic on stderr."""
    from cepdsl.frontend import check_sources

    sources = read_program_files(path)
    program, diags = check_sources(sources)
    if diags:
        click.echo(render_all(diags, sources), err=True)
        sys.exit(1)
    return program
