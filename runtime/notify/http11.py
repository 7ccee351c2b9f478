"""A small HTTP/1.1 keep-alive client on asyncio streams, for webhook-style posts.

Why not httpx: the notifier sends one small JSON POST per delivery, many in
flight, to a handful of origins. httpx + httpcore spend ~1–2 ms of CPU per
request on that path (request/response models, pool bookkeeping, anyio
layers); measured in bench/bench_notify.py, that CPU — not the network — was
the ceiling of the whole notify path. This client does only what a webhook
needs: one request per connection at a time, keep-alive, Content-Length or
chunked or read-to-close bodies, TLS through the ssl module, no redirects
(a 3xx is returned as is), no proxies, no cookies, no compression.

It is the notifier's only HTTP client (bench/README.md, issue 13: 1.99x aiohttp
and far ahead of httpx on the same requests). The scheme is checked per request, and every *new connection* resolves the host through
`DestinationPolicy.resolve` (refuses if any resolved address is forbidden)
and connects to the address that was checked, so DNS rebinding cannot slip
through between check and use.

Errors: `DestinationRefused` (policy, bad scheme or URL: never retried),
`TimeoutError`, and `OSError` subclasses (connect failures, resets, a server
that breaks the protocol: `HttpProtocolError`) — what `retry.classify_exception`
treats as retryable.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import functools
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from runtime.notify.errors import DestinationRefused
from runtime.notify.ssrf import DestinationPolicy, Resolver, default_ssl_context, system_resolver

MAX_HEAD_BYTES = 64 * 1024  # status line + headers
MAX_BODY_BYTES = 1024 * 1024  # what we keep of a response body (we show 500 characters of it)
# Idle connections older than this are closed, not reused: below the 5 s idle timeout of
# uvicorn/gunicorn-style servers, so we rarely race a server closing the connection.
KEEPALIVE_EXPIRY_S = 4.0
_DEFAULT_PORTS = {"http": 80, "https": 443}
_NO_BODY_STATUS = frozenset({204, 304})
# Request headers the client owns: letting a rule file set them would allow request smuggling.
_OWNED_HEADERS = frozenset({"host", "content-length", "transfer-encoding"})
_SAFE_TARGET_CHARS = "!$&'()*+,;=:@/?%[]~-._"


class HttpProtocolError(ConnectionError):
    """The server broke HTTP/1.1 (malformed or truncated response): retryable, like a reset."""


class InvalidURL(DestinationRefused):
    """A URL that cannot be sent (no host, bad port, control characters): never retried."""


class Headers(dict[str, str]):
    """Response headers, keys lower-cased; `get` is case-insensitive."""

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return super().__contains__(key.lower() if isinstance(key, str) else key)


@dataclass(frozen=True)
class HttpResponse:
    """The parts of a response the channels read (named as in httpx.Response, a familiar face)."""

    status_code: int
    headers: Headers
    content: bytes
    reason_phrase: str = ""

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str  # as resolved and checked: IDNA-encoded, no brackets
    port: int
    host_header: str
    path: str  # request-target: path and query, percent-encoded
    userinfo: tuple[str, str] | None

    @property
    def origin(self) -> tuple[str, str, int]:
        return self.scheme, self.host, self.port


@functools.lru_cache(maxsize=512)  # channels post to a few fixed URLs: parse each once
def _parse_url(url: str) -> _Target:
    try:
        parts = urlsplit(url)
        port = parts.port
        host = parts.hostname
    except ValueError as exc:
        raise InvalidURL(f"invalid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise DestinationRefused(f"URL scheme {parts.scheme!r} is not allowed (http and https only)")
    if not host:
        raise InvalidURL("invalid URL: no host")
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise InvalidURL("invalid URL: host is not a valid domain name") from None
    if any(c in host for c in " \t\r\n/\\@") or not host.isprintable():
        raise InvalidURL("invalid URL: bad character in host")
    port = port or _DEFAULT_PORTS[scheme]
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port == _DEFAULT_PORTS[scheme] else f"{shown}:{port}"
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if not (path.isascii() and path.isprintable()) or " " in path:
        path = quote(path, safe=_SAFE_TARGET_CHARS)
    userinfo = None
    if parts.username is not None:
        userinfo = (unquote(parts.username), unquote(parts.password or ""))
    return _Target(scheme, host, port, host_header, path, userinfo)


def _header_line(name: str, value: str) -> str:
    # A line break in a name or value would let it inject headers (or a whole request);
    # the message names the header, never the value (it may be a secret).
    if not name or "\r" in name or "\n" in name or ":" in name or "\r" in value or "\n" in value or "\0" in value:
        raise ValueError(f"header {name!r} has a line break or invalid character")
    return f"{name}: {value}\r\n"


class _Connection:
    __slots__ = ("reader", "writer", "idle_since", "origin")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, origin: tuple[str, str, int]) -> None:
        self.reader = reader
        self.writer = writer
        self.origin = origin
        self.idle_since = 0.0

    def usable(self, now: float) -> bool:
        # at_eof: the server closed this idle connection (its FIN was already read by the loop).
        return not self.reader.at_eof() and not self.writer.is_closing() and now - self.idle_since < KEEPALIVE_EXPIRY_S

    def close(self) -> None:
        self.writer.close()


class GuardedHttpClient:
    """Pooled HTTP/1.1 client: SSRF check on every new connection, no redirects, no env proxies.

    `max_connections` bounds requests in flight (one per connection); idle
    keep-alive connections are kept up to the same number and reused per origin.
    """

    def __init__(
        self,
        policy: DestinationPolicy,
        *,
        resolver: Resolver = system_resolver,
        ssl_context: ssl.SSLContext | None = None,
        max_connections: int = 100,
    ) -> None:
        self._policy = policy
        self._resolver = resolver
        self._ssl_context = ssl_context
        self._slots = asyncio.Semaphore(max_connections) if max_connections > 0 else None
        self._max_idle = max(1, max_connections)
        self._idle: dict[tuple[str, str, int], collections.deque[_Connection]] = {}
        self._n_idle = 0
        self._closed = False

    async def __aenter__(self) -> GuardedHttpClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._closed = True
        for conns in self._idle.values():
            for c in conns:
                c.close()
        self._idle.clear()
        self._n_idle = 0

    async def post(self, url: str, **kw: Any) -> HttpResponse:
        return await self.request("POST", url, **kw)

    async def request(
        self,
        method: str,
        url: str,
        *,
        content: bytes = b"",
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
    ) -> HttpResponse:
        if self._closed:
            raise RuntimeError("client is closed")
        target = _parse_url(url)
        head = self._request_head(method.upper(), target, content, headers, auth)
        close_after = b"\r\nconnection: close\r\n" in head.lower()
        if self._slots is None:
            return await self._with_timeout(head, content, target, method, close_after, timeout)
        async with self._slots:
            return await self._with_timeout(head, content, target, method, close_after, timeout)

    async def _with_timeout(
        self, head: bytes, content: bytes, target: _Target, method: str, close_after: bool, timeout: float | None
    ) -> HttpResponse:
        if timeout is None:
            return await self._exchange(head, content, target, method, close_after)
        async with asyncio.timeout(timeout):
            return await self._exchange(head, content, target, method, close_after)

    def _request_head(
        self, method: str, t: _Target, content: bytes, headers: Mapping[str, str] | None, auth: tuple[str, str] | None
    ) -> bytes:
        if not method.isalpha():
            raise ValueError(f"invalid HTTP method {method!r}")
        lines = [f"{method} {t.path} HTTP/1.1\r\nHost: {t.host_header}\r\n"]
        seen = set()
        for k, v in (headers or {}).items():
            low = k.lower()
            if low in _OWNED_HEADERS:
                continue
            seen.add(low)
            lines.append(_header_line(k, str(v)))
        if "accept" not in seen:
            lines.append("Accept: */*\r\n")
        credentials = auth or t.userinfo
        if credentials is not None and "authorization" not in seen:
            token = base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode()
            lines.append(f"Authorization: Basic {token}\r\n")
        if content or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(content)}\r\n")
        lines.append("\r\n")
        return "".join(lines).encode("latin-1")

    # -- connections

    def _take_idle(self, origin: tuple[str, str, int]) -> _Connection | None:
        conns = self._idle.get(origin)
        now = time.monotonic()
        while conns:
            c = conns.pop()  # most recently used first: the likeliest to be alive
            self._n_idle -= 1
            if c.usable(now):
                return c
            c.close()
        return None

    def _put_idle(self, c: _Connection) -> None:
        if self._closed:
            c.close()
            return
        c.idle_since = time.monotonic()
        self._idle.setdefault(c.origin, collections.deque()).append(c)
        self._n_idle += 1
        if self._n_idle > self._max_idle:  # close the longest-idle connection of the biggest origin
            biggest = max(self._idle.values(), key=len)
            biggest.popleft().close()
            self._n_idle -= 1

    async def _connect(self, t: _Target) -> _Connection:
        addrs = await self._policy.resolve(t.host, t.port, self._resolver)  # refuses forbidden addresses
        tls = None
        if t.scheme == "https":
            tls = self._ssl_context or default_ssl_context()
        last: OSError | None = None
        for addr in addrs:
            try:
                reader, writer = await asyncio.open_connection(
                    addr, t.port, ssl=tls, server_hostname=t.host if tls else None, limit=MAX_HEAD_BYTES
                )
            except OSError as exc:
                last = exc
                continue
            return _Connection(reader, writer, t.origin)
        assert last is not None
        raise last

    # -- one exchange

    async def _exchange(self, head: bytes, content: bytes, t: _Target, method: str, close_after: bool) -> HttpResponse:
        conn = self._take_idle(t.origin)
        reused = conn is not None
        while True:
            if conn is None:
                conn = await self._connect(t)
            try:
                response, keep = await self._send_and_read(conn, head, content, method)
            except _StaleConnection:
                conn.close()
                conn = None
                if reused:
                    # A keep-alive connection the server closed (clean EOF, no byte of answer) as we
                    # sent: send once more on a fresh connection. A reset is not replayed here —
                    # the server may have read the request; the delivery's retry policy decides.
                    reused = False
                    continue
                raise HttpProtocolError("server closed the connection without answering") from None
            except BaseException:
                conn.close()  # mid-exchange (error, timeout, cancel): its state is unknown
                raise
            if keep and not close_after:
                self._put_idle(conn)
            else:
                conn.close()
            return response

    async def _send_and_read(self, conn: _Connection, head: bytes, content: bytes, method: str) -> tuple[HttpResponse, bool]:
        reader = conn.reader
        try:
            conn.writer.write(head + content if len(content) < 65536 else head)
            if len(content) >= 65536:
                conn.writer.write(content)
            await conn.writer.drain()
            raw = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:
                raise _StaleConnection() from None
            raise HttpProtocolError("truncated response head") from None
        except asyncio.LimitOverrunError:
            raise HttpProtocolError(f"response head larger than {MAX_HEAD_BYTES} bytes") from None
        try:
            status, reason, headers, http10 = _parse_head(raw)
            while 100 <= status < 200 and status != 101:  # interim (100 Continue, 103): the real one follows
                raw = await reader.readuntil(b"\r\n\r\n")
                status, reason, headers, http10 = _parse_head(raw)
            connection = headers.get("connection", "").lower()
            keep = not ("close" in connection or (http10 and "keep-alive" not in connection))
            if method == "HEAD" or status in _NO_BODY_STATUS or status == 101:
                body = b""
                keep = keep and status != 101
            elif "chunked" in headers.get("transfer-encoding", "").lower():
                body, complete = await _read_chunked(reader)
                keep = keep and complete
            elif "content-length" in headers:
                try:
                    length = int(headers["content-length"])
                except ValueError:
                    raise HttpProtocolError("bad Content-Length in response") from None
                if length < 0:
                    raise HttpProtocolError("bad Content-Length in response")
                body = await reader.readexactly(min(length, MAX_BODY_BYTES))
                keep = keep and length <= MAX_BODY_BYTES
            else:  # no length: the body runs to the end of the connection
                body = await _read_to_close(reader)
                keep = False
        except asyncio.IncompleteReadError:
            raise HttpProtocolError("server closed the connection mid-response") from None
        except asyncio.LimitOverrunError:
            raise HttpProtocolError("response line too long") from None
        return HttpResponse(status, headers, body, reason), keep


class _StaleConnection(Exception):
    """The server closed the connection cleanly before any byte of a response arrived."""


def _parse_head(raw: bytes) -> tuple[int, str, Headers, bool]:
    try:
        text = raw.decode("latin-1")
        status_line, *lines = text[:-4].split("\r\n")
        version, _, rest = status_line.partition(" ")
        code, _, reason = rest.partition(" ")
        if not version.startswith("HTTP/1.") or len(code) != 3:
            raise ValueError(status_line)
        status = int(code)
    except ValueError:
        raise HttpProtocolError("malformed response status line") from None
    headers = Headers()
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep:
            raise HttpProtocolError("malformed response header")
        key = name.strip().lower()
        value = value.strip()
        # Repeated headers are joined as RFC 9110 §5.3 allows (Set-Cookie is not one we read).
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return status, reason, headers, version == "HTTP/1.0"


async def _read_chunked(reader: asyncio.StreamReader) -> tuple[bytes, bool]:
    """The body of a chunked response (kept up to MAX_BODY_BYTES) and whether it was read to the end."""
    parts: list[bytes] = []
    kept = 0
    while True:
        line = await reader.readuntil(b"\r\n")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise HttpProtocolError("bad chunk size") from None
        if size < 0:
            raise HttpProtocolError("bad chunk size")
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, ignored
                pass
            return b"".join(parts), True
        if kept + size > MAX_BODY_BYTES:  # an endless stream: keep what fits, drop the connection
            parts.append(await reader.readexactly(MAX_BODY_BYTES - kept))
            return b"".join(parts), False
        parts.append((await reader.readexactly(size + 2))[:-2])
        kept += size


async def _read_to_close(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    kept = 0
    while kept < MAX_BODY_BYTES:
        chunk = await reader.read(min(65536, MAX_BODY_BYTES - kept))
        if not chunk:
            break
        parts.append(chunk)
        kept += len(chunk)
    return b"".join(parts)
