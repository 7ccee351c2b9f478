"""`cep run`: rules over live sources."""

from __future__ import annotations

import sys

import click

from runtime.cli.common import load_program
from runtime.cli.distributing import cluster_options, distributed_run_options, run_on_workers
from runtime.cli.group import main


@main.command()
@click.argument("file")
@click.option("--source", "sources", multiple=True, required=True, help="[STREAM=]SPEC: jsonl:-, jsonl:PATH, parquet-dir:DIR, redis://..., http://...")
@click.option("--state", default=None, help="State store: a SQLite path (default .cep-state.sqlite) or redis://host:port/db.")
@click.option("--outbox", default=None, help="Notification outbox: a SQLite path (default .cep-outbox.sqlite) or redis://...")
@click.option("--checkpoint-every", default=5.0, show_default=True, help="Seconds between state checkpoints.")
@click.option("--out", "out_dir", default=None, help="Also append matches to DIR/<rule>.jsonl.")
@click.option("--stats/--no-stats", default=None, help="Live per-rule table (default: on a terminal).")
@click.option("--allow-host", "allow_hosts", multiple=True, help="Allow notifications to this host/network (e.g. 127.0.0.1).")
@click.option("--api", "api", default=None, metavar="HOST:PORT", help="Serve /cep/health, /cep/stats (and the rest of the API) while running.")
@cluster_options
@distributed_run_options
def run(file: str, sources: tuple[str, ...], state: str | None, outbox: str | None, checkpoint_every: float,
        out_dir: str | None, stats: bool | None, allow_hosts: tuple[str, ...], api: str | None = None,
        **distributed: object) -> None:
    """Run rules continuously over live sources (reloads FILE on change or SIGHUP)."""
    from runtime.run import run_forever

    program = load_program(file)
    if any(distributed.get(k) is not None for k in ("workers", "addresses", "process_id")):
        from runtime.cli.common import fail

        if state:
            fail("--state is for one process; with --workers state is kept by Bytewax: use --recovery DIR", 2)
        if api:
            fail("--api with --workers: use `cep serve FILE --workers N --source ...`", 2)
        sys.exit(run_on_workers(program, sources, outbox=outbox, out_dir=out_dir, allow_hosts=allow_hosts, **distributed))
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
    )
    sys.exit(code)
