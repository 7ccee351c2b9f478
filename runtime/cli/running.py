"""`cep run`: rules over live sources."""

from __future__ import annotations

import sys

import click

from runtime.cli.common import load_program
from runtime.cli.group import main


@main.command()
@click.argument("files", nargs=-1, required=True)
@click.option("--source", "sources", multiple=True, required=True, help="[STREAM=]SPEC: jsonl:-, jsonl:PATH, parquet-dir:DIR, redis://..., http://...")
@click.option("--state", default=None, help="State store: a SQLite path (default .cep-state.sqlite) or redis://host:port/db.")
@click.option("--outbox", default=None, help="Notification outbox: a SQLite path (default .cep-outbox.sqlite) or redis://...")
@click.option("--checkpoint-every", default=5.0, show_default=True, help="Seconds between state checkpoints.")
@click.option("--out", "out_dir", default=None, help="Also append matches to DIR/<rule>.jsonl.")
@click.option("--stats/--no-stats", default=None, help="Live per-rule table (default: on a terminal).")
@click.option("--allow-host", "allow_hosts", multiple=True, help="Allow notifications to this host/network (e.g. 127.0.0.1).")
@click.option("--api", "api", default=None, metavar="HOST:PORT", help="Serve /cep/health, /cep/stats (and the rest of the API) while running.")
@click.option("--redis", "redis", default=None, metavar="URL", help="Redis for redis(...) lookup tables (default: a redis:// --state).")
def run(files: tuple[str, ...], sources: tuple[str, ...], state: str | None, outbox: str | None, checkpoint_every: float,
        out_dir: str | None, stats: bool | None, allow_hosts: tuple[str, ...], api: str | None = None, redis: str | None = None) -> None:
    """Run rules continuously over live sources (reloads FILES on change or SIGHUP).
    Several files, or a directory, form one program."""
    from runtime.run import run_forever

    program = load_program(files)
    file: str | list[str] = files[0] if len(files) == 1 else list(files)
    show = sys.stderr.isatty() if stats is None else stats
    code = run_forever(
        file,
        program,
        sources,
        state=state,
        outbox=outbox,
        checkpoint_every=checkpoint_every,
        out_dir=out_dir,
        show_stats=show,
        allow_hosts=allow_hosts,
        api=api,
        redis=redis,
    )
    sys.exit(code)
