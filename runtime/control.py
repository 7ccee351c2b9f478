"""The running system as the HTTP API sees it: rule files + catalogue → one program,
changes applied through the engine's hot-reload path, matches into the alert history.

    API thread ── check ──► catalogue (new version) ──► call(apply) ──┐
                                                                        ▼ engine thread, between batches
    API thread ── ingest ─► typed batch ────────────────► call(feed) ──► StreamingEngine.reload / feed

Everything that touches the engine's session runs on the engine's own thread
(`call` queues it and wakes the loop with an empty batch), in the order the
requests were accepted: a rule change applies from the first batch after it,
and the sources' offsets at that point are stored with the version.  Without a
running loop (tests, `create_app(program)`), `call` runs the function at once.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from cepdsl.diagnostic_formats import diagnostic_dict
from cepdsl.diagnostics import Diagnostic, render
from cepdsl.plan import Program, RulePlan
from runtime.catalogue import Catalogue, Version
from runtime.catalogue.program import (
    Assembly,
    Declared,
    assemble,
    declarations,
    entry_file,
    grammar_has_templates,
    template_decl_text,
)
from runtime.dead_letter_writer import empty_dead_letters
from runtime.sources.batch import Batch

log = logging.getLogger("cep.control")


#: Names the API can put in a path (runtime.api.models.ID_PATTERN).
ADDRESSABLE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


class Refused(Exception):
    """A request the API answers with a 4xx: `status`, a stable `code` and a message."""

    def __init__(self, status: int, code: str, message: str, diagnostics: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.diagnostics = diagnostics


def rfc3339(us: int | None) -> str | None:
    """Microseconds since the epoch → RFC 3339 UTC; None for "no value" (never a sentinel)."""
    if us is None or us <= -(2**62) or us >= 2**62:
        return None
    return (dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=int(us))).isoformat(timespec="microseconds") + "Z"


def rfc3339_s(seconds: float | None) -> str | None:
    return None if seconds is None else rfc3339(int(seconds * 1_000_000))


def diagnostic_json(d: Diagnostic, sources: dict[str, str]) -> dict[str, Any]:
    """`cep check --format json`'s record of a diagnostic, always with `rendered` (the API's models require it)."""
    return {**diagnostic_dict(d), "rendered": render(d, sources.get(d.span.file))}


class WakeSource:
    """A source of empty batches, one per `wake()`: it makes the engine loop run `on_step`
    (where queued control work is done) now instead of after its idle poll."""

    def __init__(self, stream: str, schema: dict[str, Any]) -> None:
        self.stream_name = stream
        self._empty = pl.DataFrame(schema=schema)
        self._q: queue.SimpleQueue[bool] = queue.SimpleQueue()

    def wake(self) -> None:
        self._q.put(True)

    def __iter__(self) -> Iterator[Batch]:
        while self._q.get():
            yield Batch(self.stream_name, self._empty, empty_dead_letters())

    def close(self) -> None:
        self._q.put(False)


@dataclass
class ReloadRecord:
    at: float
    ok: bool
    origin: str  # "file", "api", "start"
    diagnostics: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    report: dict[str, list[str]] | None = None
    offsets: dict[str, Any] | None = None  # the sources' offsets when it applied (from the next batch on)


@dataclass
class RuleView:
    id: str
    origin: str  # "file" | "catalogue"
    file: str
    line: int
    text: str
    enabled: bool
    loaded: bool
    version: int | None
    plan: RulePlan | None  # the running plan (None: disabled or not loaded)
    written: RulePlan | None = None  # the plan as written, also for a disabled rule (for display)


class ControlPlane:
    def __init__(
        self,
        files: list[str],
        catalogue: Catalogue,
        history: Any = None,  # runtime.history: SqlHistory or RedisHistory
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.files = list(files)
        self.catalogue = catalogue
        self.history = history
        self.clock = clock
        self.engine: Any = None
        self.notifier: Any = None
        self.sources: dict[str, tuple[str, str]] = {}  # source name → (stream, spec)
        self.started_at = clock()
        self.reloads: list[ReloadRecord] = []
        self._problems: dict[tuple[str, str], str] = {}  # catalogue entries that no longer checked at start
        self._lock = threading.RLock()
        self._calls: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        self._wake: WakeSource | None = None
        self._loop_thread: threading.Thread | None = None
        self._file_texts: dict[str, str] = {}
        self.assembly: Assembly | None = None
        self.recent: dict[str, list[pl.DataFrame]] = {}  # last input rows per stream (for simulate)
        self.recent_max = 1000
        self.ingest_counts: dict[str, int] = {}
        self.dead_by_stream: dict[str, int] = {}
        self.redis_degraded_since: float | None = None
        self.history_writer: Any = None
        self._seen_stamp: str | None = None
        self._changing = False  # an API change is between its commit and its apply
        self._left_out: set[tuple[str, str]] = set()

    # ------------------------------------------------------------------ program
    def read_files(self) -> dict[str, str]:
        from cepdsl.frontend import read_rule_file

        return {f: read_rule_file(f) for f in self.files}

    def _catalogue_texts(self, override: dict[tuple[str, str], str | None] | None = None) -> dict[str, str]:
        """File name → text of every catalogue entry (with `override`: (kind, id) → new text, None = deleted)."""
        texts: dict[str, str] = {}
        entries: dict[tuple[str, str], str] = {}
        for kind in ("channel", "rule", "template"):
            for v in self.catalogue.latest(kind):
                if (kind, v.id) not in self._left_out:  # did not check at start: out until it is changed
                    entries[(kind, v.id)] = v.text
        for key, text in (override or {}).items():
            if text is None:
                entries.pop(key, None)
            else:
                entries[key] = text
        for (kind, id_), text in sorted(entries.items()):
            if kind == "template":
                if grammar_has_templates():
                    texts[entry_file(kind, id_)] = template_decl_text(id_, text)
                continue
            texts[entry_file(kind, id_)] = text
        return texts

    def assemble(
        self,
        override: dict[tuple[str, str], str | None] | None = None,
        toggles: dict[str, bool] | None = None,
        files: dict[str, str] | None = None,
    ) -> Assembly:
        files = self._file_texts if files is None else files
        toggles = self.catalogue.toggles() if toggles is None else toggles
        disabled = {rid for rid, on in toggles.items() if not on}
        return assemble({**files, **self._catalogue_texts(override)}, disabled)

    def load(self) -> Assembly:
        """At start: the files must check; catalogue entries that no longer do are left out and reported."""
        self._file_texts = self.read_files()
        self._seen_stamp = self._stamp_or_none()
        full = self.assemble()
        if full.ok:
            self.assembly = full
            return full
        alone = assemble(self._file_texts, {rid for rid, on in self.catalogue.toggles().items() if not on})
        if not alone.ok:
            self.assembly = alone
            return alone
        # Add the catalogue's entries one at a time; keep those that check with what is kept so far.
        kept: dict[tuple[str, str], str | None] = {}
        for kind in ("channel", "rule"):
            for v in self.catalogue.latest(kind):
                kept[(kind, v.id)] = None
        for kind in ("channel", "rule"):
            for v in self.catalogue.latest(kind):
                trial = dict(kept)
                trial[(kind, v.id)] = v.text
                if self.assemble(trial).ok:
                    kept = trial
                else:
                    self._problems[(kind, v.id)] = (
                        f"catalogue {kind} `{v.id}` (version {v.version}) does not check against the rule files; it is not loaded"
                    )
        self._left_out = {k for k, t in kept.items() if t is None}
        self.assembly = self.assemble()
        return self.assembly

    @property
    def problems(self) -> list[str]:
        return list(self._problems.values())

    @property
    def program(self) -> Program | None:
        engine_program = getattr(self.engine, "program", None)
        if engine_program is not None:
            return engine_program
        return self.assembly.program if self.assembly else None

    # ------------------------------------------------------------------ engine thread
    def attach(self, engine: Any, notifier: Any = None, sources: dict[str, tuple[str, str]] | None = None) -> None:
        self.engine = engine
        self.notifier = notifier
        self.sources = dict(sources or {})
        self._push_channel_switches()

    def wake_source(self) -> WakeSource | None:
        """The source that wakes the engine loop for queued work (None: the program has no stream)."""
        program = self.program
        if program is None or not program.streams:
            return None
        s = program.streams[0]
        self._wake = WakeSource(s.name, s.schema)
        return self._wake

    def loop_started(self) -> None:
        self._loop_thread = threading.current_thread()

    def loop_stopped(self) -> None:
        self._loop_thread = None
        self.run_pending()

    def run_pending(self) -> None:
        """Called by the engine loop between steps: do the queued work, in order."""
        while True:
            try:
                fn, fut = self._calls.get_nowait()
            except queue.Empty:
                return
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn())
            except BaseException as e:  # noqa: BLE001 - handed to the caller
                fut.set_exception(e)

    def call(self, fn: Callable[[], Any], timeout: float = 60.0) -> Any:
        """Run `fn` on the engine thread between batches (at once when no loop runs).
        An engine busy past `timeout` (a first kernel compilation, a huge batch) is a 503:
        the work stays queued and is done when the engine gets to it."""
        if threading.current_thread() is self._loop_thread:
            return fn()  # already between batches (a file reload): never wait for the API's lock here
        if self._loop_thread is None or self._wake is None:
            with self._lock:
                return fn()
        fut: Future[Any] = Future()
        self._calls.put((fn, fut))
        self._wake.wake()
        try:
            return fut.result(timeout=timeout)
        except FutureTimeout:
            raise Refused(
                503,
                "engine-busy",
                f"the engine did not reach a batch boundary within {timeout:.0f} s "
                "(compiling kernels or a large batch?); the request is queued and will be done "
                "when it does",
            ) from None

    # ------------------------------------------------------------------ applying changes
    def _apply(self, assembly: Assembly, origin: str, versions: list[Version] = ()) -> ReloadRecord:  # type: ignore[assignment]
        """On the engine thread: switch to `assembly.program` (hot reload) and record it."""
        assert assembly.program is not None
        now = self.clock()
        report = None
        try:
            # Before the session switches: the engine reloads the notifier after it, and a channel
            # that fails there would leave the two on different programs.
            self._channels_resolve(assembly.program)
        except Refused as e:
            self.reloads.append(ReloadRecord(now, False, origin, error=e.message))
            raise
        if self.engine is not None:
            try:
                # An engine that applies changes elsewhere (a flow on workers: through its control
                # feed) takes the whole assembly (each rule's text) and the toggles.
                by_assembly = getattr(self.engine, "reload_assembly", None)
                if by_assembly is not None:
                    result = by_assembly(assembly, self.catalogue.toggles())
                else:
                    result = self.engine.reload(assembly.program)
            except Exception as e:  # noqa: BLE001 - e.g. a channel whose env() is missing: nothing changes
                rec = ReloadRecord(now, False, origin, error=str(e))
                self.reloads.append(rec)
                raise Refused(422, "reload-failed", f"the change was not applied: {e}") from None
            if result.report is not None:
                r = result.report
                report = {"kept": list(r.kept), "changed": list(r.changed), "added": list(r.added), "removed": list(r.removed)}
            offsets = {k: dict(v) for k, v in getattr(self.engine, "offsets", {}).items()}
        else:
            offsets = {}
        self.assembly = assembly
        for v in versions:
            self.catalogue.mark_applied(v.kind, v.id, v.version, now, offsets)
        rec = ReloadRecord(now, True, origin, report=report, offsets=offsets)
        self.reloads.append(rec)
        del self.reloads[:-50]
        return rec

    def reload_files(self) -> ReloadRecord:
        """The rule files changed on disk (or SIGHUP): re-read them, keep the catalogue."""
        from cepdsl.diagnostics import CheckError

        try:
            files = self.read_files()
            candidate = self.assemble(files=files)
        except (OSError, CheckError) as e:
            return self._not_applied("file", str(e))
        except Exception as e:  # noqa: BLE001 - the catalogue store is down: keep running, say so, retry on the next change
            return self._not_applied("file", f"the rule catalogue is unavailable: {e}")
        if not candidate.ok:
            return self._not_applied("file", "the rule files do not check; the running rules keep running", candidate)
        try:
            rec = self.call(lambda: self._apply(candidate, "file"))
        except Refused as e:
            return (
                self.reloads[-1]
                if self.reloads and not self.reloads[-1].ok
                else ReloadRecord(self.clock(), False, "file", error=e.message)
            )
        self._file_texts = files
        return rec

    def _not_applied(self, origin: str, error: str, candidate: Assembly | None = None) -> ReloadRecord:
        """A change that was not applied, recorded with the running rules left as they were
        (health and /metrics report it), with the diagnostics of a `candidate` that does not check."""
        diagnostics = [diagnostic_json(d, candidate.sources) for d in candidate.diagnostics] if candidate is not None else []
        rec = ReloadRecord(self.clock(), False, origin, diagnostics=diagnostics, error=error)
        self.reloads.append(rec)
        return rec

    def _change(
        self, override: dict[tuple[str, str], str | None], toggles: dict[str, bool] | None, commit: Callable[[], list[Version]]
    ) -> tuple[list[Version], ReloadRecord]:
        """Check the program with the change; refuse with diagnostics (nothing touched) or
        store it (`commit`) and apply it on the engine thread."""
        with self._lock:
            candidate = self.assemble(override, toggles)
            if not candidate.ok:
                raise Refused(
                    422,
                    "check-failed",
                    "the change does not check; nothing was changed",
                    [diagnostic_json(d, candidate.sources) for d in candidate.diagnostics],
                )
            self._channels_resolve(candidate.program)
            self._changing = True
            try:
                versions = commit()
                self._seen_stamp = self._stamp_or_none()  # our own change: nothing to pick up from elsewhere
                self._left_out -= set(override)
                for key in override:
                    self._problems.pop(key, None)
                rec = self.call(lambda: self._apply(candidate, "api", versions))
            finally:
                self._changing = False
            return versions, rec

    def _stamp_or_none(self) -> str | None:
        try:
            return self.catalogue.stamp()
        except Exception:  # noqa: BLE001 - a store that is down: look again later
            return None

    def sync_catalogue(self) -> ReloadRecord | None:
        """On the engine thread, now and then: apply what other processes sharing the catalogue
        changed (rules, channels, templates, toggles). None when nothing changed."""
        # Never the API's lock here (an API change holds it while it waits for this thread); a change
        # of this process in flight is applied by its own queued call, with its versions' offsets.
        if self._changing:
            return None
        stamp = self._stamp_or_none()
        if stamp is None or stamp == self._seen_stamp:
            return None
        self._seen_stamp = stamp
        self._push_channel_switches()
        try:
            candidate = self.assemble()
        except Exception as e:  # noqa: BLE001
            log.warning("rule catalogue unavailable: %s", e)
            return None
        if candidate.program is None or not candidate.ok:
            return self._not_applied("catalogue", "the shared catalogue does not check with these rule files; not applied", candidate)
        try:
            return self._apply(candidate, "catalogue")
        except Refused as e:
            return ReloadRecord(self.clock(), False, "catalogue", error=e.message)

    def _channels_resolve(self, program: Program | None) -> None:
        """Channels must resolve as the notifier will (env() set, destination allowed) before anything is stored."""
        if self.notifier is None or program is None:
            return
        from runtime.notify import ChannelConfigError, resolve_channels

        try:
            resolve_channels(program, getattr(self.notifier, "_env", None), self.notifier._policy)
        except ChannelConfigError as e:
            raise Refused(422, "channel-config", f"nothing was changed: {e}") from None

    # ------------------------------------------------------------------ rules
    def rule_views(self, only: str | None = None) -> list[RuleView]:
        """Every rule as the API shows it (with `only`: that rule's views alone, which the
        per-rule routes ask for; building all 1,000 for one took ~0.1 s under load)."""
        assembly = self.assembly
        program = self.program
        toggles = self.catalogue.toggles()
        loaded = {r.id: r for r in program.rules} if program else {}
        if only is None:
            versions = {v.id: v for v in self.catalogue.latest("rule")}
        else:
            latest = self.catalogue.get("rule", only)
            versions = {only: latest} if latest is not None else {}
        out = []
        for d in assembly.declared if assembly else []:
            if d.kind != "rule" or (only is not None and d.name != only):
                continue
            origin = "file" if d.file in self.files or d.file in self._file_texts else "catalogue"
            out.append(
                RuleView(
                    d.name,
                    origin,
                    d.file,
                    d.line,
                    d.text,
                    toggles.get(d.name, True),
                    d.name in loaded,
                    versions[d.name].version if origin == "catalogue" and d.name in versions else None,
                    loaded.get(d.name),
                )
            )
        if any(v.plan is None and not v.enabled for v in out):
            written = self._written_plans(assembly, toggles)
            for v in out:
                v.written = v.plan or written.get(v.id)
        else:
            for v in out:
                v.written = v.plan
        seen = {v.id for v in out}
        for rid, v in versions.items():  # stored but not loaded (did not check at start)
            if rid not in seen:
                out.append(
                    RuleView(rid, "catalogue", entry_file("rule", rid), 1, v.text, toggles.get(rid, True), False, v.version, None)
                )
        return out

    def _written_plans(self, assembly: Assembly | None, toggles: dict[str, bool]) -> dict[str, RulePlan]:
        """Plans of every rule with the disabled ones enabled (cached until the program or toggles change)."""
        key = (id(assembly), tuple(sorted(toggles.items())))
        cached = getattr(self, "_written_cache", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        trial = self.assemble(toggles={rid: True for rid in toggles})
        plans = {r.id: r for r in trial.program.rules} if trial.program is not None else {}
        self._written_cache = (key, plans)
        return plans

    def rule_view(self, rule_id: str) -> RuleView:
        for v in self.rule_views(only=rule_id):
            if v.id == rule_id:
                return v
        raise Refused(404, "not-found", f"no rule `{rule_id}`")

    def _one_decl(self, text: str, kind: str, filename: str) -> str:
        decls, diags = declarations(text, filename)
        if diags:
            raise Refused(
                422, "check-failed", f"the {kind} text does not parse", [diagnostic_json(d, {filename: text}) for d in diags]
            )
        if len(decls) != 1 or decls[0][1].kind != kind:
            found = ", ".join(f"{d.kind} `{d.name}`" for _, d in decls) or "nothing"
            raise Refused(422, "one-declaration", f"expected exactly one {kind} declaration, found {found}")
        name = decls[0][1].name
        if not ADDRESSABLE.fullmatch(name):
            raise Refused(
                422,
                "invalid-name",
                f"{kind} `{name}`: names created over HTTP use letters, digits, "
                "`_`, `.` and `-` (at most 128), so that a URL can name them",
            )
        return name

    def _file_rule(self, rule_id: str) -> Declared | None:
        for d in self.assembly.declared if self.assembly else []:
            if d.kind == "rule" and d.name == rule_id and d.file in self._file_texts:
                return d
        return None

    def create_rule(self, text: str) -> tuple[Version, ReloadRecord]:
        rule_id = self._one_decl(text, "rule", "rules/<new>.cep")
        if (d := self._file_rule(rule_id)) is not None:
            raise Refused(409, "read-only", f"rule `{rule_id}` is declared in {d.file}:{d.line}; file rules are read-only")
        if self.catalogue.get("rule", rule_id) is not None:
            raise Refused(409, "exists", f"rule `{rule_id}` already exists; PUT /cep/rules/{rule_id} changes it")
        return self._put_rule(rule_id, text)

    def replace_rule(self, rule_id: str, text: str) -> tuple[Version, ReloadRecord]:
        if (d := self._file_rule(rule_id)) is not None:
            raise Refused(
                409,
                "read-only",
                f"rule `{rule_id}` is declared in {d.file}:{d.line}; its text is "
                "read-only here (edit the file; PATCH .../toggle works)",
            )
        named = self._one_decl(text, "rule", entry_file("rule", rule_id))
        if named != rule_id:
            raise Refused(422, "id-mismatch", f"the text declares rule `{named}`, the path names `{rule_id}`")
        return self._put_rule(rule_id, text)

    def _put_rule(self, rule_id: str, text: str) -> tuple[Version, ReloadRecord]:
        text = text if text.endswith("\n") else text + "\n"
        versions, rec = self._change(
            {("rule", rule_id): text}, None, lambda: [self.catalogue.put("rule", rule_id, text, self.clock())]
        )
        return versions[0], rec

    def delete_rule(self, rule_id: str) -> tuple[Version, ReloadRecord]:
        if (d := self._file_rule(rule_id)) is not None:
            raise Refused(
                409,
                "read-only",
                f"rule `{rule_id}` is declared in {d.file}:{d.line}; file rules cannot be deleted here (PATCH .../toggle disables it)",
            )
        if self.catalogue.get("rule", rule_id) is None:
            raise Refused(404, "not-found", f"no rule `{rule_id}` in the catalogue")

        def commit() -> list[Version]:
            v = self.catalogue.delete("rule", rule_id, self.clock())
            return [v] if v else []

        versions, rec = self._change({("rule", rule_id): None}, None, commit)
        return versions[0], rec

    def toggle(self, rule_id: str, enabled: bool | None) -> tuple[bool, ReloadRecord]:
        view = self.rule_view(rule_id)
        new = (not view.enabled) if enabled is None else enabled
        toggles = {**self.catalogue.toggles(), rule_id: new}
        _, rec = self._change({}, toggles, lambda: (self.catalogue.set_enabled(rule_id, new, self.clock()), [])[1])
        return new, rec

    # ------------------------------------------------------------------ channels and templates
    def channel_texts(self) -> list[Declared]:
        return [d for d in (self.assembly.declared if self.assembly else []) if d.kind == "channel"]

    def channel_switches(self) -> dict[str, bool]:
        """Channel name → enabled, for the channels whose switch was ever set."""
        return self.catalogue.channel_toggles()

    def toggle_channel(self, name: str, enabled: bool | None) -> bool:
        """Switch a channel (file or catalogue) on or off; persisted in the catalogue. No reload:
        the notifier checks the switch when it reaches each delivery."""
        if not any(d.name == name for d in self.channel_texts()):
            raise Refused(404, "not-found", f"no channel `{name}`")
        new = (not self.channel_switches().get(name, True)) if enabled is None else enabled
        with self._lock:
            self.catalogue.set_channel_enabled(name, new, self.clock())
            self._seen_stamp = self._stamp_or_none()  # our own change
        self._push_channel_switches()
        return new

    def _push_channel_switches(self) -> None:
        if self.notifier is None or not hasattr(self.notifier, "disabled_channels"):
            return
        try:
            switches = self.channel_switches()
        except Exception as e:  # noqa: BLE001 - the store is down: keep the switches the notifier has
            log.warning("rule catalogue unavailable, channel switches not refreshed: %s", e)
            return
        self.notifier.disabled_channels = frozenset(n for n, on in switches.items() if not on)

    def put_channel(self, name: str | None, text: str, create: bool) -> tuple[Version, ReloadRecord]:
        named = self._one_decl(text, "channel", entry_file("channel", name or "<new>"))
        if name is not None and named != name:
            raise Refused(422, "id-mismatch", f"the text declares channel `{named}`, the path names `{name}`")
        for d in self.channel_texts():
            if d.name == named and d.file in self._file_texts:
                raise Refused(409, "read-only", f"channel `{named}` is declared in {d.file}:{d.line}; read-only here")
        exists = self.catalogue.get("channel", named) is not None
        if create and exists:
            raise Refused(409, "exists", f"channel `{named}` already exists; PATCH /cep/channels/{named} changes it")
        if not create and not exists:
            raise Refused(404, "not-found", f"no channel `{named}` in the catalogue")
        text = text if text.endswith("\n") else text + "\n"
        versions, rec = self._change(
            {("channel", named): text}, None, lambda: [self.catalogue.put("channel", named, text, self.clock())]
        )
        return versions[0], rec

    def delete_channel(self, name: str) -> ReloadRecord:
        for d in self.channel_texts():
            if d.name == name and d.file in self._file_texts:
                raise Refused(409, "read-only", f"channel `{name}` is declared in {d.file}:{d.line}; read-only here")
        if self.catalogue.get("channel", name) is None:
            raise Refused(404, "not-found", f"no channel `{name}` in the catalogue")
        _, rec = self._change(
            {("channel", name): None}, None, lambda: [v for v in [self.catalogue.delete("channel", name, self.clock())] if v]
        )
        return rec

    def put_template(self, name: str, body: str) -> Version:
        from cepdsl.templates import TemplateError, precompile

        try:
            precompile(body)
        except (TemplateError, SyntaxError, ValueError, RecursionError) as e:
            raise Refused(422, "template-error", f"template `{name}` does not compile: {e}") from None
        if grammar_has_templates():
            versions, _ = self._change(
                {("template", name): body}, None, lambda: [self.catalogue.put("template", name, body, self.clock())]
            )
            return versions[0]
        return self.catalogue.put("template", name, body, self.clock())

    # ------------------------------------------------------------------ events in
    def remember(self, stream: str, frame: pl.DataFrame) -> None:
        """Keep the last input rows of a stream (as frames: converted only when asked for)."""
        if frame.height == 0:
            return
        got = self.recent.setdefault(stream, [])
        got.append(frame.tail(self.recent_max))
        while len(got) > 1 and sum(f.height for f in got[1:]) >= self.recent_max:
            got.pop(0)

    def recent_events(self, stream: str, n: int) -> list[dict[str, Any]]:
        from runtime.notify.records import json_safe

        frames = list(self.recent.get(stream, []))
        if not frames:
            return []
        tail = pl.concat(frames, how="diagonal_relaxed").tail(n)
        return [json_safe(r) for r in tail.to_dicts()]

    def ingest(self, stream: str, frame: pl.DataFrame, dead: pl.DataFrame) -> dict[str, int]:
        """Rows that arrived over HTTP, fed to the engine like any source's batch."""
        batch = Batch(stream, frame, dead)
        self.ingest_counts[stream] = self.ingest_counts.get(stream, 0) + frame.height
        if self.engine is None:
            raise Refused(409, "no-engine", "no engine runs in this process")

        def feed() -> dict[str, int]:
            outs = self.engine.feed(f"http:{stream}", batch)
            return {rid: f.height for rid, f in outs.items() if f.height}

        matches = self.call(feed)
        self.history_flush()
        return {"accepted": frame.height, "dead_letters": dead.height, "matches": sum(matches.values())}

    def count_dead(self, frame: pl.DataFrame) -> None:
        if frame.height == 0:
            return
        for stream, n in frame.get_column("stream").value_counts().iter_rows():
            self.dead_by_stream[str(stream)] = self.dead_by_stream.get(str(stream), 0) + int(n)

    # ------------------------------------------------------------------ matches out
    def record_matches(self, rule_id: str, frame: pl.DataFrame, *, test: bool = False) -> None:
        """Every emitted match into the alert history (rules without channels too), written
        by the history's own thread: the engine only hands the frame over."""
        if self.history is None or frame.height == 0:
            return
        program = self.program
        rule = next((r for r in program.rules if r.id == rule_id), None) if program else None
        if self.history_writer is None:
            from runtime.history import HistoryWriter

            self.history_writer = HistoryWriter(self.history, self.clock)
        self.history_writer.submit(rule_id, rule, frame, test)

    def history_flush(self, timeout: float = 30.0) -> None:
        """Wait until every match handed over so far is stored (the API reads its own writes)."""
        if self.history_writer is not None:
            self.history_writer.flush(timeout)

    # ------------------------------------------------------------------ health
    def source_problems(self) -> dict[str, str]:
        """Sources that cannot deliver: a followed file that does not exist is an error, not silence."""
        out = {}
        for name, (_, spec) in self.sources.items():
            if spec.startswith("jsonl:") and not spec.startswith("jsonl:-"):
                path = spec[len("jsonl:") :].partition("?")[0]
                if not Path(path).exists():
                    out[name] = f"{path}: no such file"
            elif spec.startswith("parquet-dir:"):
                path = spec[len("parquet-dir:") :].partition("?")[0]
                if not Path(path).is_dir():
                    out[name] = f"{path}: no such directory"
        return out

    def last_reload(self) -> ReloadRecord | None:
        return self.reloads[-1] if self.reloads else None
