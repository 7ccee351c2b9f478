"""`cep serve`: the engine and the operations API in one process (`cep run --api` is the same)."""

from __future__ import annotations

import os
import sys

import click

from runtime.cli.distributing import cluster_options, distributed_run_options
from runtime.cli.group import main


def duration_s(text: str | None) -> float | None:
    if text is None:
        return None
    from runtime.sources.spec import parse_duration_s

    try:
        return parse_duration_s(text)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


@main.command()
@click.argument("files", nargs=-1, required=True)
@click.option(
    "--source",
    "sources",
    multiple=True,
    help="[STREAM=]SPEC: jsonl:PATH, parquet-dir:DIR, redis://..., http://... (events can also be POSTed to /cep/streams/STREAM/events)",
)
@click.option(
    "--state", default=None, help="State store: sqlite:PATH (default sqlite:.cep-state.sqlite), redis://host:port/db or memory."
)
@click.option("--outbox", default=None, help="Notification outbox: a SQLite path (default .cep-outbox.sqlite) or redis://...")
@click.option("--listen", default="127.0.0.1:8080", show_default=True, help="HOST:PORT of the API (port 0: any free port).")
@click.option(
    "--catalogue", default=None, help="Rule catalogue: sqlite:PATH (default beside the state), postgresql://..., redis://..."
)
@click.option("--history", default=None, help="Alert history: sqlite:PATH (default beside the state), postgresql://... or redis://...")
@click.option("--retention", default="7d", show_default=True, help="How long the alert history keeps a match.")
@click.option("--token", default=None, envvar="CEP_API_TOKEN", help="Bearer token for state-changing routes (env CEP_API_TOKEN).")
@click.option(
    "--http-host",
    "http_hosts",
    multiple=True,
    help="A Host header name the API answers (default: loopback names and the --listen host).",
)
@click.option("--checkpoint-every", default=5.0, show_default=True, help="Seconds between state checkpoints.")
@click.option("--out", "out_dir", default=None, help="Also append matches to DIR/<rule>.jsonl.")
@click.option("--allow-host", "allow_hosts", multiple=True, help="Allow notifications to this host/network (e.g. 127.0.0.1).")
@click.option(
    "--log-format",
    type=click.Choice(("text", "json")),
    default="text",
    show_default=True,
    help="Log lines (the server's included) as text or one JSON object per line.",
)
@cluster_options
@distributed_run_options
def serve(
    files: tuple[str, ...],
    sources: tuple[str, ...],
    state: str | None,
    outbox: str | None,
    listen: str,
    catalogue: str | None,
    history: str | None,
    retention: str,
    token: str | None,
    http_hosts: tuple[str, ...],
    checkpoint_every: float,
    out_dir: str | None,
    allow_hosts: tuple[str, ...],
    log_format: str = "text",
    **distributed: object,
) -> None:
    """Run the rules in FILES and serve the operations API (rules, events, simulate, stats, health, /docs)."""
    from runtime import logs
    from runtime.serve import serve_forever

    logs.configure(log_format, level=os.environ.get("CEP_LOG", "INFO"))
    if any(distributed.get(k) is not None for k in ("workers", "addresses", "process_id")):
        sys.exit(
            _serve_flow(
                files,
                sources,
                outbox,
                listen,
                out_dir,
                allow_hosts,
                distributed,
                state=state,
                catalogue=catalogue,
                history=history,
                retention_s=duration_s(retention),
                token=token,
                http_hosts=http_hosts,
            )
        )
    code = serve_forever(
        list(files),
        sources,
        state=state,
        outbox=outbox,
        listen=listen,
        catalogue=catalogue,
        history=history,
        retention_s=duration_s(retention),
        token=token,
        http_hosts=http_hosts,
        checkpoint_every=checkpoint_every,
        out_dir=out_dir,
        allow_hosts=allow_hosts,
    )
    sys.exit(code)


def _serve_flow(
    files: tuple[str, ...],
    sources: tuple[str, ...],
    outbox: str | None,
    listen: str,
    out_dir: str | None,
    allow_hosts: tuple[str, ...],
    opts: dict,
    **api: object,
) -> int:
    """`--workers`: the flow of `cep run --workers` on a thread of its own and the operations API
    over it; rule changes through the API reach every worker by the control feed."""
    from runtime.cli.common import fail
    from runtime.cli.distributing import LIVE_KEY_PARTITIONS, make_cluster
    from runtime.distributed.serving import serve_flow

    if api.pop("state", None) is not None:
        fail("--state is for one process; with --workers state is kept by Bytewax: use --recovery DIR", 2)
    if not sources:
        fail("--workers needs at least one --source", 2)
    cluster = make_cluster(
        opts["workers"],
        opts["process_id"],
        opts["addresses"],
        opts["trusted_network"],
        recovery_dir=opts["recovery_dir"],
        snapshot_every_s=opts["snapshot_every"],
    )
    return serve_flow(
        list(files),
        sources,
        cluster,
        buckets=opts["key_partitions"] or LIVE_KEY_PARTITIONS,
        control=opts["control"],
        idle_after_s=opts["idle_after"],
        outbox=outbox,
        out_dir=out_dir,
        allow_hosts=allow_hosts,
        listen=listen,
        **api,  # type: ignore[arg-type]
    )
