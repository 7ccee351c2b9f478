"""`cep check`, `cep fmt`, `cep explain`: the compiler-side commands.

`check` and `fmt` take files, directories (their `*.cep` files) and `-` (stdin), as
ruff and black do; see docs/cli.md for the output formats and exit codes.
"""

from __future__ import annotations

import difflib
import sys
from pathlib import Path

import click

from cepdsl.diagnostics import CheckError, render_all
from runtime.cli.common import STDIN, display_name, fail, load_program, read_rules, rule_paths
from runtime.cli.group import EXIT_USAGE, main

FORMATS = ("text", "json", "sarif", "github")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


@main.command()
@click.argument("files", nargs=-1, required=True)
@click.option(
    "--format",
    "fmt_",
    type=click.Choice(FORMATS),
    default="text",
    show_default=True,
    help="text: FILE:LINE:COL with caret and hints on stderr; json, sarif, github: on stdout.",
)
def check(files: tuple[str, ...], fmt_: str) -> None:
    """Check rule files (FILE, DIR for its *.cep files, - for stdin); exit 1 on errors.
    Files given together (or a directory) form one program (one namespace, LANGUAGE.md §9.1)."""
    from importlib.metadata import version

    from cepdsl import diagnostic_formats
    from cepdsl.frontend import check_sources

    paths = rule_paths(files)
    names = [display_name(p) for p in paths]
    sources = {display_name(p): read_rules(p) for p in paths}
    program, every = check_sources(sources)
    rules = len(program.rules) if program is not None else 0
    failed = len({d.span.file for d in every if d.span is not None})
    if every and fmt_ == "text":
        click.echo(render_all(every, sources), err=True)
    if fmt_ == "json":
        click.echo(diagnostic_formats.to_json(every, sources, files=names, rules=rules))
    elif fmt_ == "sarif":
        click.echo(diagnostic_formats.to_sarif(every, version=version("cep")))
    elif fmt_ == "github":
        click.echo(diagnostic_formats.to_github(every), nl=False)
    elif every:
        click.echo(f"checked {_plural(len(paths), 'file')}: {_plural(len(every), 'error')} in {_plural(max(failed, 1), 'file')}")
    else:
        click.echo(f"checked {_plural(len(paths), 'file')}: {_plural(rules, 'rule')}, no errors")
    if every:
        sys.exit(1)


@main.command()
@click.argument("files", nargs=-1, required=True)
@click.option("--write", is_flag=True, help="Rewrite the files in place.")
@click.option("--check", "check_only", is_flag=True, help="Write nothing; exit 1 if a file is not formatted.")
@click.option("--diff", "diff", is_flag=True, help="Print a unified diff of the changes instead of the files.")
def fmt(files: tuple[str, ...], write: bool, check_only: bool, diff: bool) -> None:
    """Print rule files in canonical layout (comments kept); FILE, DIR or - for stdin.

    With one file and no flag the formatted text goes to stdout; with several,
    say what to do (--write, --check or --diff)."""
    from cepdsl.fmt import format_source

    if write and check_only:
        fail("--write and --check exclude each other", EXIT_USAGE, ("--check --diff shows what --write would change",))
    paths = rule_paths(files)
    if STDIN in paths and write:
        fail("stdin cannot be rewritten in place", EXIT_USAGE, ("drop --write to print the result",))
    if len(paths) > 1 and not (write or check_only or diff):
        fail(
            f"{len(paths)} files: say what to do with them",
            EXIT_USAGE,
            ("add --write to rewrite them, --check to test them, --diff to see the changes",),
        )
    changed, broken = [], 0
    for path in paths:
        text = read_rules(path)
        name = display_name(path)
        try:
            out = format_source(text, name)
        except CheckError as e:
            click.echo(render_all(e.diagnostics, {name: text}), err=True)
            broken += 1
            continue
        if not (write or check_only or diff):
            click.echo(out, nl=False)
            continue
        if out == text:
            continue
        changed.append(name)
        if diff:
            click.echo(
                "".join(
                    difflib.unified_diff(text.splitlines(True), out.splitlines(True), f"{name} (original)", f"{name} (formatted)")
                ),
                nl=False,
            )
        if check_only:
            click.echo(f"{name}: would be reformatted", err=True)
        elif write:
            Path(path).write_text(out, encoding="utf-8")
            click.echo(f"{name}: reformatted", err=True)
    if write or check_only or diff:
        verb = "reformatted" if write else "would be reformatted"
        unchanged = len(paths) - len(changed) - broken
        parts = [f"{_plural(len(changed), 'file')} {verb}"] if changed else []
        parts.append(f"{_plural(unchanged, 'file')} already formatted")
        if broken:
            parts.append(f"{_plural(broken, 'file')} could not be parsed")
        click.echo(", ".join(parts), err=True)
    if broken or (check_only and changed):
        sys.exit(1)


@main.command()
@click.argument("files", nargs=-1, required=True)
def explain(files: tuple[str, ...]) -> None:
    """Print the compiled plan of each rule (of FILE, several files, a directory, or - for stdin)."""
    from cepdsl.explain import explain as explain_program

    click.echo(explain_program(load_program(files)), nl=False)
