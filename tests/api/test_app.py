"""The HTTP API over a real server on 127.0.0.1 (uvicorn in a thread, httpx client)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from cepdsl.frontend import compile_source
from runtime.api import create_app

RULES = """
stream auth (ts: timestamp, user: str, event_type: str)
rule failed "Failed login"
  from auth
  where event_type == "login_failed"
  severity high
"""


class FakeEngine:
    """Stands in for the running engine's two read-only views (no I/O behind them)."""

    def stats(self) -> dict:
        return {"failed": {"events_in": 10, "matches": 3}}

    def health(self) -> dict:
        return {"degraded": True, "state_store": "redis unreachable"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def base_url() -> Iterator[str]:
    port = _free_port()
    app = create_app(compile_source(RULES, "auth.cep"), "auth.cep", engine=FakeEngine())
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 10
    while not server.started and time.time() < deadline:
        time.sleep(0.02)
    assert server.started
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.mark.timeout(30)
def test_rules_and_health(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=5) as c:
        rules = c.get("/cep/rules").json()
        assert [r["id"] for r in rules] == ["failed"]
        assert rules[0]["kind"] == "filter"
        assert rules[0]["severity"] == "high"
        assert rules[0]["output"]["ts"] == "timestamp"
        assert c.get("/cep/rules/nope").status_code == 404
        health = c.get("/cep/health").json()
        assert health["status"] == "degraded"
        assert health["rules"] == 1
        assert c.get("/cep/stats").json() == {"running": True, "rules": {"failed": {"events_in": 10, "matches": 3}}}


@pytest.mark.timeout(30)
def test_check_endpoint_returns_diagnostics(base_url: str) -> None:
    bad = "stream s (ts: timestamp, cpu: float)\nrule r from s where cpux > 1\n"
    with httpx.Client(base_url=base_url, timeout=5) as c:
        body = c.post("/cep/check", content=bad, headers={"content-type": "text/plain"}, params={"filename": "x.cep"}).json()
    assert body["ok"] is False
    (d,) = body["diagnostics"]
    assert (d["line"], d["col"]) == (2, 21)
    assert d["message"] == "unknown field `cpux` in stream `s`"
    assert d["hints"] == ["did you mean `cpu`?"]
    assert d["rendered"].splitlines()[0] == "x.cep:2:21: error: unknown field `cpux` in stream `s`"
