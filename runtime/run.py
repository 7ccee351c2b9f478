"""`cep run`: wire sources, state, notifications and the streaming engine together.

Embedded defaults make it work on a bare machine: state in a SQLite file next to
the working directory, the notification outbox in another.  Point `--state`
or `--outbox` at `redis://...` to keep them in Redis instead (when Redis goes
away the engine keeps running on memory and writes back when it returns).

The rule file is watched: a new version that checks clean replaces the running
rules (unchanged rules keep their state); one that does not is reported and the
running rules keep running.  SIGHUP reloads too; SIGINT/SIGTERM stop cleanly
(final checkpoint, outbox drained).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import polars as pl

from cepdsl.plan import Program

log = logging.getLogger("cep.run")

DEFAULT_STATE = "sqlite:.cep-state.sqlite"
DEFAULT_OUTBOX = ".cep-outbox.sqlite"


def source_specs(program: Program, specs: Iterable[str]) -> dict[str, tuple[str, str]]:
    """`[STREAM=]SPEC` → {source name: (stream, spec)}; a bare spec feeds the only stream."""
    names = [s.name for s in program.streams]
    out: dict[str, tuple[str, str]] = {}
    for i, raw in enumerate(specs):
        stream, sep, spec = raw.partition("=")
        if not sep or "://" in stream or ":" in stream:
            if len(names) != 1:
                raise ValueError(f"--source {raw}: say which stream it feeds, e.g. {names[0] if names else 'STREAM'}={raw}")
            stream, spec = names[0], raw
        if stream not in names:
            raise ValueError(f"--source {raw}: no stream `{stream}` (streams: {', '.join(names)})")
        out[f"{stream}#{i}"] = (stream, spec)
    return out


class JsonlSink:
    """Appends match records (and dead letters) to DIR/<rule>.jsonl."""

    def __init__(self, out_dir: str | Path) -> None:
        self.dir = Path(out_dir)
        self.dir.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def _rfc3339(frame: pl.DataFrame) -> pl.DataFrame:
        # Times as RFC 3339 UTC strings: what every JSON consumer (and our own JSON source) reads.
        return frame.with_columns(
            pl.col(c).dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ") for c, t in frame.schema.items() if isinstance(t, pl.Datetime)
        )

    def matches(self, rule_id: str, frame: pl.DataFrame) -> None:
        with open(self.dir / f"{rule_id}.jsonl", "a", encoding="utf-8") as f:
            f.write(self._rfc3339(frame).write_ndjson())

    def dead(self, frame: pl.DataFrame) -> None:
        with open(self.dir / "_dead_letter.jsonl", "a", encoding="utf-8") as f:
            f.write(frame.write_ndjson())


class FileWatch:
    """Notices a change of the program's rule files by mtime and size (cheap enough to ask
    every step); a directory is watched for its `*.cep` files coming and going too."""

    def __init__(self, path: str | Path | list[str]) -> None:
        self.paths = [path] if isinstance(path, (str, Path)) else list(path)
        self.seen = self._stamp()

    def _stamp(self) -> tuple[Any, ...] | None:
        from cepdsl.frontend import program_files

        stamps = []
        for f in program_files(self.paths):
            try:
                st = Path(f).stat()
            except OSError:
                return None
            stamps.append((f, st.st_mtime, st.st_size))
        return tuple(stamps)

    def changed(self) -> bool:
        now = self._stamp()
        if now is not None and now != self.seen:
            self.seen = now
            return True
        return False


def stats_table(stats: dict[str, Any]) -> Any:
    from rich.table import Table

    table = Table(title="cep run", show_edge=False)
    for col in ("rule", "events in", "matches", "suppressed", "late", "mean ms", "p99 ms", "state"):
        table.add_column(col, justify="left" if col == "rule" else "right")
    for rid, r in stats.get("rules", {}).items():
        table.add_row(
            rid,
            f"{r.get('events_in', 0):,}",
            f"{r.get('matches', 0):,}",
            f"{r.get('suppressed', 0):,}",
            f"{r.get('late', 0):,}",
            f"{r.get('mean_eval_ms', 0.0):.2f}",
            f"{r.get('p99_eval_ms', 0.0):.2f}",
            f"{r.get('state_bytes', 0):,} B",
        )
    eng = stats.get("engine", {})
    caption = (
        f"{eng.get('rows', 0):,} rows · {eng.get('batches', 0):,} batches · "
        f"{eng.get('dead_letters', 0):,} dead letters · {eng.get('checkpoints', 0):,} checkpoints"
    )
    store = stats.get("health", {}).get("state_store", {})
    if eng.get("degraded"):
        why = store.get("last_error") if store.get("degraded") else "a source is unreachable"
        caption += f"\nDEGRADED: {why}"
    table.caption = caption
    return table


def render_stats(stats: dict[str, Any], width: int = 120) -> str:
    """The stats table as plain text (for logs, tests, a non-terminal)."""
    from rich.console import Console

    console = Console(width=width, record=True, file=open(os.devnull, "w"), color_system=None)  # noqa: SIM115
    console.print(stats_table(stats))
    return console.export_text()


def serve_api(address: str, program: Program, file: str, engine: Any) -> Any:
    """Start the HTTP API (`/cep/health`, `/cep/stats`, ...) in a daemon thread; returns the server."""
    import uvicorn

    from runtime.api import create_app

    host, _, port = address.rpartition(":")
    server = uvicorn.Server(uvicorn.Config(create_app(program, file, engine=engine), host=host or "127.0.0.1",
                                           port=int(port), log_level="warning"))
    threading.Thread(target=server.run, name="cep-api", daemon=True).start()
    return server


def run_forever(
    file: str,
    program: Program,
    sources: Iterable[str],
    *,
    state: str | None = None,
    outbox: str | None = None,
    checkpoint_every: float = 5.0,
    out_dir: str | None = None,
    show_stats: bool = False,
    allow_hosts: Iterable[str] = (),
    clock: Callable[[], float] = time.time,
    stop: threading.Event | None = None,
    api: str | None = None,
    redis: str | None = None,
) -> int:
    """Run until every source ends (finite inputs) or a signal stops it. Returns the exit code."""
    from runtime.engine import StreamingEngine
    from runtime.notify import ChannelConfigError, DestinationPolicy, Notifier
    from runtime.sources import open_source
    from runtime.state.spec import open_store

    logging.basicConfig(level=os.environ.get("CEP_LOG", "WARNING"), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        specs = source_specs(program, sources)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    policy = DestinationPolicy.from_entries(allow_hosts)
    try:
        notifier = Notifier(program, outbox=outbox or DEFAULT_OUTBOX, policy=policy)
    except ChannelConfigError as e:  # a missing env() variable: a clear error at start
        print(f"error: {e}", file=sys.stderr)
        return 1
    store = open_store(state or DEFAULT_STATE)
    sink = JsonlSink(out_dir) if out_dir else None

    def open_sources(offsets: dict[str, dict[str, Any]]) -> dict[str, Any]:
        opened = {}
        for name, (stream, spec) in specs.items():
            # Files resume from their byte/file offsets; Redis resumes through its consumer
            # group's pending entries, HTTP polling has nothing to resume.
            resumable = spec.startswith(("jsonl:", "parquet-dir:"))
            resume = {"start_offsets": offsets[name]} if resumable and offsets.get(name) else {}
            opened[name] = open_source(spec, program.stream(stream), **resume)
        return opened

    from cepdsl.tables import TableError
    from runtime.tables import TableWatcher, redis_url_of

    tables = TableWatcher(program, redis_url_of(state, redis), clock=clock) if any(r.joins for r in program.rules) else None
    try:
        engine = StreamingEngine(
            program,
            open_sources,
            notifier=notifier,
            on_matches=sink.matches if sink else None,
            store=store,
            dead_letters=sink.dead if sink else None,
            clock=clock,
            checkpoint_every_s=checkpoint_every,
            tables=tables,
        )
    except TableError as e:  # a table that cannot be read at start: a clear error, not a traceback
        print(f"error: {e}", file=sys.stderr)
        return 1
    stop = stop or threading.Event()
    reload_requested = threading.Event()
    watch = FileWatch(file)

    def reload_if_asked() -> None:
        if not (reload_requested.is_set() or watch.changed()):
            return
        reload_requested.clear()
        result = engine.reload(file)
        if result.ok:
            print(f"cep: reloaded {file}", file=sys.stderr)
        else:
            print(f"cep: {file} does not check; the running rules keep running:\n{result.error}", file=sys.stderr)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, lambda *_: reload_requested.set())

    live = None
    if show_stats:
        from rich.console import Console
        from rich.live import Live

        live = Live(stats_table(engine.stats()), console=Console(file=sys.stderr), refresh_per_second=2)
        live.start()
    last_draw = 0.0

    def between_steps() -> None:
        nonlocal last_draw
        reload_if_asked()
        if live is not None and clock() - last_draw >= 0.5:
            live.update(stats_table(engine.stats()))
            last_draw = clock()

    notifier.start()
    server = serve_api(api, program, file, engine) if api else None
    try:
        engine.run(stop, on_step=between_steps)
    finally:
        if server is not None:
            server.should_exit = True
        if live is not None:
            live.update(stats_table(engine.stats()))
            live.stop()
        notifier.stop(drain=True, timeout=30.0)
        store.close()
    if engine.errors:
        for err in engine.errors:
            print(f"cep: {err}", file=sys.stderr)
        return 1
    summary = engine.stats()["engine"]
    print(json.dumps({k: v for k, v in summary.items() if k != "errors"}), file=sys.stderr)
    return 0
