"""The notice `cep` prints while a first run compiles Numba kernels, instead of sitting silent.

Numba compiles a kernel the first time it meets a dtype and caches it on disk
(`cache=True`), so only the first run of a rule set waits. Numba broadcasts a
`numba:compile` event around each compilation that misses the cache; once those
have kept the process busy for `after_s`, one line is printed (and `on_change`,
e.g. a progress bar, is told compilation started and ended).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO

from numba.core import event as numba_event

MESSAGE = "compiling kernels (first run only; later runs load them from the cache, this can take ~20 s)…"


class CompileWatch(numba_event.Listener):
    def __init__(self, after_s: float = 1.0, out: IO[str] | None = None, on_change: Callable[[bool], None] | None = None) -> None:
        self.after_s = after_s
        self.out = out
        self.on_change = on_change
        self.depth = 0
        self.since = 0.0
        self.busy_s = 0.0  # compile time finished so far
        self.announced = False
        self.compiling = False  # announced and still compiling
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def on_start(self, event: object) -> None:
        with self._lock:
            if self.depth == 0:
                self.since = time.perf_counter()
            self.depth += 1

    def on_end(self, event: object) -> None:
        with self._lock:
            self.depth -= 1
            if self.depth == 0:
                self.busy_s += time.perf_counter() - self.since
        if self.depth == 0 and self.compiling:
            self._set(False)

    def busy(self) -> float:
        with self._lock:
            return self.busy_s + (time.perf_counter() - self.since if self.depth else 0.0)

    def _set(self, compiling: bool) -> None:
        self.compiling = compiling
        if self.on_change is not None:
            self.on_change(compiling)

    def _poll(self) -> None:
        while not self._stop.wait(0.1):
            if not self.announced and self.depth and self.busy() >= self.after_s:
                self.announced = True
                if self.out is not None:
                    print(f"cep: {MESSAGE}", file=self.out, flush=True)
                self._set(True)

    def start(self) -> None:
        threading.Thread(target=self._poll, name="cep-compile-watch", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        if self.compiling:
            self._set(False)


@contextmanager
def announce_compilation(
    after_s: float = 1.0, *, print_line: bool = True, on_change: Callable[[bool], None] | None = None
) -> Iterator[CompileWatch]:
    """While the block runs, print one line on stderr once kernel compilation has taken
    `after_s` (unless `print_line` is off: a progress bar or live table says it instead)."""
    watch = CompileWatch(after_s, sys.stderr if print_line else None, on_change)
    numba_event.register("numba:compile", watch)
    watch.start()
    try:
        yield watch
    finally:
        watch.stop()
        numba_event.unregister("numba:compile", watch)
