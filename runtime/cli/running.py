"""`cep run`: rules over live sources."""

from __future__ import annotations

import sys

import click

from runtime.cli.common import DURATION, load_program
from runtime.cli.group import main


@main.command()
@click.argument("file")
@click.option("--source", "sources", multiple=True, required=True, help="[STREAM=]SPEC: jsonl:-, jsonl:PATH, parquet-dir:DIR, redis://..., http://...")
@click.option("--state", default=None, help="State store: a SQLite path (default .cep-state.sqlite; sqlite:PATH too), memory, or redis://host:port/db.")
@click.option("--outbox", default=None, help="Notification outbox: a SQLite path (default .cep-outbox.sqlite; sqlite:PATH too) or redis://...")
@click.option("--checkpoint-every", default="5s", show_default=True, type=DURATION, help="Time between state checkpoints (5s, 500ms, 1m or seconds).")
@click.option("--fresh", is_flag=True, help="Start over: forget saved rule state and source offsets (never rules or alert history).")
@click.option("--out", "out_dir", default=None, help="Also append matches to DIR/<rule>.jsonl and dead letters to DIR/_dead_letter.jsonl.")
@click.option("--stats/--no-stats", default=None, help="Live per-rule table (default: on a terminal) and the summary on exit; --no-stats prints neither.")
@click.option("--log-format", type=click.Choice(("text", "json")), default="text", show_default=True, help="Log lines as text or one JSON object per line.")
@click.option("--allow-host", "allow_hosts", multiple=True, help="Allow notifications to this host/network (e.g. 127.0.0.1).")
@click.option("--api", "api", default=None, metavar="HOST:PORT", help="Serve /cep/health, /cep/stats (and the rest of the API) while running.")
def run(file: str, sources: tuple[str, ...], state: str | None, outbox: str | None, checkpoint_every: float,
        fresh: bool, out_dir: str | None, stats: bool | None, log_format: str, allow_hosts: tuple[str, ...],
        api: str | None = None) -> None:
    """Run rules continuously over live sources (reloads FILE on change or SIGHUP)."""
    from runtime.cli.common import host_port
    from runtime.run import run_forever

    if api is not None:
        host_port(api, "--api")
    program = load_program(file)
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
        fresh=fresh,
        summary=stats is not False,
        log_format=log_format,
    )
    sys.exit(code)
