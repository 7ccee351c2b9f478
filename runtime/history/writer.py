"""The alert history is written off the engine: `submit` queues the match frame (no per-match
work on the engine thread) and the writer stores what queued up meanwhile in one write.

Where the store can be opened by another process (a SQLite file, PostgreSQL, Redis) the
writing happens in a process of its own (`_child` below): converting and inserting matches
costs ~5-10 µs of CPU each, and in a thread of the engine's process that work held the GIL
and Polars' thread pool the engine needs.  The writer's thread here only pickles each frame
(Arrow IPC inside, ~0.5 µs a match with the pipe) and sends it; the process answers with
what it has stored.  Until the process is up (it imports Polars, ~0.5 s), and for ever if it
dies, the thread writes itself: alerts are never dropped for want of a process.  With
`memory` (one connection, this process only) the thread always writes.

The queue is bounded (256 frames): when the store falls behind, the engine waits
(backpressure, no alert dropped to keep up).  `flush` waits until everything submitted is
stored; `close` drains the queue and the process before returning.  A write the store
refuses (the database is down) is logged and counted in `errors`, not retried.
"""

from __future__ import annotations

import logging
import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import polars as pl

from cepdsl.plan import RulePlan
from runtime.history.alert_rows import Item, batch_frame

log = logging.getLogger("cep.history")

#: Frames gathered into one write at most (what queued up while the last write ran).
MAX_FRAMES_PER_WRITE = 256
#: Rows gathered into one write at most: one transaction stays short for the API's readers.
MAX_ROWS_PER_WRITE = 100_000

_HEADER = struct.Struct(">I")
_CHILD_DIED = object()


def store_items(history: Any, items: list[Item]) -> None:
    """Store submitted match frames in one write."""
    history.add_frame(batch_frame(items))


def _send(out: IO[bytes], obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    out.write(_HEADER.pack(len(data)))
    out.write(data)
    out.flush()


def _recv(inp: IO[bytes]) -> Any:
    head = inp.read(_HEADER.size)
    if len(head) < _HEADER.size:
        raise EOFError
    n = _HEADER.unpack(head)[0]
    data = inp.read(n)
    if len(data) < n:
        raise EOFError
    return pickle.loads(data)  # noqa: S301 - our own child/parent, over a private pipe


def shareable(spec: str | None) -> bool:
    """A store another process can open: a SQLite file, PostgreSQL or Redis (not `memory`)."""
    return bool(spec) and spec != "memory"


class HistoryWriter:
    def __init__(self, history: Any, clock: Any = time.time, max_queued: int = 256, process: bool | None = None) -> None:
        """`process`: write in a process of its own (default: when the store is shareable;
        `CEP_HISTORY_WRITER=thread` turns it off)."""
        self.history = history
        self.clock = clock
        self._q: queue.Queue[Any] = queue.Queue(max_queued)
        self._cond = threading.Condition()
        self._submitted = 0
        self._done = 0
        self.errors = 0
        self.last_error: str | None = None
        #: CPU seconds the writer process has used (what the history costs beside the engine's process)
        self.process_cpu_s = 0.0
        spec = getattr(history, "spec", None)
        if process is None:
            process = shareable(spec) and os.environ.get("CEP_HISTORY_WRITER", "process") != "thread"
        self._proc: subprocess.Popen[bytes] | None = None
        self._ready = False  # the process answered; until then (and after it dies) the thread writes
        self._dead = False
        self._seq = 0
        self._unacked: dict[int, list[Item]] = {}  # sent, not yet stored: written here if the process dies
        self._rules_sent: dict[int, RulePlan | None] = {}  # id → plan (held so the id is not reused)
        if process and spec is not None:
            try:
                self._start_process(spec)
            except OSError as e:
                log.error("alert history: no writer process (%s); the engine's process writes", e)
                self._proc = None
        self._thread = threading.Thread(target=self._run, name="cep-history", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ engine side
    def submit(self, rule_id: str, rule: RulePlan | None, frame: pl.DataFrame, test: bool = False) -> None:
        emitted = int(self.clock() * 1_000_000)
        with self._cond:
            self._submitted += 1
        self._q.put((rule_id, rule, frame, test, emitted))

    def flush(self, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            target = self._submitted
            while self._done < target:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def wait_ready(self, timeout: float = 30.0) -> bool:
        """Wait until the writer process is up (True at once without one)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._proc is not None and not self._ready and not self._dead:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    @property
    def in_process(self) -> bool:
        """Whether the writer process does the writing (now)."""
        return self._ready and not self._dead

    def close(self, timeout: float = 30.0) -> None:
        if not self.flush(timeout):
            with self._cond:
                left = self._submitted - self._done
            log.error("alert history: %d frame(s) of matches still not stored after %.0f s", left, timeout)
        self._q.put(None)
        self._thread.join(timeout)
        if self._proc is not None:
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.error("alert history: the writer process did not stop; killed")
                self._proc.kill()
                self._proc.wait()
            self._acks.join(timeout)

    # ------------------------------------------------------------------ the writer thread
    def _run(self) -> None:
        while (item := self._q.get()) is not None:
            if item is _CHILD_DIED:
                self._take_over()
                continue
            batch = [item]
            rows = item[2].height
            while len(batch) < MAX_FRAMES_PER_WRITE and rows < MAX_ROWS_PER_WRITE:
                try:
                    nxt = self._q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None or nxt is _CHILD_DIED:
                    self._q.put(nxt)  # handled after this batch
                    break
                batch.append(nxt)
                rows += nxt[2].height
            if self._ready and not self._dead:
                self._send_batch(batch)
            else:
                self._write_here(batch)
        if self._proc is not None:
            try:
                self._to_proc.close()  # the process drains what it has, then exits
            except OSError:
                pass

    def _write_here(self, batch: list[Item]) -> None:
        try:
            store_items(self.history, batch)
        except Exception as e:  # noqa: BLE001 - the history must never stop the engine
            self._failed(len(batch), str(e))
        with self._cond:
            self._done += len(batch)
            self._cond.notify_all()

    def _failed(self, frames: int, error: str) -> None:
        self.errors += 1
        self.last_error = error
        log.error("alert history: %d frame(s) of matches not stored: %s", frames, error)

    # ------------------------------------------------------------------ the writer process
    def _start_process(self, spec: str) -> None:
        root = str(Path(__file__).resolve().parents[2])  # where `runtime` is importable from
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
        retention = str(getattr(self.history, "retention_s", 0.0))
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys; from runtime.history.writer import _child; _child(sys.argv[1], float(sys.argv[2]))",
                spec,
                retention,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            # A session of its own: the terminal's Ctrl-C is not for it (it leaves when
            # the pipe closes), and where the kernel groups CPU time by session
            # (autogroup) the writer does not take it from the engine's share.
            start_new_session=True,
        )
        assert proc.stdin is not None and proc.stdout is not None  # both PIPE
        self._proc, self._to_proc, self._from_proc = proc, proc.stdin, proc.stdout
        try:  # a larger pipe: a write of a few frames does not wait for the process to read
            import fcntl

            fcntl.fcntl(proc.stdin.fileno(), 1031, 1 << 20)  # F_SETPIPE_SZ
        except (ImportError, OSError):
            pass
        self._acks = threading.Thread(target=self._read_acks, name="cep-history-acks", daemon=True)
        self._acks.start()

    def _send_batch(self, batch: list[Item]) -> None:
        msg = []
        for rid, rule, frame, test, emitted in batch:
            plan = None
            if id(rule) not in self._rules_sent:  # each plan crosses once; then its id names it
                self._rules_sent[id(rule)] = rule
                plan = rule
            msg.append((rid, id(rule), plan, frame, test, emitted, frame.height))  # a frame pickles as Arrow IPC
        with self._cond:
            self._seq += 1
            seq = self._seq
            self._unacked[seq] = batch
        try:
            _send(self._to_proc, (seq, msg))
        except (OSError, ValueError):  # the process is gone: this thread writes from now on
            self._dead = True
            self._take_over()

    def _read_acks(self) -> None:
        proc, out = self._proc, self._from_proc
        assert proc is not None
        try:
            while True:
                kind, *rest = _recv(out)
                if kind == "ready":
                    self.process_cpu_s = rest[0]
                    with self._cond:
                        self._ready = True
                        self._cond.notify_all()
                elif kind == "stored":
                    seq, errors, cpu = rest
                    self.process_cpu_s = cpu
                    for frames, error in errors:
                        self._failed(frames, error)
                    with self._cond:
                        done = [s for s in self._unacked if s <= seq]
                        for s in done:
                            self._done += len(self._unacked.pop(s))
                        self._cond.notify_all()
        except (EOFError, OSError, pickle.UnpicklingError):
            pass
        with self._cond:
            self._dead = True
            pending = bool(self._unacked)
            self._cond.notify_all()
        if pending or proc.poll() not in (0, None):
            log.error("alert history: the writer process stopped (exit %s); this process writes from now on", proc.poll())
        if pending:
            self._q.put(_CHILD_DIED)

    def _take_over(self) -> None:
        """The process died with frames sent and not stored: write them here (a frame the
        process had committed and not yet acknowledged is then stored twice, never lost)."""
        with self._cond:
            pending = [self._unacked.pop(s) for s in sorted(self._unacked)]
        for batch in pending:
            self._write_here(batch)


# ---------------------------------------------------------------------- the process itself
def _child(spec: str, retention_s: float) -> None:
    import select
    import signal

    from runtime.history import open_history

    # Ctrl-C and a service manager's SIGTERM reach the whole process group: the writer outlives
    # them until the engine's process closes the pipe, so what is queued is still stored.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

    inp = sys.stdin.buffer
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    sys.stdout = sys.stderr  # nothing but answers on the answer pipe
    history = open_history(spec, retention_s)
    rules: dict[int, RulePlan | None] = {}
    _send(out, ("ready", time.process_time()))
    while True:
        try:
            pending = [_recv(inp)]
        except EOFError:
            break
        # What the engine sent while the last write ran goes in this one.
        rows = 0
        while len(pending) < MAX_FRAMES_PER_WRITE and rows < MAX_ROWS_PER_WRITE and select.select([inp], [], [], 0)[0]:
            try:
                pending.append(_recv(inp))
            except EOFError:
                break
            rows += sum(m[6] for m in pending[-1][1])
        items: list[Item] = []
        for _, msg in pending:
            for rid, token, plan, frame, test, emitted, _ in msg:
                if plan is not None or token not in rules:
                    rules[token] = plan
                items.append((rid, rules[token], frame, test, emitted))
        errors = []
        try:
            store_items(history, items)
        except Exception as e:  # noqa: BLE001 - reported to the engine's process, which logs it
            errors.append((len(items), str(e)))
        _send(out, ("stored", pending[-1][0], errors, time.process_time()))
    history.close()
