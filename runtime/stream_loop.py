"""`cep run`: the streaming loop around a `cepdsl.engine.Session`.

    sources ──Batch──► Session.push ──matches──► notifier.submit / on_matches
                          │  ▲
        dead letters ◄────┘  └── wall clock: advance(stream, now − lateness) on a silent stream
                          │
                          └──► checkpoints (state + source offsets) to a runtime.state store

Everything that can block lives at the edges: source threads fill an inbox,
`step()` drains it.  Tests drive `feed()` / `step()` with an injected clock
and never start a thread.  See docs/engine.md.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import polars as pl

from cepdsl.engine import ENGINE_STATE_VERSION, ReloadReport, Session
from cepdsl.engine.ordering import NO_WATERMARK
from cepdsl.plan import Program
from runtime.dead_letter_writer import rows_as_dead_letters
from runtime.sources.batch import Batch
from runtime.state.store import OFFSETS_KEY  # re-exported: the stores give it a key of its own

log = logging.getLogger(__name__)

#: How far ahead of the wall clock an event's time may be in streaming (docs/security.md).
DEFAULT_MAX_FUTURE_S = 3600.0


def _duration_text(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


class MatchSink(Protocol):
    def submit(self, rule_id: str, matches: pl.DataFrame) -> int: ...


SourceMap = Mapping[str, Iterable[Batch]]
#: Opens the sources, given the offsets restored from the last checkpoint (by source name).
SourceOpener = Callable[[dict[str, dict[str, Any]]], SourceMap]


@dataclass
class StepReport:
    batches: int = 0
    rows: int = 0
    matches: dict[str, int] = field(default_factory=dict)
    checkpointed: bool = False


@dataclass(frozen=True)
class ReloadResult:
    ok: bool
    report: ReloadReport | None = None
    error: str | None = None  # the rendered diagnostics when the new file does not check


class StreamingEngine:
    """Runs a Program over live sources.

    `sources` maps a source name to an iterable of `Batch` (a `runtime.sources.Source`
    or anything else), or is a callable that opens them from restored offsets.
    `clock()` is wall time in seconds since the epoch; the watermark of a stream that
    has been silent for `idle_after_s` follows it (now − lateness) so absence and
    schedule rules fire without new events (LANGUAGE.md §6).
    """

    def __init__(
        self,
        program: Program,
        sources: SourceMap | SourceOpener,
        *,
        notifier: MatchSink | None = None,
        on_matches: Callable[[str, pl.DataFrame], None] | None = None,
        store: Any | None = None,
        dead_letters: Callable[[pl.DataFrame], None] | None = None,
        clock: Callable[[], float] = time.time,
        checkpoint_every_s: float = 30.0,
        idle_after_s: float = 1.0,
        session: Session | None = None,
        tables: Any | None = None,
        max_future_s: float | None = DEFAULT_MAX_FUTURE_S,
    ) -> None:
        self.program = program
        # Lookup tables (§9.2): read at start, reloaded on change or `refresh` (runtime.live_tables).
        if tables is None and any(r.joins for r in program.rules):
            from runtime.live_tables import TableWatcher

            tables = TableWatcher(program, clock=clock)
        self.tables = tables
        from runtime.silence_book import SilenceBook

        self.silences = SilenceBook(clock)  # run-time silences (§9.4, `/cep/silences`)
        self.session = session or Session(program, tables=tables.load_all() if tables is not None else None)
        self.notifier = notifier
        self.on_matches = on_matches
        self.store = store
        self.dead_letter_sink = dead_letters
        self.clock = clock
        self.checkpoint_every_s = checkpoint_every_s
        self.idle_after_s = idle_after_s
        #: Rows whose event time is further ahead of `clock()` than this are dead letters: one
        #: event stamped 9999-12-31 must not move the watermark and make every later row late.
        self.max_future_s = max_future_s
        self._open = sources
        self.sources: dict[str, Iterable[Batch]] = {}
        self._iters: dict[str, Iterator[Batch]] = {}
        self.offsets: dict[str, dict[str, Any]] = {}
        self._unacked: list[tuple[str, Batch]] = []
        self._acks: queue.Queue[list[tuple[str, Batch]] | None] = queue.Queue()
        self._acker: threading.Thread | None = None
        self._last_rows_at: dict[str, float] = {}
        self._last_checkpoint = clock()
        self._inbox: queue.Queue[tuple[str, Batch | BaseException | None]] = queue.Queue(maxsize=64)
        self._threads: list[threading.Thread] = []
        self._finished: set[str] = set()
        self._stop = threading.Event()
        self.errors: list[str] = []
        self.counters = {"batches": 0, "rows": 0, "dead_letters": 0, "matches": 0, "checkpoints": 0}
        self.state_bytes: dict[str, int] = {}  # per rule, as of the last checkpoint (sizing is not free)
        self.read: dict[str, int] = {}  # rows read per source (used and dead), for the exit summary
        self.matched: dict[str, int] = {}  # matches per rule in this run (session stats survive restarts)
        self.dead_reasons: dict[str, int] = {}  # dead letters by kind of reason
        #: What `start` took from the store: rule states, offsets and each stream's watermark then.
        self.restored: dict[str, Any] = {"rules": 0, "offsets": {}, "watermarks": {}}
        self.started = False

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> StreamingEngine:
        """Restore state and source offsets from the store, then open the sources."""
        restored: dict[str, dict[str, Any]] = {}
        snapshot: dict[str, bytes] = {}
        if self.store is not None:
            for key in self.store.rule_ids():
                st = self.store.load(key)
                if st is None:
                    continue
                if key == OFFSETS_KEY:
                    restored = dict(st.offsets)
                elif st.version == ENGINE_STATE_VERSION:
                    snapshot[key] = st.payload
                else:
                    # Never decoded: version 1 was pickle. `cep state migrate` converts it.
                    log.warning(
                        "state of %s has version %s, expected %s: starting it fresh (run `cep state migrate` to keep old checkpoints)",
                        key,
                        st.version,
                        ENGINE_STATE_VERSION,
                    )
            if snapshot:
                report = self.session.restore(snapshot, skip_unreadable=True)
                for key, why in report.unreadable:  # damaged or crafted: never run, never fatal
                    log.error("state of %s could not be read, starting it fresh: %s", key, why)
                if report.skipped:
                    log.info("rules starting fresh (changed since the checkpoint): %s", ", ".join(report.skipped))
        self.offsets = {k: dict(v) for k, v in restored.items()}
        self.restored = {
            "rules": sum(1 for r in self.program.rules if r.id in snapshot),
            "offsets": {k: dict(v) for k, v in restored.items()},
            "watermarks": {
                s.name: w
                for s in self.program.streams
                if (w := self.session.progress(s.name).watermark_us) is not None and w > NO_WATERMARK
            },
        }
        now = self.clock()
        for stream in self.program.streams:
            # A restored stream that stays silent must still reach its deadlines.
            if self.session.progress(stream.name).max_ts_us is not None:
                self._last_rows_at.setdefault(stream.name, now)
        self.sources = dict(self._open(restored) if callable(self._open) else self._open)
        self._iters = {}
        self.started = True
        return self

    def run(
        self,
        stop: threading.Event | None = None,
        poll_s: float = 0.1,
        on_step: Callable[[], None] | None = None,
    ) -> None:
        """Until `stop` is set or every source is exhausted: read sources in threads, step.
        `on_step` runs on this thread between steps (hot reload, live stats)."""
        if not self.started:
            self.start()
        stop = stop or self._stop
        if any(callable(getattr(src, "ack", None)) for src in self.sources.values()):
            # Acks (Redis Streams: XACK round trips) go to a thread of their own, in order:
            # still only after the checkpoint that covers them, but the engine does not wait.
            self._acks = queue.Queue()
            self._acker = threading.Thread(target=self._ack_loop, name="cep-ack", daemon=True)
            self._acker.start()
        for name, src in self.sources.items():
            t = threading.Thread(target=self._pump, args=(name, src, stop), name=f"cep-source-{name}", daemon=True)
            t.start()
            self._threads.append(t)
        try:
            while not stop.is_set() and len(self._finished) < len(self.sources):
                self.step(timeout=poll_s)
                if on_step is not None:
                    on_step()
            self.step(timeout=0.0)
            if len(self._finished) == len(self.sources) and not self.errors:
                # Every source ended for good (a finite file): the input is complete, so
                # close windows and sessions as replay would.
                self._deliver(self.session.flush())
                self._dead(self.session.take_dead_letters())
        finally:
            stop.set()
            self.close()

    def _pump(self, name: str, source: Iterable[Batch], stop: threading.Event) -> None:
        try:
            for batch in source:
                while not stop.is_set():
                    try:
                        self._inbox.put((name, batch), timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    # Stopped, not ended: the input is not complete, so `run` must not flush
                    # (closing open windows now would make their later rows late after a restart).
                    return
        except BaseException as e:  # reported by the loop, never swallowed
            self._inbox.put((name, e))
            return
        self._inbox.put((name, None))

    def stop(self) -> None:
        """Ask `run` to return (from a signal handler or another thread)."""
        self._stop.set()

    def close(self) -> None:
        """Final checkpoint (its acks delivered); close sources that can be closed."""
        self.checkpoint()
        if self._acker is not None:
            self._acks.put(None)
            self._acker.join(timeout=30.0)
            self._acker = None
        for src in self.sources.values():
            closer = getattr(src, "close", None)
            if closer is not None:
                closer()

    # ------------------------------------------------------------------ the loop
    def feed(self, source: str, batch: Batch | list[Batch]) -> dict[str, pl.DataFrame]:
        """Process a batch now (the loop calls this; so can tests). A list of one source's
        consecutive batches is pushed as one frame: the session's fixed cost per push is
        paid once, and matches do not depend on how rows are split into pushes."""
        batches = batch if isinstance(batch, list) else [batch]
        now = self.clock()
        outs: dict[str, pl.DataFrame] = {}
        for b in batches:
            self.read[source] = self.read.get(source, 0) + b.frame.height + b.dead.height
            if b.dead.height:
                self._dead(b.dead)
        frames = [b.frame for b in batches if b.frame.height]
        if frames:
            frame = frames[0] if len(frames) == 1 else pl.concat(frames)
            frame = self._without_future_rows(batches[0].stream, frame, now)
        if frames and frame.height:
            outs = self.session.push(batches[0].stream, frame)
            # After the push: a slow push (first JIT, a big batch) must not make the stream look silent.
            self._last_rows_at[batches[0].stream] = max(now, self.clock())
            self.counters["rows"] += frame.height
        for b in batches:
            self.counters["batches"] += 1
            if b.offsets:
                self.offsets[source] = dict(b.offsets)
            self._unacked.append((source, b))
        self._deliver(outs)
        self._dead(self.session.take_dead_letters())
        return outs

    def _without_future_rows(self, stream: str, frame: pl.DataFrame, now: float) -> pl.DataFrame:
        """`frame` without the rows too far ahead of the wall clock (those go to dead letters)."""
        if self.max_future_s is None:
            return frame
        try:
            tf = self.program.stream(stream).time_field
        except (KeyError, StopIteration):
            return frame
        if tf is None or tf not in frame.columns or not isinstance(frame.schema[tf], pl.Datetime):
            return frame
        limit_us = int((now + self.max_future_s) * 1_000_000)
        t = pl.col(tf).dt.epoch("us")
        latest = frame.select(t.max()).item()
        if latest is None or latest <= limit_us:  # the common case: one reduction, no copy
            return frame
        ahead = t > limit_us
        why = pl.format(
            "event time {} is more than {} ahead of the wall clock (max_future): not allowed to move time",
            pl.col(tf).cast(pl.String),
            pl.lit(_duration_text(self.max_future_s)),
        )
        self._dead(rows_as_dead_letters(stream, frame.filter(ahead), why))
        return frame.filter(~ahead.fill_null(False))

    def step(self, timeout: float = 0.0) -> StepReport:
        """Take what the sources have produced (synchronously when no thread runs),
        then follow the wall clock on silent streams and checkpoint when due."""
        report = StepReport()
        if self.tables is not None:
            self.tables.poll(self.session)
        for source, batches in _runs(self._pull(timeout)):
            outs = self.feed(source, batches)
            report.batches += len(batches)
            report.rows += sum(b.frame.height for b in batches)
            for rid, f in outs.items():
                if f.height:
                    report.matches[rid] = report.matches.get(rid, 0) + f.height
        for rid, f in self.tick().items():
            if f.height:
                report.matches[rid] = report.matches.get(rid, 0) + f.height
        if self.clock() - self._last_checkpoint >= self.checkpoint_every_s:
            self.checkpoint()
            report.checkpointed = True
        elif self.store is None:
            self._ack()
        return report

    def _pull(self, timeout: float) -> list[tuple[str, Batch]]:
        if not self._threads:
            # Synchronous mode (tests, single source): one batch from each live source.
            got = []
            for name, src in self.sources.items():
                if name in self._finished:
                    continue
                it = self._iters.setdefault(name, iter(src))
                batch = next(it, None)
                if batch is None:
                    self._finished.add(name)
                else:
                    got.append((name, batch))
            return got
        got = []
        try:
            item = self._inbox.get(timeout=timeout) if timeout > 0 else self._inbox.get_nowait()
            while True:
                name, payload = item
                if payload is None:
                    self._finished.add(name)
                elif isinstance(payload, BaseException):
                    self._finished.add(name)
                    self.errors.append(f"source {name}: {payload}")
                    log.error("source %s failed: %s", name, payload)
                else:
                    got.append((name, payload))
                item = self._inbox.get_nowait()
        except queue.Empty:
            pass
        return got

    def tick(self) -> dict[str, pl.DataFrame]:
        """Wall clock → watermark for streams silent for `idle_after_s` (and that have
        seen at least one event: history arriving late must not be declared late)."""
        now = self.clock()
        outs: dict[str, pl.DataFrame] = {}
        if self._threads and not self._inbox.empty():
            return outs  # batches are waiting: not silent, whatever the clock says
        for stream in self.program.streams:
            if stream.time_field is None or stream.name not in self._last_rows_at:
                continue
            if now - self._last_rows_at[stream.name] < self.idle_after_s:
                continue
            # A row a source has read but not yet cut into a batch can be up to its max_delay old.
            held_us = int(
                1_000_000
                * max(
                    (
                        getattr(src, "max_delay_s", 0.0)
                        for src in self.sources.values()
                        if getattr(getattr(src, "stream", None), "name", None) == stream.name
                    ),
                    default=0.0,
                )
            )
            got = self.session.advance(stream.name, int(now * 1_000_000) - stream.lateness_us - held_us)
            for rid, f in got.items():
                if f.height:
                    outs[rid] = pl.concat([outs[rid], f]) if rid in outs else f
        self._deliver(outs)
        return outs

    def _deliver(self, outs: Mapping[str, pl.DataFrame]) -> None:
        for rid, frame in outs.items():
            if frame.height == 0:
                continue
            if self.silences.silences:
                rule = next((r for r in self.program.rules if r.id == rid), None)
                if rule is not None:
                    frame = self._runtime_silences(rule, frame)
            self.counters["matches"] += frame.height
            self.matched[rid] = self.matched.get(rid, 0) + frame.height
            if self.on_matches is not None:
                self.on_matches(rid, frame)
            if self.notifier is not None:
                try:
                    self.notifier.submit(rid, frame)
                except KeyError:
                    # A rule added by a hot reload that the notifier cannot know about
                    # (no `reload` on it): say so loudly, keep the engine running.
                    self.errors.append(f"rule {rid}: {frame.height} match(es) not notified (unknown to the notifier)")
                    log.error("rule %s: matches not notified: the notifier does not know the rule", rid)

    def _runtime_silences(self, rule: Any, frame: pl.DataFrame) -> pl.DataFrame:
        """Run-time silences on what a rule emits now.  With `for`/`resolve` (§9.3) they see
        firing records only: a resolved record follows its firing record's notification."""
        if not rule.lifecycle or "state" not in frame.columns:
            return self.silences.apply(rule, frame)
        if "silenced" not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias("silenced"))
        firing = (frame["state"] == "firing").fill_null(False)
        if firing.any():
            applied = self.silences.apply(rule, frame.filter(firing))["silenced"]
            frame = frame.with_columns(frame["silenced"].clone().scatter(firing.arg_true(), applied))
        return self.session.carry_holds(rule.id, frame)

    def _dead(self, frame: pl.DataFrame) -> None:
        if frame.height == 0:
            return
        self.counters["dead_letters"] += frame.height
        # Counted by kind ("late for rule x", "field 'ts': expected timestamp") for the exit summary.
        kinds = pl.col("reason").str.extract(r"^(field '[^']*': [^,(]*|[^:(]*)", 1).str.strip_chars()
        for reason, n in frame.group_by(kinds).len().rows():
            key = reason or "other"
            if key.startswith("late") and self.restored["watermarks"] and not any(k.startswith("late") for k in self.dead_reasons):
                log.warning(
                    "rows are late against the watermark restored from the state store (%s): the input is older "
                    "than what an earlier run processed; to process it again from scratch, run with --fresh",
                    ", ".join(f"{k} at {_iso_us(w)}" for k, w in self.restored["watermarks"].items()),
                )
            self.dead_reasons[key] = self.dead_reasons.get(key, 0) + n
        if self.dead_letter_sink is not None:
            self.dead_letter_sink(frame)

    # ------------------------------------------------------------------ state
    def checkpoint(self) -> None:
        """Save every rule's state and the source offsets in one atomic `save_many`,
        then acknowledge the batches it covers."""
        self._last_checkpoint = self.clock()
        if self.store is None:
            self._ack()
            return
        offsets = {k: dict(v) for k, v in self.offsets.items()}
        snap = self.session.snapshot()
        self.state_bytes = {key: len(payload) for key, payload in snap.items()}
        entries: list[tuple[str, int, bytes, dict]] = [(key, ENGINE_STATE_VERSION, payload, {}) for key, payload in snap.items()]
        entries.append((OFFSETS_KEY, ENGINE_STATE_VERSION, b"", offsets))
        self.store.save_many(entries)
        for key in self.store.rule_ids():
            if key not in snap and key != OFFSETS_KEY:
                self.store.delete(key)  # a rule removed by a reload
        self.counters["checkpoints"] += 1
        self._ack()

    def _ack(self) -> None:
        pending, self._unacked = self._unacked, []
        if not pending:
            return
        if self._acker is not None:
            self._acks.put(pending)
        else:
            self._ack_now(pending)

    def _ack_now(self, pending: list[tuple[str, Batch]]) -> None:
        for name, batch in pending:
            ack = getattr(self.sources.get(name), "ack", None)
            if ack is not None:
                ack(batch)

    def _ack_loop(self) -> None:
        while (pending := self._acks.get()) is not None:
            try:
                self._ack_now(pending)
            except Exception as e:  # noqa: BLE001 - unacked entries are delivered again: at-least-once
                log.warning("acknowledging batches failed (they will be delivered again): %s", e)

    def forget_state(self) -> list[str]:
        """`--fresh`: drop every rule state and the source offsets from the store (before
        `start`), so the run begins as the first one did. Touches nothing else the store
        may hold (rule catalogue, alert history). Returns the keys removed."""
        if self.store is None:
            return []
        keys = list(self.store.rule_ids())
        for key in keys:
            self.store.delete(key)
        return keys

    # ------------------------------------------------------------------ hot reload
    def reload(self, new: Program | str | Path) -> ReloadResult:
        """Switch rules without stopping: a file that does not check, or a program that cannot
        be built (an executor, a channel, a template), is reported and the running rules keep
        running; see `Session.reload` for what keeps its state."""
        if not isinstance(new, Program):
            from cepdsl.diagnostics import CheckError
            from cepdsl.frontend import compile_path

            try:
                new = compile_path(new)
            except CheckError as e:
                return ReloadResult(False, error=str(e))
            except OSError as e:
                return ReloadResult(False, error=f"{new}: {e}")
            except Exception as e:  # noqa: BLE001 - a checker bug must not end the engine
                log.exception("checking %s failed", new)
                return ReloadResult(False, error=f"{new}: could not be checked ({type(e).__name__}: {e})")
        # Everything is built before anything switches: a failure in one part leaves all of it
        # running the old program (the session builds aside and swaps at the end; the notifier
        # hands back its switch; tables are re-pointed only after both).
        try:
            prepare = getattr(self.notifier, "prepare_reload", None)
            switch_notifier = prepare(new) if prepare is not None else None
            watcher = None
            if self.tables is not None or any(r.joins for r in new.rules):
                from cepdsl.tables import TableError
                from runtime.live_tables import TableWatcher

                watcher = self.tables or TableWatcher(new, clock=self.clock)
                try:
                    report = self.session.reload(new, tables=watcher.fresh_for(new))
                except TableError as e:
                    return ReloadResult(False, error=str(e))
            else:
                report = self.session.reload(new)
        except Exception as e:  # noqa: BLE001 - reported, and the old program keeps running
            log.exception("building the reloaded program failed")
            return ReloadResult(False, error=f"the new rules could not be started ({type(e).__name__}: {e})")
        if watcher is not None:
            watcher.reprogram(new)
            self.tables = watcher
        # §9.3: firing episodes of changed and removed rules end with a resolved record,
        # delivered while the notifier still knows those rules as they were.
        self._deliver(report.resolved)
        self.program = new
        if switch_notifier is not None:
            switch_notifier()
        else:
            reload_notifier = getattr(self.notifier, "reload", None)
            if reload_notifier is not None:
                reload_notifier(new)
        return ReloadResult(True, report)

    # ------------------------------------------------------------------ observability
    def stats(self) -> dict[str, Any]:
        """For the live table: engine counters, per-stream progress, per-rule stats."""
        streams = {}
        for name, p in self.session.progresses().items():
            streams[name] = {
                "watermark_us": p.watermark_us,
                "max_ts_us": p.max_ts_us,
                "idle_s": (self.clock() - self._last_rows_at[name]) if name in self._last_rows_at else None,
            }
        rules = self.session.stats(state_size=False)
        for rid, row in rules.items():
            # Sized at the last checkpoint: pickling every rule for a 2 Hz table would cost more than the rules.
            row["state_bytes"] = self.state_bytes.get(rid, 0)
            row["silenced"] = row.get("silenced", 0) + self.silences.counts.get(rid, 0)  # file + run-time silences
        health = self.health()
        return {
            "engine": dict(
                self.counters,
                **(self.tables.counters() if self.tables is not None else {}),
                errors=list(self.errors),
                degraded=health["degraded"],
            ),
            "streams": streams,
            "rules": rules,
            "health": health,
        }

    def health(self) -> dict[str, Any]:
        """For `/cep/health`: `degraded` while the state store runs on its in-memory
        fallback (Redis down) or a source cannot reach its service; the engine keeps running."""
        store_health = getattr(self.store, "health", None)
        store = store_health() if store_health is not None else {"degraded": False}
        sources = {}
        for name, src in self.sources.items():
            last = getattr(src, "last_error", None)
            sources[name] = {"errors": int(getattr(src, "errors", 0) or 0), "last_error": last, "finished": name in self._finished}
        from runtime.sources.redis_streams import RedisStreamSource

        # A Redis stream that cannot be read is an outage; a failed HTTP poll is a dead letter.
        # So is a followed file that does not exist (`unavailable`).
        unreachable = [
            n
            for n, src in self.sources.items()
            if (isinstance(src, RedisStreamSource) and src.last_error is not None) or getattr(src, "unavailable", False)
        ]
        out = {
            "degraded": bool(store.get("degraded")) or bool(unreachable),
            "state_store": store,
            "sources": sources,
            "errors": list(self.errors),
        }
        if self.tables is not None:  # a failed reload keeps the old rows: reported, not degraded
            out["tables"] = self.tables.health()
        return out


def _iso_us(us: int) -> str:
    import datetime as dt

    return (dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=us)).isoformat() + "Z"


def _runs(pulled: list[tuple[str, Batch]]) -> list[tuple[str, list[Batch]]]:
    """Consecutive batches of the same source and stream, grouped (order kept): what
    queued up while the engine was busy is processed as one push."""
    runs: list[tuple[str, list[Batch]]] = []
    for name, batch in pulled:
        if runs and runs[-1][0] == name and runs[-1][1][-1].stream == batch.stream:
            runs[-1][1].append(batch)
        else:
            runs.append((name, [batch]))
    return runs
