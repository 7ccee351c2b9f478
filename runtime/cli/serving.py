"""`cep serve`: the engine and the operations API in one process (`cep run --api` is the same)."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from runtime.cli.common import DURATION
from runtime.cli.group import main
from runtime.cli.running import EngineOptions, engine_options, option_group, program_and_sources, workers_asked
from runtime.serve import ApiOptions

#: The options of the operations API, as one `api` argument (ApiOptions).
api_options = option_group(
    "api",
    ApiOptions.__annotations__,
    [
        click.option("--listen", default="127.0.0.1:8080", show_default=True, help="HOST:PORT of the API (port 0: any free port)."),
        click.option(
            "--catalogue", default=None, help="Rule catalogue: sqlite:PATH (default beside the state), postgresql://..., redis://..."
        ),
        click.option(
            "--history", default=None, help="Alert history: sqlite:PATH (default beside the state), postgresql://... or redis://..."
        ),
        click.option(
            "--retention",
            "retention_s",
            default="7d",
            show_default=True,
            type=DURATION,
            help="How long the alert history keeps a match.",
        ),
        click.option(
            "--token", default=None, envvar="CEP_API_TOKEN", help="Bearer token for state-changing routes (env CEP_API_TOKEN)."
        ),
        click.option(
            "--http-host",
            "http_hosts",
            multiple=True,
            help="A Host header name the API answers (default: loopback names and the --listen host).",
        ),
    ],
)


@main.command()
@program_and_sources(
    "[STREAM=]SPEC: jsonl:PATH, parquet-dir:DIR, redis://..., http://... (events can also be POSTed to /cep/streams/STREAM/events)",
    required=False,
)
@api_options
@engine_options
def serve(
    files: tuple[str, ...], sources: tuple[str, ...], api: ApiOptions, engine: EngineOptions, log_format: str, **distributed: Any
) -> None:
    """Run the rules in FILES and serve the operations API (rules, events, simulate, stats, health, /docs)."""
    from runtime import logs
    from runtime.serve import serve_forever

    logs.configure(log_format, level=os.environ.get("CEP_LOG", "INFO"))
    if workers_asked(distributed):
        sys.exit(_serve_flow(files, sources, api, engine, distributed))
    sys.exit(serve_forever(list(files), sources, **api, **engine))


def _serve_flow(files: tuple[str, ...], sources: tuple[str, ...], api: ApiOptions, engine: EngineOptions, opts: dict[str, Any]) -> int:
    """`--workers`: the flow of `cep run --workers` on a thread of its own and the operations API
    over it; rule changes through the API reach every worker by the control feed."""
    from runtime.cli.common import fail
    from runtime.cli.distributing import LIVE_KEY_PARTITIONS, make_cluster
    from runtime.distributed.serving import serve_flow

    if engine["state"] is not None:
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
        outbox=engine["outbox"],
        out_dir=engine["out_dir"],
        allow_hosts=engine["allow_hosts"],
        **api,
    )
