"""The engine-facing notifier: `submit` writes to the outbox, a background worker delivers.

    engine thread ── submit(rule, frame) ──► outbox (durable) ──► worker thread (asyncio)
                                                                   claim ≤ max_in_flight
                                                                   breakers → render → send
                                                                   sent | retry later | failed → fallback

`submit` never touches the network and never waits on it: it encodes the
match records (column by column), writes one row per (match, channel) in one
transaction and wakes the worker. The worker claims in batches and writes
"sent" marks once per event-loop turn for every delivery that finished in it
(both on a thread of their own, so a busy SQLite lock never stalls the loop);
a notification is decoded and rendered once for all its channels. Memory
is bounded by `max_in_flight` (only claimed deliveries are in memory); the
outbox is bounded by `max_pending`, past which `submit` waits up to
`max_submit_wait_s` for room (back-pressure, counted) and then enqueues
anyway (counted as over capacity): an alert is never dropped to save disk.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

import polars as pl

from cepdsl.plan import Program, RulePlan
from cepdsl.templates import DEFAULT_MAX_CHARS, DEFAULT_MAX_SECONDS, TemplateError, precompile
from runtime.notify.breaker import BreakerBoard, BreakerConfig
from runtime.notify.channels import Channel, Notification, SendContext, build_channel
from runtime.notify.config import resolve_channels
from runtime.notify.errors import ChannelConfigError, DeliveryError
from runtime.notify.outbox import Delivery, NewDelivery, Outbox, SqliteOutbox
from runtime.notify.records import Record, decode_record, frame_deliveries, notified
from runtime.notify.render_worker import RenderWorkers
from runtime.notify.retry import PAYLOAD_STATUS, RetryPolicy, classify_exception
from runtime.notify.ssrf import (
    DEFAULT_POLICY,
    DestinationPolicy,
    Resolver,
    guarded_client,
    system_resolver,
)
from runtime.notify.templates import DEFAULT_TEMPLATES, Rendered, render_message

log = logging.getLogger("cep.notify")

DEFAULT_OUTBOX = Path(".cep") / "notify-outbox.sqlite"
_IDLE_POLL_S = 0.5  # upper bound on how late a retry that came due is picked up
_PROBE_BUSY_S = 0.25  # half-open with its probe out: look again shortly, not in a tight loop

_COUNTERS = (
    "submitted",
    "enqueued",
    "suppressed_duplicates",
    "sent",
    "failed",
    "skipped",
    "retried",
    "fallback",
    "short_circuited",
    "queued_by_breaker",
    "template_errors",
    "backpressure_waits",
    "over_capacity",
)


def open_outbox(spec: Outbox | str | Path | None) -> tuple[Outbox, bool]:
    """(outbox, owned): a path → SQLite, `redis://...` → Redis, an Outbox → itself."""
    if spec is None:
        return SqliteOutbox(DEFAULT_OUTBOX), True
    if isinstance(spec, str):
        from runtime.state.spec import sqlite_path

        path = sqlite_path(spec)  # `x.sqlite` and `sqlite:x.sqlite` are the same file, as for --state
        if spec == "memory":
            from runtime.state.spec import StateSpecError

            raise StateSpecError("the outbox must outlive the process: give a file (PATH) or redis://HOST:PORT/DB")
        if path is None:
            from runtime.notify.redis_outbox import RedisOutbox

            return RedisOutbox.from_url(spec), True
        return SqliteOutbox(path), True
    if isinstance(spec, Path):
        return SqliteOutbox(spec), True
    return spec, False


class Notifier:
    def __init__(
        self,
        program: Program,
        *,
        outbox: Outbox | str | Path | None = None,
        env: Mapping[str, str] | None = None,
        policy: DestinationPolicy = DEFAULT_POLICY,
        retry: RetryPolicy = RetryPolicy(),
        breaker: BreakerConfig = BreakerConfig(),
        clock: Callable[[], float] = time.time,
        max_in_flight: int = 100,
        max_pending: int = 100_000,
        max_submit_wait_s: float = 1.0,
        retention_s: float = 7 * 86400,
        ssl_context: ssl.SSLContext | None = None,
        console: IO[str] | None = None,
        resolver: Resolver = system_resolver,
        template_max_chars: int = DEFAULT_MAX_CHARS,
        template_max_seconds: float = DEFAULT_MAX_SECONDS,
        seed: int | None = None,
        template_workers: int = 2,
    ) -> None:
        self.program = program
        self._rules: dict[str, RulePlan] = {r.id: r for r in program.rules}
        configs = resolve_channels(program, env, policy)  # missing env() → ChannelConfigError now
        for rule in program.rules:
            for ch in (*rule.notify, *([rule.fallback] if rule.fallback else [])):
                if ch not in configs:
                    raise ChannelConfigError(ch, None, f"used by rule {rule.id!r} but not declared")
        self._env = env
        self._policy = policy
        self._resolver = resolver
        self._ctx = SendContext(None, policy, ssl_context, console, detail=False)
        self._channels: dict[str, Channel] = {n: build_channel(c, self._ctx) for n, c in configs.items()}
        # Channels switched off (`PATCH /cep/channels/NAME/toggle`): their deliveries are recorded as
        # skipped when the worker reaches them, like a receiver muted in Alertmanager (not sent later).
        self.disabled_channels: frozenset[str] = frozenset()
        self._outbox, self._owns_outbox = open_outbox(outbox)
        self.retry = retry
        self._clock = clock
        self._rng = random.Random(seed)
        self.max_in_flight = max_in_flight
        self._claim_batch = max(1, min(16, max_in_flight // 4))
        self.max_pending = max_pending
        self.max_submit_wait_s = max_submit_wait_s
        self._template_limits = {"max_chars": template_max_chars, "max_seconds": template_max_seconds}
        # Templates that are more than text with holes render in child processes stopped at
        # the time limit, called from these threads: the event loop never waits on one.
        self.renderer = RenderWorkers(template_workers)
        self._render_threads = ThreadPoolExecutor(max(template_workers, 1), thread_name_prefix="cep-render")
        # Breakers exist up front, so the health snapshot never races a dict insertion.
        self.breakers = BreakerBoard(breaker, clock)
        for name in self._channels:
            self.breakers.channel(name)
        for rule in program.rules:
            for ch in (*rule.notify, *([rule.fallback] if rule.fallback else [])):
                self.breakers.rule(rule.id, ch)
        self._stats = dict.fromkeys(_COUNTERS, 0)
        self._cond = threading.Condition()
        self._submit_lock = threading.Lock()
        self._outbox.prune(clock() - retention_s)
        self._depth = self._outbox.depth()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stopping = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        # Sent marks are written in batches (one transaction per loop turn, not per delivery).
        self._sent_ids: list[int | str] = []
        self._flush_scheduled = False
        self._marking = 0  # sent marks handed to the outbox thread, not yet written
        # The worker's claims and sent marks run on one thread of their own: SQLite's busy
        # handler sleeps in steps of up to 100 ms while `submit` holds the write lock, and on
        # the event loop's thread that would stall every delivery in flight.
        self._outbox_thread: ThreadPoolExecutor | None = None
        # Decoded record and rendered messages per notification, shared by its channels.
        self._messages: OrderedDict[str, tuple[Record, dict[str, Rendered]]] = OrderedDict()
        self._messages_max = 4 * max_in_flight + 16
        self._precompile(program)

    def __repr__(self) -> str:
        return f"Notifier(channels={sorted(self._channels)}, in_flight={len(self._tasks)}, depth={self._depth})"

    # ------------------------------------------------------------------ engine side

    def reload(self, program: Program) -> None:
        """Take a hot-reloaded rule file: new rules and channels are known from now on.
        A channel whose configuration cannot be resolved (a missing env() variable)
        raises ChannelConfigError and leaves the running configuration untouched."""
        self.prepare_reload(program)()

    def prepare_reload(self, program: Program) -> Callable[[], None]:
        """Everything `reload` does that can fail, done now without touching the running
        configuration; returns the switch (which cannot fail). The engine prepares the
        notifier and the session first and switches both only when both are ready."""
        configs = resolve_channels(program, self._env, self._policy)
        for rule in program.rules:
            for ch in (*rule.notify, *([rule.fallback] if rule.fallback else [])):
                if ch not in configs:
                    raise ChannelConfigError(ch, None, f"used by rule {rule.id!r} but not declared")
        channels = {n: build_channel(c, self._ctx) for n, c in configs.items()}
        self._precompile(program)

        def switch() -> None:
            for name in channels:
                self.breakers.channel(name)
            for rule in program.rules:
                for ch in (*rule.notify, *([rule.fallback] if rule.fallback else [])):
                    self.breakers.rule(rule.id, ch)
            # Deliveries already in the outbox for removed rules or channels still go out
            # through the old objects they were enqueued for.
            self._channels = {**self._channels, **channels}
            self._rules = {**self._rules, **{r.id: r for r in program.rules}}
            self.program = program

        return switch

    @staticmethod
    def _precompile(program: Program) -> None:
        """Compile every message and default template now, not on the first alert."""
        resolve_texts = (r.resolve.message for r in program.rules if r.resolve is not None and r.resolve.message)
        for text in (*(r.message for r in program.rules if r.message), *resolve_texts, *DEFAULT_TEMPLATES.values()):
            try:
                precompile(text)
            except TemplateError:
                pass  # the checker reports it; at run time the default template stands in

    def submit(self, rule_id: str, matches: pl.DataFrame) -> int:
        """Enqueue one notification per match and channel; returns how many new deliveries were enqueued.

        Duplicates (same match already enqueued or sent: same idempotency key) are
        not enqueued again and are counted as `suppressed_duplicates`.
        """
        rule = self._rules.get(rule_id)
        if rule is None:
            raise KeyError(f"unknown rule {rule_id!r}")
        if not rule.notify or matches.height == 0:
            return 0
        if "silenced" in matches.columns:  # §9.4: silenced matches stay in the output, never notified
            held = int(matches["silenced"].is_not_null().sum())
            if held:
                matches = matches.filter(pl.col("silenced").is_null())
                with self._cond:
                    self._stats["silenced"] = self._stats.get("silenced", 0) + held
                if matches.height == 0:
                    return 0
        matches = notified(matches)  # §9.3: suppressed (throttled) lifecycle records too
        if matches.height == 0:
            return 0
        items = [NewDelivery(key, rule.id, ch, encoded) for key, encoded in frame_deliveries(rule, matches) for ch in rule.notify]
        self._wait_for_room(len(items))
        with self._submit_lock:
            added = self._outbox.enqueue(items, self._clock())
        with self._cond:
            self._depth += added
            self._stats["submitted"] += len(items)
            self._stats["enqueued"] += added
            self._stats["suppressed_duplicates"] += len(items) - added
        self._wake_worker()
        return added

    def _wait_for_room(self, n: int) -> None:
        if self._depth + n <= self.max_pending:
            return
        with self._cond:
            self._stats["backpressure_waits"] += 1
            deadline = time.monotonic() + self.max_submit_wait_s
            while self._depth + n > self.max_pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._thread is None:
                    self._stats["over_capacity"] += n
                    log.warning("notification outbox over capacity (%d pending); enqueuing anyway", self._depth)
                    return
                self._cond.wait(remaining)

    def _wake_worker(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # loop closing between the check and the call
                pass

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Notifier:
        """Start the delivery worker (idempotent). Deliveries a killed process had in flight are resumed."""
        if self._thread is not None:
            return self
        recovered = self._outbox.recover(self._clock())
        if recovered:
            log.info("resuming %d deliveries left in flight by a previous run", recovered)
        self._depth = self._outbox.depth()
        self._stopping = False
        ready = threading.Event()
        self._thread = threading.Thread(target=self._thread_main, args=(ready,), name="cep-notify", daemon=True)
        self._thread.start()
        ready.wait()
        return self

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until nothing is pending or in flight (retries included); True if drained in time."""
        deadline = None if timeout is None else time.monotonic() + timeout
        next_check = 0.0
        while True:
            # The in-memory count says when to look; the outbox (a COUNT query) has the last word,
            # asked when the count reaches zero and every half second in case they ever disagree.
            now = time.monotonic()
            busy = self._tasks or self._sent_ids or self._marking
            if (self._depth <= 0 and not busy) or now >= next_check:
                next_check = now + 0.5
                if not busy and self._outbox.depth() == 0:
                    return True
            if deadline is not None and now >= deadline:
                return False
            self._wake_worker()
            with self._cond:
                self._cond.wait(0.02 if deadline is None else max(0.0, min(0.02, deadline - now)))

    def stop(self, drain: bool = True, timeout: float = 30.0) -> bool:
        """Stop the worker; with `drain`, first wait (up to `timeout`) for the outbox to empty.

        Whatever is still pending stays in the outbox for the next start. Returns
        whether the outbox was drained.
        """
        drained = self.drain(timeout) if drain and self._thread is not None else self._outbox.depth() == 0
        self._stopping = True
        self._wake_worker()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, timeout))
            self._thread = None
        if self._owns_outbox and not self._closed:
            self._outbox.close()
            self._closed = True
        self.renderer.close()
        return drained

    def __enter__(self) -> Notifier:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop(drain=exc[0] is None)

    # ------------------------------------------------------------------ observation

    def stats(self) -> dict[str, Any]:
        with self._cond:
            out: dict[str, Any] = dict(self._stats)
            out["queue_depth"] = self._depth
        out["in_flight"] = len(self._tasks)
        out["breakers"] = self.breakers.snapshot()
        return out

    def health(self) -> dict[str, Any]:
        """Plain-dict state for `/cep/health`."""
        snap = self.breakers.snapshot()
        return {
            "worker": "running" if self._thread is not None and self._thread.is_alive() else "stopped",
            "queue_depth": self._depth,
            "in_flight": len(self._tasks),
            "channels": {name: {"kind": ch.kind, **snap["channels"][name]} for name, ch in self._channels.items()},
            "rules": snap["rules"],
        }

    def failures(self, limit: int = 100) -> list[dict[str, Any]]:
        """The latest final failures, newest first, each with its reason."""
        return self._outbox.failures(limit)

    def channel(self, name: str) -> Channel:
        return self._channels[name]

    # ------------------------------------------------------------------ worker

    def _thread_main(self, ready: threading.Event) -> None:
        try:
            asyncio.run(self._main(ready))
        except Exception:  # pragma: no cover - a bug here must be loud, the outbox keeps the work
            log.exception("notification worker crashed")
            ready.set()

    async def _main(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._outbox_thread = ThreadPoolExecutor(1, thread_name_prefix="cep-notify-outbox")
        self._ctx.client = guarded_client(
            self._policy, resolver=self._resolver, ssl_context=self._ctx.ssl_context, max_connections=self.max_in_flight
        )
        ready.set()
        try:
            await self._dispatch()
        finally:
            for t in list(self._tasks):
                t.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            while self._marking:
                await asyncio.sleep(0.005)
            self._flush_sent(inline=True)
            assert self._outbox_thread is not None
            self._outbox_thread.shutdown(wait=True)
            self._outbox_thread = None
            await self._ctx.client.aclose()
            self._ctx.client = None
            self._loop = None

    async def _dispatch(self) -> None:
        assert self._wake is not None
        while not self._stopping:
            self._wake.clear()
            free = self.max_in_flight - len(self._tasks)
            claimed: list[Delivery] = []
            if free > 0 and (free >= self._claim_batch or not self._tasks):
                claimed = await self._loop.run_in_executor(  # type: ignore[union-attr]
                    self._outbox_thread, self._outbox.claim, self._clock(), free
                )
                for d in claimed:
                    task = asyncio.create_task(self._deliver(d))
                    self._tasks.add(task)
                    task.add_done_callback(self._task_done)
                if len(claimed) == free:
                    continue  # maybe more due: claim again once there is room
            if free < self._claim_batch and self._tasks:
                # Claim in batches (one query for many deliveries); a finishing task wakes us.
                await self._wake.wait()
                continue
            nxt = self._outbox.next_due()
            timeout = _IDLE_POLL_S if nxt is None else min(_IDLE_POLL_S, max(0.0, nxt - self._clock()))
            if timeout > 0:
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout)
                except TimeoutError:
                    pass
            else:
                await asyncio.sleep(0)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._wake is not None:
            self._wake.set()

    def _finished(self, added: int = 0) -> None:
        with self._cond:
            self._depth += added - 1
            self._cond.notify_all()

    def _count(self, name: str, n: int = 1) -> None:
        with self._cond:
            self._stats[name] += n

    def _fallback_for(self, rule: RulePlan, d: Delivery) -> str | None:
        fb = rule.fallback
        # A fallback delivery that fails is final: fallbacks do not chain.
        return fb if fb and fb != d.channel and d.via is None else None

    def notification(
        self, rule: RulePlan, kind: str, notification_id: str, record: dict[str, Any], rendered: Rendered | None = None
    ) -> Notification:
        if rendered is None:
            rendered = self._render(rule, kind, record)
        return Notification.for_record(rule, notification_id, record, rendered)

    def _render(self, rule: RulePlan, kind: str, record: Record) -> Rendered:
        rendered = render_message(rule, kind, record, renderer=self.renderer.render, **self._template_limits)
        if rendered.template_error:
            self._count("template_errors")
            log.warning("rule %s: message template failed, default template used: %s", rule.id, rendered.template_error)
        return rendered

    def _notification_for(self, d: Delivery, rule: RulePlan, kind: str) -> Notification:
        """Decode and render once per notification: its other channels reuse the record and,
        when the rule has a `message` (the same text for every kind), the rendered text."""
        record, by_template, template_key = self._message_entry(d, rule, kind)
        rendered = by_template.get(template_key)
        if rendered is None:
            rendered = by_template[template_key] = self._render(rule, kind, record)
        return self.notification(rule, kind, d.notification_id, record, rendered)

    async def _notification_async(self, d: Delivery, rule: RulePlan, kind: str) -> Notification:
        """`_notification_for` on the event loop: a template that needs a worker is rendered
        on a render thread, so a slow one delays its own notification only."""
        texts = [t for t in (rule.message, rule.resolve.message if rule.resolve is not None else None) if t]
        if all(self.renderer.inline(t) for t in texts):  # the resolve template (§9.3) counts too
            return self._notification_for(d, rule, kind)
        record, by_template, template_key = self._message_entry(d, rule, kind)
        rendered = by_template.get(template_key)
        if rendered is None:
            assert self._loop is not None
            rendered = await self._loop.run_in_executor(self._render_threads, self._render, rule, kind, record)
            by_template[template_key] = rendered
        return self.notification(rule, kind, d.notification_id, record, rendered)

    def _message_entry(self, d: Delivery, rule: RulePlan, kind: str) -> tuple[Record, dict[str, Rendered], str]:
        entry = self._messages.get(d.notification_id)
        if entry is None:
            entry = (decode_record(d.record), {})
            self._messages[d.notification_id] = entry
            if len(self._messages) > self._messages_max:
                self._messages.popitem(last=False)
        key = "message" if rule.message is not None else kind
        if entry[0].get("state") == "resolved":  # §9.3: its own text (resolve template or prefix)
            key += ":resolved"
        return entry[0], entry[1], key

    def _flush_sent(self, inline: bool = False) -> None:
        """Mark every delivery sent since the last flush, in one transaction (on the outbox thread)."""
        self._flush_scheduled = False
        ids, self._sent_ids = self._sent_ids, []
        if not ids:
            return
        if inline or self._loop is None or self._outbox_thread is None:
            self._marked(ids, self._write_marks(ids))
            return
        self._marking += 1

        def done(f: asyncio.Future[bool]) -> None:
            self._marking -= 1
            self._marked(ids, f.result())

        self._loop.run_in_executor(self._outbox_thread, self._write_marks, ids).add_done_callback(done)

    def _write_marks(self, ids: list[int | str]) -> bool:
        try:
            self._outbox.mark_sent(ids, self._clock())
            return True
        except Exception:  # the outbox is unwell: keep the marks and try again with the next ones
            log.exception("could not mark %d deliveries sent; will retry", len(ids))
            return False

    def _marked(self, ids: list[int | str], ok: bool) -> None:
        if not ok:
            self._sent_ids[:0] = ids
            if self._loop is not None and not self._flush_scheduled:
                self._flush_scheduled = True
                self._loop.call_later(0.5, self._flush_sent)
            return
        with self._cond:
            self._stats["sent"] += len(ids)
            self._depth -= len(ids)
            self._cond.notify_all()

    def _sent(self, d: Delivery) -> None:
        self._sent_ids.append(d.id)
        if not self._flush_scheduled and self._loop is not None:
            # After the other callbacks already queued: deliveries finishing together share it.
            self._flush_scheduled = True
            self._loop.call_soon(self._flush_sent)

    async def _deliver(self, d: Delivery) -> None:
        try:
            await self._deliver_one(d)
        except asyncio.CancelledError:
            raise  # stays in flight in the outbox; recovered at the next start
        except Exception as exc:  # a bug must not kill the worker or lose the delivery
            log.exception("internal error delivering %s to %s", d.notification_id, d.channel)
            now = self._clock()
            self._outbox.reschedule(
                d, now + self.retry.delay(d.attempts + 1, rng=self._rng), d.attempts, f"internal error: {type(exc).__name__}", now
            )

    async def _deliver_one(self, d: Delivery) -> None:
        channel = self._channels.get(d.channel)
        rule = self._rules.get(d.rule)
        now = self._clock()
        if channel is None or rule is None:  # the program changed since this was enqueued
            self._outbox.mark_failed(d, d.attempts, f"rule {d.rule!r} or channel {d.channel!r} no longer exists", now)
            self._count("failed")
            self._finished()
            return
        if d.channel in self.disabled_channels:  # switched off: a record of what was not sent, no fallback
            self._outbox.mark_skipped(d, f"channel {d.channel} is disabled", now)
            self._count("skipped")
            self._finished()
            return
        # Rendered before the breakers are asked: between their check and acquire nothing may wait.
        notification = await self._notification_async(d, rule, channel.kind)
        cb, rb = self.breakers.channel(d.channel), self.breakers.rule(d.rule, d.channel)
        if not (cb.allows() and rb.allows()):
            self._short_circuit(d, rule, max(cb.retry_at, rb.retry_at), now)
            return
        cb.acquire()
        rb.acquire()
        try:
            async with asyncio.timeout(channel.config.timeout_s):  # no extra task, unlike wait_for
                await channel.send(notification)
        except asyncio.CancelledError:
            cb.release()
            rb.release()
            raise
        except BaseException as exc:  # noqa: BLE001 - classified below; nothing escapes unrecorded
            err = (
                classify_exception(exc, channel.config.redactor)
                if not isinstance(exc, TimeoutError)
                else DeliveryError(f"timeout after {channel.config.timeout_s:g}s", retryable=True)
            )
            self._failed_attempt(d, rule, channel, err)
            return
        cb.record_success()
        rb.record_success()
        self._sent(d)

    def _failed_attempt(self, d: Delivery, rule: RulePlan, channel: Channel, err: DeliveryError) -> None:
        cb, rb = self.breakers.channel(d.channel), self.breakers.rule(d.rule, d.channel)
        if err.status in PAYLOAD_STATUS:
            cb.release()  # this rule's payload is the problem, not the channel
        else:
            cb.record_failure()
        rb.record_failure()
        attempts = d.attempts + 1
        now = self._clock()
        if err.retryable and attempts <= channel.config.retries:
            self._outbox.reschedule(d, now + self.retry.delay(attempts, err.retry_after, self._rng), attempts, err.reason, now)
            self._count("retried")
            return
        fb = self._fallback_for(rule, d)
        added = self._outbox.mark_failed(d, attempts, err.reason, now, fallback=fb)
        self._count("failed")
        if added:
            self._count("fallback")
        log.warning(
            "notification %s for rule %s to channel %s failed after %d attempt(s): %s%s",
            d.notification_id,
            d.rule,
            d.channel,
            attempts,
            err.reason,
            f"; sent to fallback {fb}" if added else "",
        )
        self._finished(int(added))

    def _short_circuit(self, d: Delivery, rule: RulePlan, retry_at: float, now: float) -> None:
        """Breaker open: straight to the fallback if it is healthy, else wait for the breaker."""
        fb = self._fallback_for(rule, d)
        if fb is not None and self.breakers.channel(fb).allows():
            added = self._outbox.mark_failed(d, d.attempts, f"circuit open for channel {d.channel}", now, fallback=fb)
            self._count("short_circuited")
            self._count("failed")
            if added:
                self._count("fallback")
            self._finished(int(added))
            return
        self._outbox.reschedule(
            d, max(retry_at, now + _PROBE_BUSY_S), d.attempts, f"circuit open for channel {d.channel}; queued", now
        )
        self._count("queued_by_breaker")
