"""Options shared by `cep replay/run/serve --workers N`: the Bytewax cluster a command runs on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from runtime.cli.common import fail


def cluster_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--workers, -i/--process-id, -a/--addresses (Bytewax's own addressing), --key-partitions."""
    options = [
        click.option("--workers", type=click.IntRange(1, 256), default=None,
                     help="Run on Bytewax with N worker threads per process (docs/distributed.md)."),
        click.option("-i", "--process-id", type=int, default=None,
                     help="With -a: this process's index in the address list (Bytewax -i)."),
        click.option("-a", "--addresses", default=None, metavar="HOST:PORT;HOST:PORT",
                     help="Every process's worker address, ';'-separated, the same list for all (Bytewax -a). "
                          "Trusted network only: workers exchange pickles."),
        click.option("--key-partitions", type=click.IntRange(1, 4096), default=16, show_default=True,
                     help="Key partitions per grouped rule (keep it across restarts: state is stored per partition)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def make_cluster(workers: int | None, process_id: int | None, addresses: str | None, **extra: Any) -> Any:
    from runtime.distributed.runner import Cluster

    addrs = tuple(a.strip() for a in addresses.split(";") if a.strip()) if addresses else None
    if addrs and process_id is None:
        fail("-a/--addresses needs -i/--process-id (this process's index in the list)", 2)
    if process_id is not None and not addrs:
        fail("-i/--process-id needs -a/--addresses", 2)
    if addrs and not 0 <= process_id < len(addrs):  # type: ignore[operator]
        fail(f"-i {process_id}: the address list has {len(addrs)} entries (0..{len(addrs) - 1})", 2)
    return Cluster(workers=workers or 1, process_id=process_id, addresses=addrs, **extra)
