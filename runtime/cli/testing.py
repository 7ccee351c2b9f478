"""`cep test`: run rule tests written in YAML (LANGUAGE.md §9.6)."""

from __future__ import annotations

import sys

import click

from runtime.cli.group import main


@main.command(name="test")
@click.argument("files", nargs=-1, required=True)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "junit"]),
    default="text",
    show_default=True,
    help="Report format: text for people, json or junit for CI.",
)
@click.option("--output", "-o", "output", default=None, help="Write the report to this file (default: stdout).")
def test(files: tuple[str, ...], fmt: str, output: str | None) -> None:
    """Replay each test's input through its rule file and compare the matches and messages.

    Exit 0 when every test passes, 1 when one fails (with a diff), 2 when a test file
    cannot be run (naming its line). Nothing is ever sent; env() secrets are never read.
    """
    from runtime.ruletest import FORMATS, exit_code, run_file

    outcomes = [run_file(f) for f in files]
    for o in outcomes:
        for w in o.warnings:
            click.echo(w, err=True)
        if o.error is not None:
            click.echo(o.error, err=True)
    report = FORMATS[fmt](outcomes)
    if output:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(report if report.endswith("\n") else report + "\n")
    else:
        click.echo(report)
    sys.exit(exit_code(outcomes))
