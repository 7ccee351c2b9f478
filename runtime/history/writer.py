"""The alert history is written off the engine thread: `submit` queues the match frame (no
per-match work), a writer thread converts it column by column and inserts it in one
transaction.  The queue is bounded: when the store falls behind, the engine waits (an
alert is never dropped to keep up).  `flush` waits until everything submitted is stored."""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

import polars as pl

from cepdsl.plan import RulePlan
from runtime.history.alert_rows import alert_frame, alert_rows

log = logging.getLogger("cep.history")


class HistoryWriter:
    def __init__(self, history: Any, clock: Any = time.time, max_queued: int = 256) -> None:
        self.history = history
        self.clock = clock
        self._q: queue.Queue[tuple[str, RulePlan | None, pl.DataFrame, bool] | None] = queue.Queue(max_queued)
        self._cond = threading.Condition()
        self._submitted = 0
        self._done = 0
        self.errors = 0
        self.last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="cep-history", daemon=True)
        self._thread.start()

    def submit(self, rule_id: str, rule: RulePlan | None, frame: pl.DataFrame, test: bool = False) -> None:
        with self._cond:
            self._submitted += 1
        self._q.put((rule_id, rule, frame, test))

    def _run(self) -> None:
        while (item := self._q.get()) is not None:
            batch = [item]
            while len(batch) < 64:  # what queued up meanwhile goes in the same transaction
                try:
                    nxt = self._q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._q.put(None)
                    break
                batch.append(nxt)
            try:
                if hasattr(self.history, "add_frame"):
                    frames = [alert_frame(rid, rule, frame, test) for rid, rule, frame, test in batch]
                    self.history.add_frame(frames[0] if len(frames) == 1 else pl.concat(frames), self.clock())
                else:
                    rows = [r for rid, rule, frame, test in batch for r in alert_rows(rid, rule, frame, test)]
                    self.history.add_rows(rows, self.clock())
            except Exception as e:  # noqa: BLE001 - the history must never stop the engine
                self.errors += 1
                self.last_error = str(e)
                log.error("alert history: %d frame(s) of matches not stored: %s", len(batch), e)
            with self._cond:
                self._done += len(batch)
                self._cond.notify_all()

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

    def close(self, timeout: float = 30.0) -> None:
        self.flush(timeout)
        self._q.put(None)
        self._thread.join(timeout)
