"""Rendering message templates so that one template can fail but never stall the notifier.

Straight-line templates (text with `{{ name }}` holes and cheap filters: the common
case, see `cepdsl.templates.is_straight_line`) cost time and memory in proportion to
their length and are rendered in-process. Every other template goes to a child process
(runtime/template_child.py) with an address-space limit; if no reply comes within the
render budget plus `grace_s`, the child is killed (and a fresh one started on the next
render) and the render fails with a `TemplateError` like any other template error: the
notifier then sends the default message, with the reason, and records it.

A small pool of children (`workers`) serves renders from any thread; the notifier calls
it from its own render threads so its event loop never waits on a template.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import select
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

import msgpack

from cepdsl.templates import DEFAULT_MAX_CHARS, DEFAULT_MAX_SECONDS, TemplateError, is_straight_line, render
from runtime.template_child import _HEADER, READY, ext_encode

log = logging.getLogger(__name__)

#: Address space a render may add to the child (the interpreter as loaded not counted).
DEFAULT_MEMORY_MB = 64
#: Time past the render budget before the child is killed (the budget itself is cooperative
#: CPU time checked inside the render; this is the hard stop for what it cannot see).
DEFAULT_GRACE_S = 1.0
_START_TIMEOUT_S = 30.0
_MAX_REPLY = 1 << 26


class _Child:
    """One rendering process and its pipes."""

    def __init__(self, memory_mb: int) -> None:
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "runtime.template_child", str(memory_mb)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            close_fds=True,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        self.fd = self.stdout.fileno()
        line = self._read(len(READY), time.monotonic() + _START_TIMEOUT_S)
        if line != READY:
            self.kill()
            raise TemplateError("the template worker did not start")

    def _read(self, n: int, deadline: float) -> bytes | None:
        """`n` bytes from the child, or None when the deadline passes or the child is gone."""
        buf = bytearray()
        while len(buf) < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                return None
            chunk = os.read(self.fd, n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return bytes(buf)

    def render(self, body: bytes, timeout_s: float) -> dict[str, Any] | None:
        """The child's reply, or None (timed out or died: the caller kills it)."""
        try:
            self.stdin.write(_HEADER.pack(len(body)) + body)
            self.stdin.flush()
        except (BrokenPipeError, OSError):
            return None
        deadline = time.monotonic() + timeout_s
        head = self._read(_HEADER.size, deadline)
        if head is None:
            return None
        (n,) = _HEADER.unpack(head)
        if n > _MAX_REPLY:
            return None
        data = self._read(n, deadline)
        if data is None:
            return None
        # Plain msgpack only: strings and a map, no extension types, nothing executable.
        reply = msgpack.unpackb(data, raw=False)
        return reply if isinstance(reply, dict) else None

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.kill()
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        for f in (self.stdin, self.stdout):
            with contextlib.suppress(OSError):
                f.close()


class RenderWorkers:
    """`render(text, record, ...)`: in-process for straight-line templates, else in a child
    process that is killed at the time limit. Thread-safe; `close()` ends the children."""

    def __init__(
        self,
        workers: int = 2,
        *,
        memory_mb: int = DEFAULT_MEMORY_MB,
        grace_s: float = DEFAULT_GRACE_S,
        hard_timeout_s: float | None = None,
    ) -> None:
        self.memory_mb = memory_mb
        self.grace_s = grace_s
        #: Wall time a render may take before its child is killed (default: budget + grace).
        self.hard_timeout_s = hard_timeout_s
        self._slots: queue.Queue[_Child | None] = queue.Queue()
        for _ in range(max(workers, 1)):
            self._slots.put(None)  # started on first use
        self._children: set[_Child] = set()
        self._lock = threading.Lock()
        self.killed = 0  # children stopped at the time limit (or found dead)
        #: Wall time of the last render sent to a child, from request to reply or kill (starting
        #: a child not included): what the hard limit bounds.
        self.last_seconds = 0.0

    @staticmethod
    def inline(text: str) -> bool:
        """Whether `text` is rendered in-process (no worker round trip)."""
        return is_straight_line(text)

    def render(
        self,
        text: str,
        record: Mapping[str, Any],
        *,
        max_chars: int = DEFAULT_MAX_CHARS,
        max_seconds: float = DEFAULT_MAX_SECONDS,
    ) -> str:
        if is_straight_line(text):
            return render(text, record, max_chars=max_chars, max_seconds=max_seconds)
        try:
            body = msgpack.packb({"t": text, "r": dict(record), "c": max_chars, "s": max_seconds}, default=ext_encode)
        except (TypeError, ValueError, OverflowError) as e:
            raise TemplateError(f"the record cannot be rendered: {e}") from None
        child = self._slots.get()
        try:
            if child is not None and child.proc.poll() is not None:  # ended (by close())
                child = None
            if child is None:
                child = _Child(self.memory_mb)
                with self._lock:
                    self._children.add(child)
            limit_s = self.hard_timeout_s if self.hard_timeout_s is not None else max_seconds + self.grace_s
            sent = time.monotonic()
            reply = child.render(body, limit_s)
            self.last_seconds = time.monotonic() - sent
            if reply is None:
                self._drop(child)
                child = None
                raise TemplateError(f"template took too long to render (stopped after {limit_s:g} s) or its worker died")
        finally:
            self._slots.put(child)
        if "ok" in reply and isinstance(reply["ok"], str):
            return reply["ok"]
        raise TemplateError(str(reply.get("err", "template worker gave no answer")))

    def _drop(self, child: _Child) -> None:
        child.kill()
        with self._lock:
            self._children.discard(child)
            self.killed += 1
        log.warning("template worker stopped at the time limit (or died); a new one starts on the next render")

    def close(self) -> None:
        """End the children (a later render starts new ones)."""
        with self._lock:
            children, self._children = list(self._children), set()
        for child in children:
            child.kill()

    def __del__(self) -> None:  # pragma: no cover - best effort: never leave children behind
        with contextlib.suppress(Exception):
            self.close()
