"""What stands between the network and the routes (issue 12 item 6, issue 14 item 9).

- Host allow-list: a page on another origin (or DNS rebinding) cannot reach a
  loopback server through the browser, because its requests carry its own host name.
- State-changing methods (every method but GET/HEAD/OPTIONS) need the bearer
  token when one is set; without a token they need `X-CEP-Request: 1`, a header
  an HTML form cannot send and a cross-origin script cannot send without a CORS
  preflight that this server never grants.
- Body size is capped while the body is read (Content-Length is checked first,
  the running count of received bytes after), so a large upload costs at most
  the cap in memory: 64 MB on event ingest, 1 MB everywhere else.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import Iterable
from typing import Any

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
RULE_BODY_MAX = 1 << 20
INGEST_BODY_MAX = 64 << 20
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
access_log = logging.getLogger("cep.api.access")


class BodyTooLarge(Exception):
    pass


def body_limit(path: str) -> int:
    if path.startswith("/cep/streams/") and path.endswith("/events"):
        return INGEST_BODY_MAX
    return RULE_BODY_MAX


def _host_name(value: str) -> str:
    value = value.strip().lower()
    if value.startswith("["):
        return value[: value.find("]") + 1] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class Guard:
    """Pure ASGI middleware (it must see the body as it streams in, before any route)."""

    def __init__(self, app: Any, *, token: str | None = None, hosts: Iterable[str] = LOOPBACK_HOSTS) -> None:
        self.app = app
        self.token = token
        self.hosts = {h.lower() for h in hosts}
        self.any_host = "*" in self.hosts

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = [0]

        async def logged_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self._guarded(scope, receive, logged_send)
        finally:
            access_log.info("%s %s %s %.1fms", scope["method"], scope["path"], status[0] or "-", (time.perf_counter() - t0) * 1e3)

    async def _guarded(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if not self.any_host and _host_name(headers.get("host", "")) not in self.hosts:
            await _reply(send, 421, "host-not-allowed", f"Host {headers.get('host', '')!r} is not served here (see --http-host)")
            return
        if scope["method"] not in SAFE_METHODS:
            if self.token is not None:
                given = headers.get("authorization", "")
                if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
                    await _reply(
                        send,
                        401,
                        "unauthorized",
                        "this route changes state: send Authorization: Bearer <token>",
                        {"www-authenticate": "Bearer"},
                    )
                    return
            elif headers.get("x-cep-request") != "1":
                await _reply(send, 403, "forbidden", "this route changes state: send the header X-CEP-Request: 1")
                return
        limit = body_limit(scope["path"])
        declared = headers.get("content-length")
        if declared is not None:
            try:
                too_big = int(declared) > limit
            except ValueError:
                await _reply(send, 400, "bad-request", "Content-Length is not a number")
                return
            if too_big:
                await _reply(send, 413, "too-large", f"the body is over {limit} bytes")
                return
        seen = 0
        started = False

        async def capped_receive() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge
            return message

        async def watched_send(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, capped_receive, watched_send)
        except BodyTooLarge:
            if not started:
                await _reply(send, 413, "too-large", f"the body is over {limit} bytes")


async def _reply(send: Any, status: int, code: str, message: str, extra: dict[str, str] | None = None) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
