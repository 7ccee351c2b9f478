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

import logging
import os
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import polars as pl

from cepdsl.diagnostics import nearest
from cepdsl.plan import Program
from runtime.sources.errors import SourceSpecError

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
                raise SourceSpecError(
                    f"--source {raw}: say which stream it feeds (streams: {', '.join(names)})",
                    (f"e.g. --source {names[0] if names else 'STREAM'}={raw}",),
                )
            stream, spec = names[0], raw
        if stream not in names:
            best = nearest(stream, names)
            raise SourceSpecError(
                f"--source {raw}: the file declares no stream `{stream}` (streams: {', '.join(names)})",
                (f"did you mean `{best}`?",) if best else (),
            )
        out[f"{stream}#{i}"] = (stream, spec)
    return out


def source_opener(
    program: Program, specs: dict[str, tuple[str, str]], control: Any = None
) -> Callable[[dict[str, dict[str, Any]]], dict[str, Any]]:
    """The engine's `open_sources`: every spec opened for its stream, and `control` (the API's
    wake-up source), when given, beside them as `_control`."""
    from runtime.sources import open_source

    def open_sources(offsets: dict[str, dict[str, Any]]) -> dict[str, Any]:
        opened: dict[str, Any] = {}
        for name, (stream, spec) in specs.items():
            # Files resume from their byte/file offsets; Redis resumes through its consumer
            # group's pending entries, HTTP polling has nothing to resume.
            resumable = spec.startswith(("jsonl:", "parquet-dir:"))
            resume = {"start_offsets": offsets[name]} if resumable and offsets.get(name) else {}
            opened[name] = open_source(spec, program.stream(stream), **resume)
        if control is not None:
            opened["_control"] = control
        return opened

    return open_sources


def on_signals(stop: threading.Event, reload_requested: threading.Event | None = None) -> None:
    """SIGINT and SIGTERM set `stop`; SIGHUP, where there is one, sets `reload_requested`.
    Only the main thread may set handlers: run on another (a test's), signals are left alone."""
    if threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if reload_requested is not None and hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, lambda *_: reload_requested.set())


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

    #: A change counts once the files have stayed the same this long: an editor (or a
    #: test's write_text) truncates and then writes, and a reload in between would run
    #: the empty or half-written file (an empty file checks clean: every rule removed).
    SETTLE_S = 0.3

    def __init__(self, path: str | Path | list[str], clock: Any = time.monotonic) -> None:
        self.paths = [path] if isinstance(path, (str, Path)) else list(path)
        self.clock = clock
        self.seen = self._stamp()
        self._pending: tuple[Any, ...] | None = None
        self._pending_since = 0.0

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
        if now is None or now == self.seen:
            self._pending = None
            return False
        t = self.clock()
        if now != self._pending:  # still being written: wait for it to settle
            self._pending, self._pending_since = now, t
            return False
        if t - self._pending_since < self.SETTLE_S:
            return False
        self.seen, self._pending = now, None
        return True


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
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(program, file, engine=engine), host=host or "127.0.0.1", port=int(port), log_level="warning", log_config=None
        )
    )
    threading.Thread(target=server.run, name="cep-api", daemon=True).start()
    return server


def _store_label(spec: str) -> str:
    from runtime.state.spec import sqlite_path

    path = sqlite_path(spec)
    return path if path is not None else spec.split("?", 1)[0]


def _channels(program: Program, rule_id: str) -> str:
    """` → ops_console` for a rule that notifies, `` for one that only records."""
    try:
        names = program.rule(rule_id).notify
    except (KeyError, StopIteration):  # a rule removed by a reload
        return ""
    return f" → {', '.join(names)}" if names else ""


def exit_summary(
    engine: Any, specs: dict[str, tuple[str, str]], *, notifier: Any, out_dir: str | None, state: str, outbox: str
) -> str:
    """What `cep run` did, for the person who ran it: what it read, matched and dead-lettered, and
    where each of those went (docs/cli.md)."""
    read = engine.read
    total = sum(read.values())
    per_source = ", ".join(f"{name.split('#')[0]}={spec}: {read.get(name, 0):,}" for name, (_, spec) in specs.items())
    lines = [f"cep run: read {total:,} row{'s' if total != 1 else ''} ({per_source})"]
    matches = engine.matched
    n = sum(matches.values())
    line = f"  matched {n:,}"
    if n:
        line += " (" + ", ".join(f"{rid} {k:,}{_channels(engine.program, rid)}" for rid, k in matches.items() if k) + ")"
        where = []
        if notifier is not None:
            ns = notifier.stats()
            dup = ns.get("suppressed_duplicates", 0)
            where.append(
                f"notifications: {ns.get('sent', 0):,} sent, {ns.get('failed', 0):,} failed, "
                + (f"{dup:,} already sent by an earlier run, " if dup else "")
                + f"{ns.get('queue_depth', 0):,} still queued in {_store_label(outbox)}"
            )
        where.append(f"records in {out_dir}/<rule>.jsonl" if out_dir else "records not kept (add --out DIR to keep them)")
        line += "; " + "; ".join(where)
    lines.append(line)
    dead = engine.counters["dead_letters"]
    line = f"  dead letters {dead:,}"
    if dead:
        line += " (" + ", ".join(f"{reason}: {k:,}" for reason, k in sorted(engine.dead_reasons.items())) + ")"
        line += f" in {out_dir}/_dead_letter.jsonl" if out_dir else "; not kept (add --out DIR to keep them with their reasons)"
    lines.append(line)
    if engine.store is not None:
        lines.append(f"  state saved in {_store_label(state)}: the next run resumes here (--fresh starts over)")
    if total == 0 and engine.restored["offsets"]:
        lines.append("  nothing new was read: the sources resumed where an earlier run stopped (--fresh reads them again)")
    if any(k.startswith("late") for k in engine.dead_reasons) and engine.restored["watermarks"]:
        lines.append("  late rows: the input is older than the state an earlier run saved (--fresh processes it from scratch)")
    return "\n".join(lines)


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
    fresh: bool = False,
    summary: bool = True,
    log_format: str = "text",
    max_future_s: float | None = None,
) -> int:
    """Run until every source ends (finite inputs) or a signal stops it. Returns the exit code:
    0 done, 1 a source or delivery failed while running, 2 a bad spec or file at start."""
    from runtime import logs
    from runtime.compile_notice import announce_compilation
    from runtime.notify import ChannelConfigError, DestinationPolicy, Notifier
    from runtime.sources import SourceSpecError
    from runtime.state.spec import StateSpecError, open_store
    from runtime.stream_loop import StreamingEngine

    logs.configure(log_format)

    def error(message: str, hints: Iterable[str] = ()) -> None:
        print(f"error: {message}", file=sys.stderr)
        for hint in hints:
            print(f"hint: {hint}", file=sys.stderr)

    try:
        specs = source_specs(program, sources)
    except SourceSpecError as e:
        error(str(e), e.hints)
        return 2
    state = state or DEFAULT_STATE
    outbox = outbox or DEFAULT_OUTBOX
    if out_dir is not None and Path(out_dir).exists() and not Path(out_dir).is_dir():
        error(f"--out {out_dir}: exists and is not a directory")
        return 2
    policy = DestinationPolicy.from_entries(allow_hosts)
    try:
        notifier = Notifier(program, outbox=outbox, policy=policy)
    except ChannelConfigError as e:  # a missing env() variable: a clear error at start
        error(str(e))
        return 1
    except StateSpecError as e:
        error(f"--outbox: {e}", e.hints)
        return 2
    except (OSError, sqlite3.Error) as e:
        error(f"--outbox {outbox}: cannot open it: {e}")
        return 2
    try:
        store = open_store(state)
    except StateSpecError as e:
        error(f"--state: {e}", e.hints)
        notifier.stop(drain=False)
        return 2
    except (OSError, sqlite3.Error) as e:
        error(f"--state {state}: cannot open it: {e}")
        notifier.stop(drain=False)
        return 2
    sink = JsonlSink(out_dir) if out_dir else None
    from cepdsl.tables import TableError
    from runtime.live_tables import TableWatcher, redis_url_of

    tables = TableWatcher(program, redis_url_of(state, redis), clock=clock) if any(r.joins for r in program.rules) else None
    try:
        engine = StreamingEngine(
            program,
            source_opener(program, specs),
            notifier=notifier,
            on_matches=sink.matches if sink else None,
            store=store,
            dead_letters=sink.dead if sink else None,
            clock=clock,
            checkpoint_every_s=checkpoint_every,
            tables=tables,
            **({"max_future_s": max_future_s} if max_future_s is not None else {}),
        )
    except TableError as e:  # a table that cannot be read at start: a clear error, not a traceback
        error(str(e))
        notifier.stop(drain=False)
        store.close()
        return 1
    except Exception as e:  # noqa: BLE001 - a checked program that cannot start is our bug: say so, no traceback
        logging.getLogger(__name__).debug("starting the engine failed", exc_info=True)
        error(f"the rules could not be started ({type(e).__name__}: {e})")
        notifier.stop(drain=False)
        store.close()
        return 1
    if fresh:
        forgotten = engine.forget_state()
        print(
            f"cep: --fresh: forgot {len(forgotten)} saved state entr{'y' if len(forgotten) == 1 else 'ies'} "
            f"(rule states and source offsets) in {_store_label(state)}",
            file=sys.stderr,
        )
    try:
        engine.start()
    except SourceSpecError as e:
        error(str(e), e.hints)
        code = 2
    except OSError as e:
        error(f"{e.filename}: {e.strerror or e}" if e.filename else str(e))
        code = 2
    except ValueError as e:  # a source's own check of its options (max_rows=0, ...)
        error(str(e))
        code = 2
    else:
        code = 0
        for src in engine.sources.values():
            missing = getattr(src, "missing_input", lambda: None)()
            if missing is not None:
                error(missing, ("drop ?follow=false to wait for the file to appear",))
                code = 2
                break
    if code:
        notifier.stop(drain=False)
        store.close()
        return code
    notes = [(name, note) for name, src in engine.sources.items() if (note := getattr(src, "resume_note", lambda: None)()) is not None]
    if engine.restored["rules"] or notes:
        n = engine.restored["rules"]
        print(
            f"cep: resuming from the state an earlier run saved in {_store_label(state)} "
            f"({n} rule{'' if n == 1 else 's'}); --fresh starts over",
            file=sys.stderr,
        )
    for name, note in notes:
        print(f"cep: source {name.split('#')[0]}: {note}", file=sys.stderr)
    if any(spec.startswith("jsonl:-") for _, spec in specs.values()) and sys.stdin.isatty():
        # Not piped: a silent wait would look like a hang.
        print("cep: reading JSON lines from the terminal (paste or type them; Ctrl-D ends the input)", file=sys.stderr)

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

    on_signals(stop, reload_requested)

    live = None
    compiling = threading.Event()
    if show_stats:
        from rich.live import Live

        from runtime.terminal import console

        live = Live(stats_table(engine.stats()), console=console(sys.stderr), refresh_per_second=2)
        live.start()
    last_draw = 0.0

    def draw() -> Any:
        table = stats_table(engine.stats())
        if compiling.is_set():
            table.caption = f"{table.caption}\ncompiling kernels (first run only)…"
        return table

    def on_compile(on: bool) -> None:
        compiling.set() if on else compiling.clear()
        if live is not None:
            live.update(draw())

    def between_steps() -> None:
        nonlocal last_draw
        reload_if_asked()
        if live is not None and clock() - last_draw >= 0.5:
            live.update(draw())
            last_draw = clock()

    notifier.start()
    server = serve_api(api, program, file, engine) if api else None
    try:
        with announce_compilation(print_line=live is None, on_change=on_compile):
            engine.run(stop, on_step=between_steps)
    finally:
        if server is not None:
            server.should_exit = True
        if live is not None:
            live.update(stats_table(engine.stats()))
            live.stop()
        notifier.stop(drain=True, timeout=30.0)
        store.close()
    if summary:
        print(exit_summary(engine, specs, notifier=notifier, out_dir=out_dir, state=state, outbox=outbox), file=sys.stderr)
    if engine.errors:
        for err in engine.errors:
            print(f"cep: {err}", file=sys.stderr)
        return 1
    return 0
