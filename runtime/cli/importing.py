"""`cep import`: the original design's JSON rules into a .cep file."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from runtime.cli.common import fail
from runtime.cli.group import main


@main.command(name="import")
@click.argument("json_file")
@click.option("-o", "--output", help="Write the .cep file here instead of stdout.")
@click.option("--stream", default="events", show_default=True, help="Name of the stream to declare.")
def import_(json_file: str, output: str | None, stream: str) -> None:
    """Convert rules in the original design's JSON shape into a .cep file."""
    from cepdsl import compat

    try:
        data = json.loads(sys.stdin.read() if json_file == "-" else Path(json_file).read_text(encoding="utf-8"))
    except FileNotFoundError:
        fail(f"{json_file}: no such file", 2)
    except IsADirectoryError:
        fail(f"{json_file}: is a directory, not a JSON file", 2)
    except OSError as e:
        fail(f"{json_file}: {e.strerror or e}", 2)
    except UnicodeDecodeError:
        fail(f"{json_file}: not UTF-8 text", 2)
    except json.JSONDecodeError as e:
        fail(f"{json_file}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}")
    try:
        text = compat.import_rules(data, json_file, stream=stream)
    except compat.ImportFailed as e:
        for p in e.problems:
            click.echo(f"{json_file}: {p}", err=True)
        sys.exit(1)
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)
