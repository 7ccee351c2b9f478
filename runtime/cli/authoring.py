"""`cep check`, `cep fmt`, `cep explain`: the compiler-side commands."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cepdsl.diagnostics import CheckError, render_all
from runtime.cli.common import load_program, read_rules
from runtime.cli.group import main


@main.command()
@click.argument("files", nargs=-1, required=True)
def check(files: tuple[str, ...]) -> None:
    """Check rule files; print every error as FILE:LINE:COL with the line and a caret.
    Files given together (or a directory) form one program (one namespace)."""
    load_program(files)


@main.command()
@click.argument("file")
@click.option("--write", is_flag=True, help="Rewrite the file in place.")
@click.option("--check", "check_only", is_flag=True, help="Exit 1 if the file is not formatted.")
def fmt(file: str, write: bool, check_only: bool) -> None:
    """Print a rule file in canonical layout (comments kept)."""
    from cepdsl.fmt import format_source

    text = read_rules(file)
    try:
        out = format_source(text, file)
    except CheckError as e:
        click.echo(render_all(e.diagnostics, {file: text}), err=True)
        sys.exit(1)
    if check_only:
        if out != text:
            click.echo(f"{file}: would be reformatted", err=True)
            sys.exit(1)
        return
    if write:
        if out != text:
            Path(file).write_text(out, encoding="utf-8")
        return
    click.echo(out, nl=False)


@main.command()
@click.argument("files", nargs=-1, required=True)
def explain(files: tuple[str, ...]) -> None:
    """Print the compiled plan of each rule (of one file, several, or a directory)."""
    from cepdsl.explain import explain as explain_program

    click.echo(explain_program(load_program(files)), nl=False)
