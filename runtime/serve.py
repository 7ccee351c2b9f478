"""`cep serve`: the engine and the operations API in one process.

    rule files + catalogue ──► ControlPlane ──► StreamingEngine (main thread) ◄── sources, HTTP ingest
                                    ▲                 │ matches ──► alert history, outbox, --out
                     uvicorn thread ┘ (routes call the engine thread between batches)

Embedded defaults sit beside the state: `--state sqlite:DIR/x.sqlite` puts the
catalogue in `DIR/.cep-catalogue.sqlite` and the history in
`DIR/.cep-history.sqlite`.  Without a token the server binds loopback only;
with one (`--token` or `CEP_API_TOKEN`) it may bind any address.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TypedDict

log = logging.getLogger("cep.serve")

DEFAULT_LISTEN = "127.0.0.1:8080"


class ApiOptions(TypedDict):
    """The operations API's address, stores and access: `cep serve`'s options, as
    `serve_forever` and, with workers, `runtime.distributed.serving.serve_flow` take them."""

    listen: str
    catalogue: str | None
    history: str | None
    retention_s: float | None
    token: str | None
    http_hosts: tuple[str, ...]


def split_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep:
        host, port = listen, "8080"
    host = host.strip("[]") or "127.0.0.1"
    try:
        n = int(port)
    except ValueError:
        raise ValueError(f"--listen {listen}: the port must be a number (e.g. 127.0.0.1:8080)") from None
    if not 0 <= n <= 65535:
        raise ValueError(f"--listen {listen}: port out of range")
    return host, n


def is_loopback(host: str) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def listen_policy(listen: str, token: str | None, http_hosts: Any) -> tuple[str, int, str | None, list[str]]:
    """`--listen`, the token (or CEP_API_TOKEN) and `--http-host` as (host, port, token,
    allowed Host names); ValueError says why an address is refused (without a token the
    API binds loopback only). One policy for `cep serve` with and without workers."""
    from runtime.api.guard import LOOPBACK_HOSTS

    token = token or os.environ.get("CEP_API_TOKEN") or None
    host, port = split_listen(listen)
    if token is None and not is_loopback(host):
        raise ValueError(
            f"--listen {listen}: without a token the API binds loopback only "
            "(set --token or CEP_API_TOKEN to listen on other addresses)"
        )
    hosts = list(http_hosts) or [*LOOPBACK_HOSTS, *([] if host in ("0.0.0.0", "::") else [host])]
    return host, port, token, hosts


def fail(message: str, code: int = 2) -> int:
    """`error: message` on stderr; the exit code to return (2: a bad option or file at start)."""
    print(f"error: {message}", file=sys.stderr)
    return code


def load_rules(ops: Any) -> Any:
    """The control plane's first load (rule files and catalogue), its diagnostics and warnings
    on stderr: the assembly when it checks, else the exit code (2: a file is missing, 1: the
    rules do not check). One start for `cep serve` with and without workers."""
    from cepdsl.diagnostics import CheckError, render_all

    try:
        assembly = ops.load()
    except FileNotFoundError as e:
        return fail(f"{e.filename}: no such file")
    except CheckError as e:
        print(render_all(e.diagnostics, {}), file=sys.stderr)
        return 1
    if not assembly.ok or assembly.program is None:
        print(render_all(assembly.diagnostics, assembly.sources), file=sys.stderr)
        return 1
    for p in ops.problems:
        print(f"warning: {p}", file=sys.stderr)
    return assembly


def start_api(app: Any, host: str, port: int, access_log: bool = True) -> tuple[Any, threading.Thread, str]:
    """uvicorn in a daemon thread; returns (server, thread, the address it listens on)."""
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, timeout_graceful_shutdown=5)
    )
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]  # the engine loop owns signals
    thread = threading.Thread(target=server.run, name="cep-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise OSError(f"the API could not listen on {host}:{port}")
        time.sleep(0.02)
    sock = server.servers[0].sockets[0].getsockname()
    shown = f"[{sock[0]}]" if ":" in sock[0] else sock[0]
    if access_log and "CEP_LOG" not in os.environ:
        # Requests are logged even when an embedding program left the root logger at
        # WARNING; CEP_LOG=WARNING silences them, as docs/api.md says (a demo's terminal
        # would otherwise get a line for every poll of an open console).
        logging.getLogger("cep.api.access").setLevel(logging.INFO)
    return server, thread, f"http://{shown}:{sock[1]}"


def serve_forever(
    files: list[str],
    sources: Iterable[str] = (),
    *,
    state: str | None = None,
    outbox: str | None = None,
    listen: str = DEFAULT_LISTEN,
    catalogue: str | None = None,
    history: str | None = None,
    retention_s: float | None = None,
    token: str | None = None,
    http_hosts: Iterable[str] = (),
    checkpoint_every: float = 5.0,
    out_dir: str | None = None,
    allow_hosts: Iterable[str] = (),
    clock: Callable[[], float] = time.time,
    stop: threading.Event | None = None,
    on_ready: Callable[[str, Any], None] | None = None,
) -> int:
    """Run until a signal (or `stop`). Returns the exit code."""
    from cepdsl.frontend import program_files
    from runtime.api import create_app
    from runtime.catalogue import open_catalogue
    from runtime.control import ControlPlane, ReloadRecord
    from runtime.history import DEFAULT_RETENTION_S, open_history
    from runtime.notify import ChannelConfigError, DestinationPolicy, Notifier
    from runtime.run import DEFAULT_OUTBOX, DEFAULT_STATE, FileWatch, JsonlSink, on_signals, source_opener, source_specs
    from runtime.sqldb import beside
    from runtime.state.spec import open_store
    from runtime.stream_loop import StreamingEngine

    logging.basicConfig(level=os.environ.get("CEP_LOG", "INFO"), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        host, port, token, hosts = listen_policy(listen, token, http_hosts)
    except ValueError as e:
        return fail(str(e))
    state = state or DEFAULT_STATE
    try:
        cat = open_catalogue(catalogue or beside(state, ".cep-catalogue.sqlite"))
        hist_spec = history or beside(state, ".cep-history.sqlite")
        hist = open_history(hist_spec, retention_s or DEFAULT_RETENTION_S)
    except Exception as e:  # noqa: BLE001 - a store that cannot be opened: one line, exit 2
        return fail(f"cannot open the catalogue or history store: {e}")
    expanded = program_files(files)  # a directory is its *.cep files (one program, LANGUAGE.md §9.1)
    if not expanded:
        return fail(f"{', '.join(files)}: no .cep files")
    files = expanded
    ops = ControlPlane(files, cat, hist, clock=clock)
    assembly = load_rules(ops)
    if isinstance(assembly, int):
        return assembly
    program = assembly.program
    try:
        specs = source_specs(program, sources)
    except ValueError as e:
        return fail(str(e))
    try:
        notifier = Notifier(program, outbox=outbox or DEFAULT_OUTBOX, policy=DestinationPolicy.from_entries(allow_hosts))
    except ChannelConfigError as e:
        return fail(str(e), 1)
    try:
        store = open_store(state)
    except ValueError as e:
        return fail(str(e))
    sink = JsonlSink(out_dir) if out_dir else None

    def on_matches(rule_id: str, frame: Any) -> None:
        ops.record_matches(rule_id, frame)
        if sink is not None:
            sink.matches(rule_id, frame)

    def on_dead(frame: Any) -> None:
        ops.count_dead(frame)
        if sink is not None:
            sink.dead(frame)

    class ServedEngine(StreamingEngine):
        """Remembers the last input rows of each stream (GET /cep/streams/{stream}/recent)."""

        def feed(self, source: str, batch: Any) -> Any:
            for b in batch if isinstance(batch, list) else [batch]:
                ops.remember(b.stream, b.frame)
            return super().feed(source, batch)

    from cepdsl.tables import TableError
    from runtime.live_tables import TableWatcher, redis_url_of

    # Lookup tables (§9.2): `redis(...)` ones from the Redis of a redis:// --state.
    tables = TableWatcher(program, redis_url_of(state, None), clock=clock) if any(r.joins for r in program.rules) else None
    try:
        engine = ServedEngine(
            program,
            source_opener(program, specs, ops.wake_source()),
            notifier=notifier,
            on_matches=on_matches,
            store=store,
            dead_letters=on_dead,
            clock=clock,
            checkpoint_every_s=checkpoint_every,
            tables=tables,
        )
    except TableError as e:
        notifier.stop(drain=False)
        store.close()
        return fail(str(e), 1)
    ops.attach(engine, notifier, specs)
    ops.reloads.append(ReloadRecord(clock(), True, "start"))
    hist.prune(clock())

    stop = stop or threading.Event()
    reload_requested = threading.Event()
    watches = [FileWatch(f) for f in files]
    on_signals(stop, reload_requested)

    app = create_app(ops=ops, token=token, hosts=hosts)
    try:
        server, thread, address = start_api(app, host, port)
    except OSError as e:
        notifier.stop(drain=False)
        store.close()
        return fail(f"--listen {listen}: {e}")
    print(f"cep: serving {', '.join(files)} on {address}  (API docs: {address}/docs)", flush=True)
    if token is None:
        print("cep: no token set: state-changing requests need the header X-CEP-Request: 1", file=sys.stderr)
    if not http_hosts and host in ("0.0.0.0", "::"):
        print(f"cep: answering the Host names {', '.join(hosts)} only; add the names clients use with --http-host", file=sys.stderr)
    if on_ready is not None:
        on_ready(address, ops)
    last_prune = last_export = last_sync = clock()
    anomaly_rules = lambda: [r.id for r in engine.program.rules if r.anomaly is not None]  # noqa: E731
    redis_state = state.startswith(("redis://", "rediss://", "unix://"))

    def between_steps() -> None:
        nonlocal last_prune, last_export, last_sync
        ops.run_pending()
        if clock() - last_sync >= 1.0:
            # Other processes sharing the catalogue (PostgreSQL, Redis): their changes apply here too.
            last_sync = clock()
            rec = ops.sync_catalogue()
            if rec is not None and rec.ok:
                print("cep: applied changes from the shared rule catalogue", file=sys.stderr)
        if redis_state and clock() - last_export >= checkpoint_every:
            # The design's `cep:anomaly:baseline:<rule>:<group>` keys, kept current at checkpoint pace.
            from runtime.api.anomaly import export_baselines

            last_export = clock()
            for rid in anomaly_rules():
                try:
                    export_baselines(ops, rid)
                except Exception as e:  # noqa: BLE001 - Redis down: the state store reports it
                    log.debug("baselines of %s not exported: %s", rid, e)
        if reload_requested.is_set() or any([w.changed() for w in watches]):
            reload_requested.clear()
            rec = ops.reload_files()
            if rec.ok:
                print(f"cep: reloaded {', '.join(files)}", file=sys.stderr)
            else:
                detail = "\n".join(d["rendered"] for d in rec.diagnostics) or rec.error
                print(f"cep: the rule files do not check; the running rules keep running:\n{detail}", file=sys.stderr)
        if clock() - last_prune > 3600:
            last_prune = clock()
            hist.prune(clock())

    from runtime.sources.errors import SourceSpecError

    notifier.start()
    ops.loop_started()
    spec_error: str | None = None
    try:
        engine.run(stop, on_step=between_steps)
    except SourceSpecError as e:  # sources open when the engine starts: a typo in a spec is one line, exit 2
        spec_error = str(e)
    finally:
        ops.loop_stopped()
        server.should_exit = True
        thread.join(timeout=10)
        notifier.stop(drain=True, timeout=30.0)
        store.close()
        if ops.history_writer is not None:
            ops.history_writer.close()
        hist.close()
        cat.close()
    if spec_error is not None:
        return fail(spec_error)
    if engine.errors:
        for err in engine.errors:
            print(f"cep: {err}", file=sys.stderr)
        return 1
    return 0
