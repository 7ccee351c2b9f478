"""Real parts for the resilience tests: `cep run` processes, an HTTP receiver that records
Idempotency-Keys, redis-servers the tests can kill, and the replay oracle.

Every test compares what the running process produced with
`cepdsl.compile(text).replay(frames)` of the same input, record for record.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import redis

import cepdsl
from runtime.run import JsonlSink
from tests.support.services import free_port, require_binary

ROOT = Path(__file__).resolve().parents[2]


def now_utc() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def iso(t: datetime) -> str:
    return t.isoformat(timespec="microseconds") + "Z"


# ----------------------------------------------------------------------------- rules and events


def login_rules(hook: str) -> str:
    return f"""
stream auth (ts: timestamp, user: str, event_type: str)

channel hook = webhook(url = "{hook}/alerts")

rule failed "Failed login"
  from auth
  where event_type == "login_failed"
  notify hook

rule brute_force "Three failures, then a success"
  from auth
  group by user
  pattern fail{{3,}} ok within 10m
  define fail as event_type == "login_failed",
         ok   as event_type == "login_ok"
  severity critical
  notify hook
"""


def logins(t0: datetime, users: range) -> list[dict[str, Any]]:
    """Per user: three failures then a success, a minute apart per user (one brute_force each)."""
    out = []
    for i in users:
        base = t0 + timedelta(minutes=i)
        for k, kind in enumerate(["login_failed"] * 3 + ["login_ok"]):
            out.append({"ts": iso(base + timedelta(seconds=k)), "user": f"u{i}", "event_type": kind})
    return out


def append(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


# ----------------------------------------------------------------------------- the oracle


def frame_of(rows: list[dict[str, Any]], schema: dict[str, pl.DataType]) -> pl.DataFrame:
    frame = pl.DataFrame(rows, schema={k: (pl.String if isinstance(t, pl.Datetime) else t) for k, t in schema.items()})
    return frame.with_columns(
        pl.col(c).str.to_datetime(time_unit="us", time_zone="UTC").dt.replace_time_zone(None)
        for c, t in schema.items()
        if isinstance(t, pl.Datetime)
    )


def records(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """Match records as `cep run --out` writes them (RFC 3339 times), for comparison."""
    if frame.height == 0:
        return []
    return [json.loads(line) for line in JsonlSink._rfc3339(frame).write_ndjson().splitlines()]


def replay(text: str, inputs: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    rules = cepdsl.compile(text)
    frames = {s.name: frame_of(inputs.get(s.name, []), s.schema) for s in rules.program.streams}
    return {rule: records(f) for rule, f in rules.replay(frames).items()}


def written(out_dir: Path, rule: str) -> list[dict[str, Any]]:
    f = out_dir / f"{rule}.jsonl"
    return [json.loads(x) for x in f.read_text().splitlines()] if f.exists() else []


def as_multiset(rows: list[dict[str, Any]]) -> Counter[str]:
    return Counter(json.dumps(r, sort_keys=True) for r in rows)


# ----------------------------------------------------------------------------- processes


def start_run(tmp: Path, rules: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """`cep run` as a child process; its stderr goes to a file (`p.log`) readable while it runs."""
    log = tmp / f"cep-run-{time.monotonic_ns()}.log"
    p = subprocess.Popen(
        [sys.executable, "-m", "runtime.cli", "run", str(rules), "--allow-host", "127.0.0.1", *args],
        cwd=tmp,
        stdout=subprocess.DEVNULL,
        stderr=open(log, "w"),
        text=True,  # noqa: SIM115 - the child owns it
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )
    p.log = log  # type: ignore[attr-defined]
    return p


def stderr_of(p: subprocess.Popen[str]) -> str:
    return Path(p.log).read_text()  # type: ignore[attr-defined]


def wait_for(cond: Callable[[], bool], timeout: float = 45.0, every: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(every)
    return cond()


def outbox_sent(path: Path) -> int:
    """Deliveries the outbox has marked sent: a kill -9 after this re-sends none of them
    (one killed between a receipt and its mark is at-least-once by design)."""
    import sqlite3

    if not path.exists():
        return 0
    with sqlite3.connect(path) as db:
        return db.execute("SELECT count(*) FROM deliveries WHERE status = 'sent'").fetchone()[0]


def get_json(url: str) -> dict[str, Any] | None:
    try:
        return httpx.get(url, timeout=2).json()
    except (httpx.HTTPError, ValueError):
        return None


# ----------------------------------------------------------------------------- receiver


class Receiver:
    """A webhook receiver on 127.0.0.1 recording (Idempotency-Key, rule) per delivery."""

    def __init__(self) -> None:
        self.got: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                rule = "brute_force" if "brute_force" in json.dumps(body) else "failed"
                with owner.lock:
                    owner.got.append((self.headers.get("Idempotency-Key", ""), rule))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def keys(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        with self.lock:
            for key, rule in self.got:
                out.setdefault(rule, set()).add(key)
        return out

    def count(self, rule: str) -> int:
        return len(self.keys().get(rule, ()))

    def deliveries_per_key(self) -> Counter[str]:
        with self.lock:
            return Counter(k for k, _ in self.got)

    def close(self) -> None:
        self.server.shutdown()
        self.thread.join(5)


# ----------------------------------------------------------------------------- redis


class KillableRedis:
    """A redis-server on a free port that a test kills (SIGKILL) and restarts.

    `persist=True` keeps data across a kill (append-only file, fsync on every write),
    as a production Redis would; without it a restart comes back empty.
    """

    def __init__(self, data_dir: Path, *, persist: bool = False) -> None:
        self.binary = require_binary("redis-server")
        self.port = free_port()
        self.dir = data_dir
        self.persist = persist
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, decode_responses=True, socket_timeout=2)

    def start(self) -> None:
        durability = ["--appendonly", "yes", "--appendfsync", "always"] if self.persist else ["--appendonly", "no"]
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--dir",
                str(self.dir),
                "--daemonize",
                "no",
                *durability,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        c = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                c.ping()
                break
            except (redis.ConnectionError, redis.ResponseError):  # LOADING while the AOF is read back
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.02)
        c.close()

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None


@contextmanager
def killable_redis(tmp: Path, *, persist: bool = False) -> Iterator[KillableRedis]:
    d = tmp / "redis"
    d.mkdir(exist_ok=True)
    server = KillableRedis(d, persist=persist)
    server.start()
    try:
        yield server
    finally:
        server.kill()


def stop_process(p: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str]:
    """SIGTERM, then the exit code and stderr."""
    if p.poll() is None:
        p.terminate()
    p.wait(timeout)
    return p.returncode, stderr_of(p)
