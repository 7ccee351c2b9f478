"""`cep replay`: Parquet history through the rules."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from runtime.cli.common import fail, load_program
from runtime.cli.group import main


def _data_specs(program: Any, specs: tuple[str, ...]) -> dict[str, list[Path]]:
    from runtime.sources.parquet import resolve_paths

    names = [s.name for s in program.streams]
    out: dict[str, list[Path]] = {}
    for spec in specs:
        stream, sep, path = spec.partition("=")
        if not sep:
            if len(names) != 1:
                fail(f"--data {spec}: say which stream it feeds, e.g. --data {names[0] if names else 'STREAM'}={spec}", 2)
            stream, path = names[0], spec
        if stream not in names:
            fail(f"--data {spec}: the file declares no stream `{stream}` (streams: {', '.join(names)})", 2)
        try:
            out.setdefault(stream, []).extend(resolve_paths(path))
        except Exception as e:  # a spec that matches nothing names itself
            fail(f"--data {spec}: {e}", 2)
    return out


@main.command()
@click.argument("files", nargs=-1, required=True)
@click.option("--data", "data", multiple=True, required=True, help="[STREAM=]PATH: a Parquet file, directory or glob.")
@click.option("--out", "out_dir", required=True, help="Directory for <rule>.parquet and _dead_letter.parquet.")
@click.option("--batch-rows", default=1_000_000, show_default=True, help="Rows read per chunk.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal).")
@click.option("--redis", "redis", default=None, metavar="URL", help="Redis for redis(...) lookup tables.")
def replay(files: tuple[str, ...], data: tuple[str, ...], out_dir: str, batch_rows: int, progress: bool | None,
           redis: str | None = None) -> None:
    """Replay Parquet history through the rules (one file, several, or a directory); write matches per rule."""
    from runtime.replay import replay as run_replay
    from runtime.sources.errors import SchemaError

    program = load_program(files)
    paths = _data_specs(program, data)
    from cepdsl.tables import TableError

    tables = None
    try:
        if any(r.joins for r in program.rules):  # read once, as at the start of replay (§9.2)
            from runtime.tables import TableWatcher

            tables = TableWatcher(program, redis).load_all()
    except TableError as e:
        fail(str(e))
    show = sys.stderr.isatty() if progress is None else progress
    try:
        if show:
            from runtime.progress import replay_progress

            with replay_progress() as callback:
                summary = run_replay(program, paths, Path(out_dir), progress=callback, batch_rows=batch_rows, tables=tables)
        else:
            summary = run_replay(program, paths, Path(out_dir), batch_rows=batch_rows, tables=tables)
    except SchemaError as e:
        fail(str(e))
    from runtime.progress import print_summary

    print_summary(summary)
