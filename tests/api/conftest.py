"""A real `cep serve` (engine + API) on a free port in this process, and a real PostgreSQL database.

`serve_forever` runs on a thread with a stop event; the address comes from its
`on_ready` callback (it listens on port 0).  PostgreSQL is the machine's server at
127.0.0.1:5432 (trust auth): each test session creates its own database and drops it.
With CI=true a missing PostgreSQL fails the test, elsewhere it skips.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

PG_ADMIN = os.environ.get("CEP_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")

RULES = """\
stream auth (ts: timestamp, user: str, event_type: str, host: str)

rule failed "Failed login"
  from auth
  where event_type == "login_failed"
  severity high
"""

HEADERS = {"X-CEP-Request": "1"}


@dataclass
class Served:
    url: str
    ops: Any
    stop: threading.Event
    thread: threading.Thread
    dir: Path
    result: list[int] = field(default_factory=list)

    def client(self, **kw: Any) -> httpx.Client:
        # 120 s: a route's first use may compile Numba kernels (cold cache, loaded machine: >30 s seen).
        headers = {**HEADERS, **kw.pop("headers", {})}
        return httpx.Client(base_url=self.url, timeout=kw.pop("timeout", 120), headers=headers, **kw)

    def shutdown(self) -> int:
        self.stop.set()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), "cep serve did not stop"
        return self.result[0] if self.result else -1


def start_server(directory: Path, rules: str = RULES, *, sources: tuple[str, ...] = (), **kw: Any) -> Served:
    from runtime.serve import serve_forever

    directory.mkdir(parents=True, exist_ok=True)
    rule_file = directory / "ops.cep"
    if not rule_file.exists():
        rule_file.write_text(rules, encoding="utf-8")
    ready = threading.Event()
    got: dict[str, Any] = {}
    stop = threading.Event()
    result: list[int] = []

    def on_ready(address: str, ops: Any) -> None:
        got.update(address=address, ops=ops)
        ready.set()

    def run() -> None:
        try:
            result.append(
                serve_forever(
                    [str(rule_file)],
                    sources,
                    state=kw.pop("state", f"sqlite:{directory / 'state.sqlite'}"),
                    outbox=str(directory / "outbox.sqlite"),
                    listen="127.0.0.1:0",
                    stop=stop,
                    on_ready=on_ready,
                    checkpoint_every=kw.pop("checkpoint_every", 1.0),
                    **kw,
                )
            )
        finally:
            ready.set()

    thread = threading.Thread(target=run, name="cep-serve-test", daemon=True)
    thread.start()
    assert ready.wait(120), "cep serve did not start"
    assert "address" in got, f"cep serve exited with {result}"
    return Served(got["address"], got["ops"], stop, thread, directory, result)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    started: list[Served] = []

    def make(rules: str = RULES, sub: str = "srv", **kw: Any) -> Served:
        s = start_server(tmp_path / sub, rules, **kw)
        started.append(s)
        return s

    yield make
    for s in started:
        if s.thread.is_alive():
            s.shutdown()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh database on the local PostgreSQL, dropped at the end of the session."""
    try:
        import psycopg

        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except Exception as e:  # noqa: BLE001
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required in CI ({PG_ADMIN}): {e}")
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN}: {e}")
    name = f"cep_api_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
