"""`cep serve --workers N`: the flow on Bytewax and the operations API over it.

    rule files + catalogue ──► ControlPlane ──► FlowHandle.reload_assembly ──► control feed ──► every input partition
          ▲ (register/enable/disable/delete over HTTP)         (only the rules that changed)        (of every process)
          └── other processes sharing the catalogue: picked up every second (sync_catalogue)

The flow starts from the rule files alone (the same program in every process of a
cluster); the catalogue's rules and toggles reach it as control commands, appended once
at start (only what the feed does not already say) and on every change.  The feed is
`--control` (a file, Redis or PostgreSQL, shared by processes) or, without it, one in
this process's memory.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger("cep.serve")


def serve_flow(
    files: list[str],
    sources: Iterable[str],
    cluster: Any,
    *,
    buckets: int,
    control: str | None = None,
    idle_after_s: float = 1.0,
    outbox: str | None = None,
    out_dir: str | None = None,
    allow_hosts: Iterable[str] = (),
    listen: str = "127.0.0.1:8080",
    catalogue: str | None = None,
    history: str | None = None,
    retention_s: float | None = None,
    token: str | None = None,
    http_hosts: Iterable[str] = (),
    stop: threading.Event | None = None,
    on_ready: Callable[[str, Any], None] | None = None,
) -> int:
    """Run until a signal or `stop` (or the flow fails). Returns the exit code."""

    from cepdsl.frontend import program_files
    from runtime.api import create_app
    from runtime.catalogue import open_catalogue
    from runtime.catalogue.program import assemble
    from runtime.control import ControlPlane, ReloadRecord
    from runtime.distributed.control import MemoryFeed, open_feed
    from runtime.distributed.runner import FlowHandle, run_distributed, unsupported
    from runtime.history import DEFAULT_RETENTION_S, open_history
    from runtime.notify import ChannelConfigError, DestinationPolicy, Notifier
    from runtime.run import DEFAULT_OUTBOX, on_signals, source_specs
    from runtime.serve import fail, listen_policy, load_rules, start_api
    from runtime.sqldb import beside

    try:
        host, port, token, hosts = listen_policy(listen, token, http_hosts)
    except ValueError as e:
        return fail(str(e))
    expanded = program_files(files)  # a directory is its *.cep files (one program, LANGUAGE.md §9.1)
    if not expanded:
        return fail(f"{', '.join(files)}: no .cep files")
    try:
        cat = open_catalogue(catalogue or beside(None, ".cep-catalogue.sqlite"))
        hist = open_history(history or beside(None, ".cep-history.sqlite"), retention_s or DEFAULT_RETENTION_S)
        feed = open_feed(control) or MemoryFeed()
    except Exception as e:  # noqa: BLE001 - a store that cannot be opened: one line, exit 2
        return fail(f"cannot open the catalogue, history or control feed: {e}")
    ops = ControlPlane(expanded, cat, hist)
    assembly = load_rules(ops)
    if isinstance(assembly, int):
        return assembly
    # The flow's own program is the rule files' (the same in every process of a cluster);
    # when they do not check alone (a file rule notifies a catalogue channel), all of it.
    files_only = assemble(ops._file_texts)
    base = files_only.program if files_only.ok and files_only.program is not None else assembly.program
    problem = unsupported(assembly.program) or unsupported(base)
    if problem:
        return fail(problem)
    try:
        specs = source_specs(base, sources)
    except ValueError as e:
        return fail(str(e))
    if not specs:
        return fail("--workers needs at least one --source")

    try:
        # The flow's outbox notifier, here so that the API sees it (health, simulate, deliveries)
        # and checks a changed channel against it before storing the change.
        notifier = Notifier(assembly.program, outbox=outbox or DEFAULT_OUTBOX, policy=DestinationPolicy.from_entries(allow_hosts))
    except ChannelConfigError as e:
        return fail(str(e), 1)
    handle = FlowHandle(base, cluster, feed)
    ops.attach(handle, notifier, specs)
    try:
        started = handle.reload_assembly(assembly, cat.toggles())  # the catalogue's rules into the feed
    except Exception as e:  # noqa: BLE001
        return fail(f"the rule catalogue could not be applied to the flow: {e}", 1)
    ops.reloads.append(
        ReloadRecord(
            time.time(), True, "start", report={k: list(getattr(started.report, k)) for k in ("kept", "changed", "added", "removed")}
        )
    )

    stop = stop or threading.Event()
    flow_stop = threading.Event()
    failure: list[BaseException] = []

    def run_flow() -> None:
        try:
            run_distributed(
                base,
                specs,
                cluster,
                outbox=outbox,
                out_dir=out_dir,
                allow_hosts=tuple(allow_hosts),
                buckets=buckets,
                control=feed,
                idle_after_s=idle_after_s,
                stop=flow_stop,
                on_matches=ops.record_matches,
                notifier=notifier,
            )
        except BaseException as e:  # noqa: BLE001 - reported by the serving loop
            failure.append(e)

    on_signals(stop)
    notifier.start()
    flow = threading.Thread(target=run_flow, name="cep-flow", daemon=True)
    flow.start()
    try:
        server, thread, address = start_api(create_app(ops=ops, token=token, hosts=hosts), host, port)
    except OSError as e:
        flow_stop.set()
        flow.join(30)
        notifier.stop(drain=False)
        return fail(f"--listen {listen}: {e}")
    print(
        f"cep: serving {', '.join(expanded)} on {address} ({cluster.workers} worker(s) per process, "
        f"{cluster.processes} process(es); API docs: {address}/docs)",
        flush=True,
    )
    if on_ready is not None:
        on_ready(address, ops)
    last_sync = last_prune = time.monotonic()
    try:
        # Inputs that end (follow=false) end the flow, not the server: its numbers stay readable
        # until a signal, as with one process. A flow that failed ends the server.
        while not stop.is_set() and not failure:
            stop.wait(0.2)
            if time.monotonic() - last_sync >= 1.0:
                # Other processes sharing the catalogue: their changes go through this feed too
                # (reconcile is idempotent: nothing is appended when the feed already has them).
                last_sync = time.monotonic()
                rec = ops.call(ops.sync_catalogue)
                if rec is not None and rec.ok:
                    print("cep: applied changes from the shared rule catalogue", file=sys.stderr)
            if time.monotonic() - last_prune > 3600:
                last_prune = time.monotonic()
                hist.prune(time.time())
    finally:
        flow_stop.set()
        flow.join(60)
        server.should_exit = True
        thread.join(timeout=10)
        notifier.stop(drain=True, timeout=30.0)
        if ops.history_writer is not None:
            ops.history_writer.close()
        hist.close()
        cat.close()
        if hasattr(feed, "close"):
            feed.close()
    if failure:
        error = failure[0]
        while error.__cause__ is not None:  # Bytewax chains a runtime error per operator: name the cause
            error = error.__cause__
        return fail(f"{type(error).__name__}: {error}", 1)
    return 0
