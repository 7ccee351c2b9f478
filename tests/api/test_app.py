"""The API app over a program given in memory (no engine): real uvicorn on 127.0.0.1, httpx client."""

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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(app) -> Iterator[str]:  # noqa: ANN001
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 10
    while not server.started and time.time() < deadline:
        time.sleep(0.02)
    assert server.started
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def base_url() -> Iterator[str]:
    yield from _serve(create_app(compile_source(RULES, "auth.cep"), "auth.cep"))


@pytest.mark.timeout(30)
def test_rules_and_health(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=5) as c:
        rules = c.get("/cep/rules").json()
        assert [r["id"] for r in rules] == ["failed"]
        assert rules[0]["kind"] == "filter"
        assert rules[0]["severity"] == "high"
        assert rules[0]["output"]["ts"] == "timestamp"
        missing = c.get("/cep/rules/nope")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not-found"
        health = c.get("/cep/health")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        assert health.json()["rules"] == 1
        assert c.get("/cep/stats").json()["running"] is False
        assert c.get("/cep/nothing-here").json() == {"error": {"code": "not-found", "message": "Not Found"}}


@pytest.mark.timeout(30)
def test_check_endpoint_returns_diagnostics(base_url: str) -> None:
    bad = "stream s (ts: timestamp, cpu: float)\nrule r from s where cpux > 1\n"
    with httpx.Client(base_url=base_url, timeout=5, headers={"X-CEP-Request": "1"}) as c:
        body = c.post("/cep/check", content=bad, headers={"content-type": "text/plain"}, params={"filename": "x.cep"}).json()
    assert body["ok"] is False
    (d,) = body["diagnostics"]
    assert (d["line"], d["col"]) == (2, 21)
    assert d["message"] == "unknown field `cpux` in stream `s`"
    assert d["hints"] == ["did you mean `cpu`?"]
    assert d["rendered"].splitlines()[0] == "x.cep:2:21: error: unknown field `cpux` in stream `s`"


@pytest.mark.timeout(30)
def test_openapi_lists_every_route_and_docs_work_offline(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=5) as c:
        doc = c.get("/openapi.json").json()
        paths = doc["paths"]
        for path, method in [
            ("/cep/rules", "post"),
            ("/cep/rules/{rule_id}", "put"),
            ("/cep/rules/{rule_id}/toggle", "patch"),
            ("/cep/events", "get"),
            ("/cep/events/{event_id}", "delete"),
            ("/cep/rules/{rule_id}/simulate", "post"),
            ("/cep/simulate", "post"),
            ("/cep/stats/summary", "get"),
            ("/cep/rules/performance", "get"),
            ("/cep/streams/{stream}/events", "post"),
            ("/cep/channels/types", "get"),
            ("/cep/templates", "put"),
            ("/cep/form", "post"),
            ("/cep/health/circuit-breakers", "get"),
            ("/cep/rules/{rule_id}/anomaly-reset", "post"),
            ("/metrics", "get"),
        ]:
            assert method in paths[path], (path, method)
        ok = paths["/cep/events"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert ok == {"$ref": "#/components/schemas/AlertPage"}
        page = c.get("/docs").text
        assert "/cep/docs-assets/swagger-ui-bundle.js" in page and "cdn" not in page.lower()
        js = c.get("/cep/docs-assets/swagger-ui-bundle.js")
        assert js.status_code == 200 and len(js.content) > 100_000


class StatsOnlyEngine:
    """An engine that only reports (what a Bytewax flow handle gives the API): the routes must
    not assume the streaming engine's other attributes."""

    def stats(self) -> dict:
        return {"failed": {"events_in": 10, "matches": 3}}

    def health(self) -> dict:
        return {"degraded": True}


@pytest.mark.timeout(30)
def test_an_engine_that_only_reports() -> None:
    served = _serve(create_app(compile_source(RULES, "auth.cep"), "auth.cep", engine=StatsOnlyEngine()))
    url = next(served)
    with httpx.Client(base_url=url, timeout=5) as c:
        h = c.get("/cep/health")
        assert h.status_code == 503 and h.json()["reasons"] == ["the engine reports itself degraded"]
        assert c.get("/cep/stats").json()["rules"] == {"failed": {"events_in": 10, "matches": 3}}
        assert c.get("/cep/rules/failed/metrics").json()["matches"] == 3
        for path in ("/cep/stats/summary", "/cep/streams", "/metrics", "/cep/health/sources", "/cep/rules/performance"):
            assert c.get(path).status_code == 200, path
    served.close()
