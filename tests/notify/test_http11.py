"""runtime.notify.http11: the small HTTP/1.1 client, against real servers on 127.0.0.1.

A raw server answers with scripted bytes (chunked bodies, no length, HTTP/1.0,
interim 100, garbage, closes), so each test asserts what went over the wire
and what the client made of it. SSRF refusals are in test_ssrf.py (run for
both clients).
"""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
import struct
from collections.abc import Callable
from typing import Any

import pytest
from conftest import LOCAL
from test_email import make_cert

from runtime.notify import DestinationRefused
from runtime.notify.http11 import MAX_BODY_BYTES, GuardedHttpClient, HttpProtocolError, InvalidURL
from tests.support.services import require_binary

pytestmark = pytest.mark.timeout(30)

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class RawServer:
    """Reads one request at a time (head + Content-Length body); `answer(n, request)` gives the bytes
    to write back (None: close without answering). Records requests and connection count."""

    def __init__(self, answer: Callable[[int, bytes], bytes | None]) -> None:
        self.answer = answer
        self.requests: list[bytes] = []
        self.connections = 0
        self.max_open = 0
        self._open = 0

    async def __aenter__(self) -> RawServer:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._open += 1
        self.max_open = max(self.max_open, self._open)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                out = self.answer(len(self.requests), request)
                if isinstance(out, float):  # a delay, then OK
                    await asyncio.sleep(out)
                    out = OK
                if out is None:
                    return
                if isinstance(out, tuple):  # (bytes, "close" | "reset"): write, then end the connection
                    data, how = out
                    writer.write(data)
                    await writer.drain()
                    if how == "reset":
                        sock = writer.get_extra_info("socket")
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        writer.transport.abort()
                    return
                writer.write(out)
                await writer.drain()
        finally:
            self._open -= 1
            writer.close()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_post_goes_out_as_written_and_the_connection_is_kept_alive():
    async def go() -> tuple[list[Any], RawServer]:
        async with (
            RawServer(lambda n, r: b"HTTP/1.1 201 Created\r\nX-Seen: %d\r\nContent-Length: 5\r\n\r\nhello" % n) as srv,
            GuardedHttpClient(LOCAL) as client,
        ):
            out = []
            for i in range(3):
                r = await client.post(
                    srv.url + f"/hook/{i}?a=1&b=x%20y",
                    content=b'{"i":%d}' % i,
                    headers={"Content-Type": "application/json", "Idempotency-Key": f"k{i}"},
                )
                out.append((r.status_code, r.headers.get("X-SEEN"), r.text, r.reason_phrase))
            return out, srv

    out, srv = run(go())
    assert out == [(201, "1", "hello", "Created"), (201, "2", "hello", "Created"), (201, "3", "hello", "Created")]
    assert srv.connections == 1  # keep-alive: one connection for all three
    head, _, body = srv.requests[1].partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /hook/1?a=1&b=x%20y HTTP/1.1"
    assert f"Host: {srv.url.removeprefix('http://')}" in lines
    assert {"Content-Type: application/json", "Idempotency-Key: k1", "Content-Length: 7", "Accept: */*"} <= set(lines)
    assert body == b'{"i":1}'


@pytest.mark.parametrize(
    "raw, body, reused",
    [
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-T: 1\r\n\r\n",
            b"hello world",
            True,
        ),
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", b"abc", True),
        (b"HTTP/1.1 204 No Content\r\n\r\n", b"", True),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", b"ok", False),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", b"ok", False),
        (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", b"ok", True),
    ],
)
def test_response_framing(raw, body, reused):
    async def go() -> tuple[list[bytes], int]:
        async with RawServer(lambda n, r: raw) as srv, GuardedHttpClient(LOCAL) as client:
            got = [(await client.post(srv.url + "/x", content=b"{}")).content for _ in range(2)]
            return got, srv.connections

    got, connections = run(go())
    assert got == [body, body]
    assert connections == (1 if reused else 2)


def test_a_body_without_length_runs_to_the_close():
    async def go() -> tuple[bytes, bytes, int]:
        async with RawServer(lambda n, r: (b"HTTP/1.1 200 OK\r\n\r\nall of it", "close")) as srv, GuardedHttpClient(LOCAL) as client:
            first = (await client.post(srv.url + "/x", content=b"{}")).content
            second = (await client.post(srv.url + "/x", content=b"{}")).content
            return first, second, srv.connections

    assert run(go()) == (b"all of it", b"all of it", 2)  # such a connection is never reused


def test_redirects_are_returned_not_followed():
    async def go() -> tuple[int, str, int]:
        async with (
            RawServer(lambda n, r: b"HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/\r\nContent-Length: 0\r\n\r\n") as srv,
            GuardedHttpClient(LOCAL) as client,
        ):
            r = await client.post(srv.url + "/x", content=b"{}")
            return r.status_code, r.headers["location"], len(srv.requests)

    assert run(go()) == (302, "http://169.254.169.254/", 1)


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"HTTP/1.1 2OO OK\r\nContent-Length: 0\r\n\r\n", "status line"),
        (b"SMTP 220 hello\r\n\r\n", "status line"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "header"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "mid-response"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "Content-Length"),
        (b"HTTP/1.1 200", "truncated"),
    ],
)
def test_a_broken_response_is_a_retryable_protocol_error(raw, message):
    async def go() -> None:
        async with RawServer(lambda n, r: (raw, "close")) as srv, GuardedHttpClient(LOCAL) as client:
            await client.post(srv.url + "/x", content=b"{}")

    with pytest.raises(HttpProtocolError, match=message) as info:
        run(go())
    assert isinstance(info.value, OSError)  # classify_exception: retryable


def test_a_huge_body_is_cut_and_the_connection_dropped():
    big = b"x" * (MAX_BODY_BYTES + 10)

    async def go() -> tuple[int, int]:
        async with (
            RawServer(lambda n, r: b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(big) + big) as srv,
            GuardedHttpClient(LOCAL) as client,
        ):
            first = await client.post(srv.url + "/x", content=b"{}")
            await client.post(srv.url + "/x", content=b"{}")
            return len(first.content), srv.connections

    assert run(go()) == (MAX_BODY_BYTES, 2)


def test_stale_keepalive_is_retried_once_on_a_fresh_connection():
    # The first connection answers once and then closes cleanly when the next request arrives
    # (FIN, no byte of answer): the client must resend once on a new connection.
    state = {"conn_requests": 0}

    async def go() -> tuple[int, int, int]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            state.setdefault("connections", 0)
            state["connections"] += 1
            first_conn = state["connections"] == 1
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                await reader.readexactly(int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0]))
                state["conn_requests"] += 1
                if first_conn and state["conn_requests"] == 2:
                    break  # close without answering: the stale keep-alive case
                writer.write(OK)
                await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/x"
        async with GuardedHttpClient(LOCAL) as client:
            a = await client.post(url, content=b"1")
            b = await client.post(url, content=b"2")
        server.close()
        return a.status_code + b.status_code, state["connections"], state["conn_requests"]

    assert run(go()) == (400, 2, 3)


def test_a_connection_closed_without_an_answer_is_resent_once_then_fails():
    async def go() -> int:
        async with RawServer(lambda n, r: OK if n == 1 else None) as srv, GuardedHttpClient(LOCAL) as client:
            await client.post(srv.url + "/x", content=b"1")
            with pytest.raises(HttpProtocolError, match="without answering"):
                await client.post(srv.url + "/x", content=b"2")
            return len(srv.requests)

    assert run(go()) == 3  # request 2 on the kept-alive connection, once more on a fresh one, no more


def test_a_reset_is_not_replayed_by_the_client():
    """The server may have acted on a request it then reset: resending is the delivery's retry
    policy's call (with backoff, counted), not the transport's."""

    async def go() -> int:
        async with RawServer(lambda n, r: OK if n == 1 else (b"", "reset")) as srv, GuardedHttpClient(LOCAL) as client:
            await client.post(srv.url + "/x", content=b"1")
            with pytest.raises(ConnectionResetError):
                await client.post(srv.url + "/x", content=b"2")
            return len(srv.requests)

    assert run(go()) == 2


def test_timeout_drops_the_connection():
    async def go() -> tuple[int, int]:
        async with RawServer(lambda n, r: 1.0 if n == 1 else OK) as srv, GuardedHttpClient(LOCAL) as client:
            with pytest.raises(TimeoutError):
                await client.post(srv.url + "/slow", content=b"{}", timeout=0.1)
            ok = await client.post(srv.url + "/x", content=b"{}", timeout=5)
            return ok.status_code, srv.connections

    assert run(go()) == (200, 2)  # the timed-out connection is not reused


def test_in_flight_requests_are_bounded_by_max_connections():
    async def go() -> tuple[int, int]:
        async with RawServer(lambda n, r: 0.05) as srv, GuardedHttpClient(LOCAL, max_connections=4) as client:
            codes = await asyncio.gather(*[client.post(srv.url + "/x", content=b"{}") for _ in range(20)])
            assert {c.status_code for c in codes} == {200}
            return srv.max_open, srv.connections

    max_open, connections = run(go())
    assert max_open <= 4 and connections <= 4


@pytest.mark.parametrize(
    "url, error",
    [
        ("ftp://127.0.0.1/x", DestinationRefused),
        ("http:///x", InvalidURL),
        ("http://127.0.0.1:99999/x", InvalidURL),
        ("http://127.0.0.1:8080\r\nX-Injected: 1/x", (InvalidURL, DestinationRefused)),
    ],
)
def test_bad_urls_are_refused_before_any_connection(url, error):
    async def go() -> None:
        async with GuardedHttpClient(LOCAL) as client:
            await client.post(url, content=b"{}")

    with pytest.raises(error):
        run(go())


def test_header_injection_is_refused_and_owned_headers_cannot_be_overridden():
    async def go() -> tuple[bytes, str]:
        async with RawServer(lambda n, r: OK) as srv, GuardedHttpClient(LOCAL) as client:
            with pytest.raises(ValueError, match="X-Evil"):
                await client.post(srv.url + "/x", content=b"{}", headers={"X-Evil": "a\r\nX-Injected: 1"})
            await client.post(
                srv.url + "/x", content=b"abc", headers={"Content-Length": "0", "Host": "evil.test", "Transfer-Encoding": "chunked"}
            )
            return srv.requests[0], srv.url

    request, url = run(go())
    head = request.decode().split("\r\n")
    assert "Content-Length: 3" in head and f"Host: {url.removeprefix('http://')}" in head
    assert not any(h.lower().startswith(("transfer-encoding", "x-injected")) or h == "Host: evil.test" for h in head)


def test_userinfo_and_auth_become_basic_authorization():
    async def go() -> list[bytes]:
        async with RawServer(lambda n, r: OK) as srv, GuardedHttpClient(LOCAL) as client:
            port = srv.url.rsplit(":", 1)[1]
            await client.post(f"http://us%40er:p%3Ass@127.0.0.1:{port}/a", content=b"")
            await client.post(srv.url + "/b", content=b"", auth=("sid", "tok"))
            return srv.requests

    first, second = run(go())
    assert b"Authorization: Basic " + base64.b64encode(b"us@er:p:ss") in first
    assert b"Authorization: Basic " + base64.b64encode(b"sid:tok") in second


def test_https_with_a_verified_certificate(tmp_path):
    pair = make_cert(tmp_path)
    if pair is None:
        require_binary("openssl")
        pytest.skip("openssl could not make a certificate")
    cert, key = pair
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)

    async def go() -> tuple[int, bytes]:
        seen: list[bytes] = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = await reader.readuntil(b"\r\n\r\n")
            seen.append(head + await reader.readexactly(2))
            writer.write(OK)
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_tls)
        port = server.sockets[0].getsockname()[1]
        trusted = ssl.create_default_context(cafile=str(cert))
        async with GuardedHttpClient(LOCAL, ssl_context=trusted) as client:
            r = await client.post(f"https://127.0.0.1:{port}/tls", content=b"{}")
        async with GuardedHttpClient(LOCAL) as client:  # the default context does not trust it
            with pytest.raises(ssl.SSLCertVerificationError):
                await client.post(f"https://127.0.0.1:{port}/tls", content=b"{}")
        server.close()
        return r.status_code, seen[0]

    status, request = run(go())
    assert status == 200 and request.startswith(b"POST /tls HTTP/1.1\r\n") and request.endswith(b"{}")
