"""`Session.stats()` is read from other threads (the live table, the HTTP API) while the
engine thread reloads rules: it sees the old rule set or the new one, never half of one."""

from __future__ import annotations

import threading

import cepdsl
from cepdsl.frontend import compile_source

STREAM = "stream m (ts: timestamp, host: str, cpu: float)\n"


def program(n_rules: int):  # noqa: ANN201
    return compile_source(STREAM + "\n".join(f"rule r{i} from m where cpu > {i}" for i in range(n_rules)))


def test_stats_from_another_thread_during_reloads() -> None:
    small, big = program(5), program(300)
    session = cepdsl.compile(STREAM + "rule r0 from m where cpu > 0").session()
    stop = threading.Event()
    seen: set[int] = set()
    errors: list[BaseException] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                seen.add(len(session.stats(state_size=False)))
                assert set(session.progresses()) == {"m"}
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)
                return

    t = threading.Thread(target=reader)
    t.start()
    try:
        for i in range(40):
            session.reload(big if i % 2 else small)
    finally:
        stop.set()
        t.join(timeout=30)
    assert not errors, errors[0]
    assert seen <= {1, 5, 300}, seen  # whole rule sets only
    assert len(session.stats(state_size=False)) == 300  # the last reload (i = 39) was the big set
