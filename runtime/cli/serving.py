"""`cep serve`: the HTTP API."""

from __future__ import annotations

import click

from runtime.cli.common import fail, load_program
from runtime.cli.distributing import cluster_options, distributed_run_options
from runtime.cli.group import main


@main.command()
@click.argument("file", required=False)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True)
@click.option("--source", "sources", multiple=True, help="With --workers: [STREAM=]SPEC, as for `cep run`.")
@click.option("--outbox", default=None, help="With --workers: the notification outbox (as for `cep run`).")
@cluster_options
@distributed_run_options
def serve(file: str | None, host: str, port: int, sources: tuple[str, ...] = (), outbox: str | None = None,
          **distributed: object) -> None:
    """Serve the HTTP API (health, rules, stats, check); with --workers, over a flow running on Bytewax."""
    import uvicorn

    from runtime.api import create_app

    program = load_program(file) if file else None
    engine = None
    if any(distributed.get(k) is not None for k in ("workers", "addresses", "process_id")):
        engine = _start_flow(program, sources, outbox, distributed)
    uvicorn.run(create_app(program, file, engine=engine), host=host, port=port, log_level="warning")


def _start_flow(program: object, sources: tuple[str, ...], outbox: str | None, opts: dict) -> object:
    """The flow of `cep run --workers` on a thread of its own; the API reads its stats."""
    import threading

    from runtime.cli.distributing import LIVE_KEY_PARTITIONS, make_cluster
    from runtime.distributed.control import open_feed
    from runtime.distributed.runner import FlowHandle, run_distributed
    from runtime.run import source_specs

    if program is None or not sources:
        fail("--workers needs a rule FILE and at least one --source", 2)
    try:
        specs = source_specs(program, sources)  # type: ignore[arg-type]
    except ValueError as e:
        fail(str(e), 2)
    cluster = make_cluster(opts["workers"], opts["process_id"], opts["addresses"], opts["trusted_network"],
                           recovery_dir=opts["recovery_dir"], snapshot_every_s=opts["snapshot_every"])
    control = open_feed(opts["control"])  # type: ignore[arg-type]
    threading.Thread(target=run_distributed, name="cep-flow", daemon=True, args=(program, specs, cluster),
                     kwargs=dict(outbox=outbox, buckets=opts["key_partitions"] or LIVE_KEY_PARTITIONS, control=control,
                                 idle_after_s=opts["idle_after"])).start()
    return FlowHandle(program, cluster, control)  # type: ignore[arg-type]
