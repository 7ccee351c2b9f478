"""Options shared by `cep replay/run/serve --workers N`: the Bytewax cluster a command runs on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from runtime.cli.common import fail


def cluster_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--workers, -i/--process-id, -a/--addresses (Bytewax's own addressing), --key-partitions."""
    options = [
        click.option(
            "--workers",
            type=click.IntRange(1, 256),
            default=None,
            help="Run on Bytewax with N worker threads per process (docs/distributed.md).",
        ),
        click.option(
            "-i", "--process-id", type=int, default=None, help="With -a: this process's index in the address list (Bytewax -i)."
        ),
        click.option(
            "-a",
            "--addresses",
            default=None,
            metavar="HOST:PORT;HOST:PORT",
            help="Every process's worker address, ';'-separated, the same list for all (Bytewax -a). "
            "Trusted network only: workers exchange pickles.",
        ),
        click.option(
            "--trusted-network",
            is_flag=True,
            default=False,
            help="Allow -a addresses off this machine (workers exchange pickles: only on a network you trust).",
        ),
        click.option(
            "--key-partitions",
            type=click.IntRange(1, 4096),
            default=None,
            help="Key partitions per grouped rule [run/serve: 16; replay: 2 per worker, 1 for one]. "
            "Keep it across restarts: state is stored per partition.",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
#: Key partitions per grouped rule of a live flow: fixed, since recovered state is stored per partition.
LIVE_KEY_PARTITIONS = 16


def make_cluster(
    workers: int | None, process_id: int | None, addresses: str | None, trusted_network: bool = False, **extra: Any
) -> Any:
    from runtime.distributed.runner import Cluster

    addrs = tuple(a.strip() for a in addresses.split(";") if a.strip()) if addresses else None
    remote = [a for a in addrs or () if a.rpartition(":")[0] not in LOOPBACK]
    if remote and not trusted_network:
        fail(
            f"-a {remote[0]}: not a loopback address; workers exchange Python pickles, so an address off "
            "this machine needs --trusted-network (and a network only your workers can reach)",
            2,
        )
    if addrs and process_id is None:
        fail("-a/--addresses needs -i/--process-id (this process's index in the list)", 2)
    if process_id is not None and not addrs:
        fail("-i/--process-id needs -a/--addresses", 2)
    if addrs and not 0 <= process_id < len(addrs):  # type: ignore[operator]
        fail(f"-i {process_id}: the address list has {len(addrs)} entries (0..{len(addrs) - 1})", 2)
    return Cluster(workers=workers or 1, process_id=process_id, addresses=addrs, **extra)


def distributed_run_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """What only a live flow on workers has: Bytewax recovery, the control feed, idle time."""
    options = [
        click.option(
            "--recovery",
            "recovery_dir",
            default=None,
            metavar="DIR",
            help="Bytewax recovery directory (trusted: it holds pickles). Resume from it after a crash.",
        ),
        click.option(
            "--snapshot-every",
            type=float,
            default=5.0,
            show_default=True,
            help="Seconds between state snapshots (Bytewax epoch length).",
        ),
        click.option(
            "--control",
            default=None,
            metavar="FILE|redis://...?key=K",
            help="Control feed of rule changes (register/enable/disable/delete), followed while running.",
        ),
        click.option(
            "--idle-after",
            type=float,
            default=1.0,
            show_default=True,
            help="Seconds of silence after which an input partition's time follows the wall clock.",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def run_on_workers(
    program: Any,
    sources: tuple[str, ...],
    *,
    outbox: str | None,
    out_dir: str | None,
    allow_hosts: tuple[str, ...],
    workers: int | None,
    process_id: int | None,
    addresses: str | None,
    trusted_network: bool,
    key_partitions: int | None,
    recovery_dir: str | None,
    snapshot_every: float,
    control: str | None,
    idle_after: float,
) -> int:
    """`cep run/serve --workers N`: the flow on Bytewax; returns the exit code."""
    from runtime.distributed.control import open_feed
    from runtime.distributed.runner import run_distributed, unsupported
    from runtime.run import source_specs

    problem = unsupported(program)
    if problem:
        fail(problem, 2)
    try:
        specs = source_specs(program, sources)
    except ValueError as e:
        fail(str(e), 2)
    import signal
    import threading

    cluster = make_cluster(workers, process_id, addresses, trusted_network, recovery_dir=recovery_dir, snapshot_every_s=snapshot_every)
    stop = threading.Event()
    # SIGINT/SIGTERM stop the inputs: the flow ends with its state snapshotted and the outbox drained.
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        run_distributed(
            program,
            specs,
            cluster,
            outbox=outbox,
            out_dir=out_dir,
            allow_hosts=allow_hosts,
            buckets=key_partitions or LIVE_KEY_PARTITIONS,
            control=open_feed(control),
            idle_after_s=idle_after,
            stop=stop,
        )
    except Exception as e:  # Bytewax wraps what a source or sink raised: name the cause, not the runtime
        fail(root_cause(e))
    return 0


def root_cause(error: BaseException) -> str:
    """The innermost exception's message (Bytewax chains a runtime error per operator)."""
    while error.__cause__ is not None:
        error = error.__cause__
    return f"{type(error).__name__}: {error}" if not str(error).startswith(type(error).__name__) else str(error)
