"""`cep replay`: Parquet history through the rules."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from runtime.cli.common import did_you_mean, fail, load_program
from runtime.cli.distributing import cluster_options, make_cluster
from runtime.cli.group import EXIT_USAGE, main


def _data_specs(program: Any, specs: tuple[str, ...]) -> dict[str, list[Path]]:
    from runtime.sources.parquet import resolve_paths

    names = [s.name for s in program.streams]
    out: dict[str, list[Path]] = {}
    for spec in specs:
        stream, sep, path = spec.partition("=")
        if not sep:
            if len(names) != 1:
                fail(
                    f"--data {spec}: say which stream it feeds (streams: {', '.join(names)})",
                    EXIT_USAGE,
                    (f"e.g. --data {names[0] if names else 'STREAM'}={spec}",),
                )
            stream, path = names[0], spec
        if stream not in names:
            fail(
                f"--data {spec}: the file declares no stream `{stream}` (streams: {', '.join(names)})",
                EXIT_USAGE,
                did_you_mean(stream, names),
            )
        if Path(path).suffix.lower() in (".jsonl", ".ndjson", ".json"):
            fail(
                f"--data {spec}: replay reads Parquet files, not JSON lines",
                EXIT_USAGE,
                (f"for a JSON-lines file: cep run FILE --source '{stream}=jsonl:{path}?follow=false'",),
            )
        try:
            out.setdefault(stream, []).extend(resolve_paths(path))
        except Exception as e:  # a spec that matches nothing names itself
            fail(f"--data {spec}: {e}", EXIT_USAGE)
    return out


def _out_dir(out_dir: str) -> Path:
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        fail(f"--out {out_dir}: exists and is not a directory", EXIT_USAGE)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        fail(f"--out {out_dir}: {e.strerror or e}", EXIT_USAGE)
    return out


@main.command()
@click.argument("files", nargs=-1, required=True)
@click.option("--data", "data", multiple=True, required=True, help="[STREAM=]PATH: a Parquet file, directory or glob.")
@click.option("--out", "out_dir", required=True, help="Directory for <rule>.parquet and _dead_letter.parquet.")
@click.option("--batch-rows", default=1_000_000, show_default=True, type=click.IntRange(min=1), help="Rows read per chunk.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal).")
@click.option("--redis", "redis", default=None, metavar="URL", help="Redis for redis(...) lookup tables.")
@click.option(
    "--format",
    "fmt_",
    type=click.Choice(("text", "json")),
    default="text",
    show_default=True,
    help="Summary as a table (text) or as one JSON document on stdout (json).",
)
@click.option("--summary-json", is_flag=True, hidden=True, help="Same as --format json.")
@cluster_options
def replay(
    files: tuple[str, ...],
    data: tuple[str, ...],
    out_dir: str,
    batch_rows: int,
    progress: bool | None,
    fmt_: str,
    summary_json: bool,
    redis: str | None = None,
    workers: int | None = None,
    process_id: int | None = None,
    addresses: str | None = None,
    trusted_network: bool = False,
    key_partitions: int | None = None,
) -> None:
    """Replay Parquet history through the rules (one file, several, or a directory); write matches per rule."""
    from runtime.compile_notice import announce_compilation
    from runtime.progress import print_summary, print_summary_json, replay_progress
    from runtime.replay import replay as run_replay
    from runtime.sources.errors import SchemaError, UnreadableInputError

    program = load_program(files)
    distributed = workers is not None or addresses or process_id is not None
    cluster = make_cluster(workers, process_id, addresses, trusted_network) if distributed else None
    paths = _data_specs(program, data)
    if cluster is not None:
        from runtime.distributed.runner import replay_distributed, unsupported

        problem = unsupported(program)
        if problem:
            fail(problem, EXIT_USAGE)
        try:
            done = replay_distributed(
                program, paths, _out_dir(out_dir), cluster, buckets=key_partitions, batch_rows=min(batch_rows, 500_000)
            )
        except SchemaError as e:
            fail(str(e))
        click.echo(
            f"{done.rows:,} rows in {done.seconds:.2f}s on {cluster.workers} worker(s) x "
            f"{cluster.processes} process(es); matches: " + ", ".join(f"{rid}={n}" for rid, n in done.matches.items()),
            err=True,
        )
        return
    from cepdsl.tables import TableError

    tables = None
    try:
        if any(r.joins for r in program.rules):  # read once, as at the start of replay (§9.2)
            from runtime.live_tables import TableWatcher

            tables = TableWatcher(program, redis).load_all()
    except TableError as e:
        fail(str(e))
    out = _out_dir(out_dir)
    as_json = summary_json or fmt_ == "json"
    show = sys.stderr.isatty() if progress is None else progress
    try:
        if show:
            with replay_progress() as bar, announce_compilation(on_change=bar.compiling):
                summary = run_replay(program, paths, out, progress=bar, batch_rows=batch_rows, tables=tables)
        else:
            with announce_compilation():
                summary = run_replay(program, paths, out, batch_rows=batch_rows, tables=tables)
    except SchemaError as e:  # the data does not fit the declared stream: a finding, as diagnostics are
        fail(str(e))
    except UnreadableInputError as e:
        fail(str(e), EXIT_USAGE)
    if as_json:
        print_summary_json(summary)
    else:
        print_summary(summary)
