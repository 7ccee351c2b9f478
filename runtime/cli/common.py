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


def load_program(path: str) -> Any:
    """The checked plan of a rule file, or exit 1 with every diagnostic on stderr."""
    from cepdsl.frontend import check_source

    text = read_rules(path)
    program, diags = check_source(text, path)
    if diags:
        click.echo(render_all(diags, {path: text}), err=True)
        sys.exit(1)
    return program
