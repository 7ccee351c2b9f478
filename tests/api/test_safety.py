"""Issue 12 item 6 / issue 14 item 9: Host allow-list, token or X-CEP-Request on state-changing
routes, body limits enforced while reading, JSON errors for malformed bodies, loopback without a token."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import httpx
import pytest

from tests.api.conftest import RULES, Served


def raw_request(url: str, data: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


@pytest.mark.timeout(180)
def test_without_token(serve) -> None:  # noqa: ANN001
    s: Served = serve()
    with httpx.Client(base_url=s.url, timeout=30) as c:
        # Reads need nothing; a state-changing route needs the header an HTML form cannot send.
        assert c.get("/cep/rules").status_code == 200
        r = c.post("/cep/rules", content="rule x from auth\n", headers={"content-type": "text/plain"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
        assert c.patch("/cep/rules/failed/toggle", json={"enabled": False}).status_code == 403
        # Host allow-list (DNS rebinding, foreign pages): loopback names only by default.
        evil = c.get("/cep/rules", headers={"host": "evil.example:80"})
        assert evil.status_code == 421 and evil.json()["error"]["code"] == "host-not-allowed"
        assert c.get("/cep/health/live", headers={"host": "localhost:1234"}).status_code == 200
        # Body limits: a declared length over 1 MB is refused before reading; so is one that streams past it.
        h = {"X-CEP-Request": "1", "content-type": "text/plain"}
        big = c.post("/cep/check", content=b"x" * (1 << 20 | 1), headers=h)
        assert big.status_code == 413 and big.json()["error"]["code"] == "too-large"

        def chunks():  # noqa: ANN202 - no Content-Length: chunked, counted while read
            for _ in range(40):
                yield b"# " + b"y" * 65534

        streamed = c.post("/cep/check", content=chunks(), headers=h)
        assert streamed.status_code == 413
        # Ingest allows more than 1 MB (64 MB cap).
        line = b'{"ts": "2026-01-01T00:00:00Z", "user": "u", "event_type": "x", "host": "h"}\n'
        many = line * (2_000_000 // len(line))
        ok = c.post("/cep/streams/auth/events", content=many, headers={"X-CEP-Request": "1", "content-type": "application/x-ndjson"})
        assert ok.status_code == 200 and ok.json()["accepted"] == many.count(b"\n")
        # Malformed bodies are JSON errors, never 500: non-UTF-8, broken JSON, wrong shapes.
        for body, ctype in [
            (b"\xff\xfe\x00rule", "text/plain"),
            (b"{not json", "application/json"),
            (b"[1, 2", "application/json"),
            (b"\xff", "application/json"),
        ]:
            r = c.post("/cep/rules", content=body, headers={"X-CEP-Request": "1", "content-type": ctype})
            assert 400 <= r.status_code < 500 and "error" in r.json(), (body, r.status_code, r.text)
        for path in ("/cep/simulate", "/cep/rules", "/cep/check", "/cep/streams/auth/events"):  # nesting past recursion
            r = c.post(path, content=b"[" * 200_000, headers={"X-CEP-Request": "1", "content-type": "application/json"})
            assert r.status_code == 400 and "error" in r.json(), (path, r.status_code, r.text)
        for path in ("/cep/simulate", "/cep/channels", "/cep/form", "/cep/rules/failed/dry-run"):
            r = c.post(path, content=b"\xff\xfe", headers={"X-CEP-Request": "1", "content-type": "application/json"})
            assert 400 <= r.status_code < 500 and "error" in r.json(), (path, r.status_code, r.text)
        r = c.post(
            "/cep/streams/auth/events",
            content=b"[{\"ts\": 1}, \xff]",
            headers={"X-CEP-Request": "1", "content-type": "application/json"},
        )
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid-json"
        bad_lines = c.post(
            "/cep/streams/auth/events",
            content=b"\xff\xfe\n{oops\n",
            headers={"X-CEP-Request": "1", "content-type": "application/x-ndjson"},
        )
        assert bad_lines.status_code == 200 and bad_lines.json()["dead_letters"] == 2
    # A lying Content-Length does not make the server read more than the cap.
    reply = raw_request(
        s.url,
        b"POST /cep/check HTTP/1.1\r\nHost: 127.0.0.1\r\nX-CEP-Request: 1\r\n"
        b"Content-Length: 99999999999\r\nConnection: close\r\n\r\nabc",
    )
    assert reply.startswith(b"HTTP/1.1 413")


@pytest.mark.timeout(180)
def test_with_token(serve) -> None:  # noqa: ANN001
    s: Served = serve(token="s3cret-token", http_hosts=("cep.internal", "127.0.0.1"))
    with httpx.Client(base_url=s.url, timeout=30) as c:
        rule = {"content": "rule x from auth\n", "headers": {"content-type": "text/plain", "X-CEP-Request": "1"}}
        assert c.post("/cep/rules", **rule).status_code == 401
        wrong = c.post("/cep/rules", content="rule x from auth\n", headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
        ok = c.post(
            "/cep/rules", content="rule x from auth\n", headers={"authorization": "Bearer s3cret-token", "content-type": "text/plain"}
        )
        assert ok.status_code == 201, ok.text
        assert c.get("/cep/rules", headers={"host": "cep.internal"}).status_code == 200
        assert c.get("/cep/rules", headers={"host": "localhost"}).status_code == 421  # not in --http-host


@pytest.mark.timeout(60)
def test_refuses_a_public_address_without_a_token(tmp_path) -> None:  # noqa: ANN001
    (tmp_path / "ops.cep").write_text(RULES)
    env = {"PATH": "/usr/bin:/bin", "CEP_API_TOKEN": ""}
    p = subprocess.run(
        [sys.executable, "-m", "runtime.cli", "serve", "ops.cep", "--listen", "0.0.0.0:0"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert p.returncode == 2
    assert p.stderr.startswith("error: --listen 0.0.0.0:0: without a token the API binds loopback only")
    assert "Traceback" not in p.stderr
    time.sleep(0)
