"""A real HTTP/1.1 server on 127.0.0.1 standing in for Slack, PagerDuty, Twilio and webhooks.

Answers are scripted per path prefix (FIFO, then the default 200): any status
with headers (e.g. 429 + Retry-After), a delay (slow server) or a connection
reset. Every request is recorded with its arrival time, headers and body, so
tests assert on what the receiver actually got. Runs its own asyncio loop in
a thread; `python receiver.py PORT` serves until killed (used by the crash
test and the bench, from another process).
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import sys
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

REASONS = {
    200: "OK",
    202: "Accepted",
    204: "No Content",
    302: "Found",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    408: "Request Timeout",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


@dataclass(frozen=True)
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b'{"ok":true}'
    delay: float = 0.0
    reset: bool = False  # close the connection with RST instead of answering


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    def __init__(self, port: int = 0, *, dedup_header: str | None = None) -> None:
        self.port = port
        self.requests: list[Request] = []
        self._scripts: dict[str, deque[Answer]] = defaultdict(deque)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._ready = threading.Event()

    # -- control

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def script(self, path: str, *answers: Answer) -> None:
        with self._lock:
            self._scripts[path].extend(answers)

    def received(self, path: str | None = None) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if path is None or r.path.startswith(path)]

    def wait_for(self, n: int, path: str | None = None, timeout: float = 10.0) -> list[Request]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.received(path)
            if len(got) >= n:
                return got
            time.sleep(0.01)
        return self.received(path)

    def start(self) -> Receiver:
        self._thread = threading.Thread(target=self._run, daemon=True, name="receiver")
        self._thread.start()
        self._ready.wait(5)
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- server

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._server = loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", self.port, backlog=512, reuse_address=True)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            self._server.close()
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()

    def _answer_for(self, path: str) -> Answer:
        with self._lock:
            best = max((p for p, q in self._scripts.items() if q and path.startswith(p)), key=len, default=None)
            return self._scripts[best].popleft() if best is not None else Answer()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers: dict[str, str] = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                try:
                    body = await reader.readexactly(int(headers.get("content-length", "0")))
                except (asyncio.IncompleteReadError, ConnectionError):
                    return  # the client went away mid-request (e.g. a notifier stopped without draining)
                req = Request(method, target, headers, body, time.monotonic())
                with self._lock:
                    self.requests.append(req)
                answer = self._answer_for(target)
                if answer.delay:
                    await asyncio.sleep(answer.delay)
                if answer.reset:
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    writer.transport.abort()
                    return
                extra = "".join(f"{k}: {v}\r\n" for k, v in answer.headers.items())
                writer.write(
                    f"HTTP/1.1 {answer.status} {REASONS.get(answer.status, 'Status')}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(answer.body)}\r\n{extra}\r\n".encode()
                    + answer.body
                )
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    break
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


def serve_forever(port: int, log_path: str) -> None:
    """Serve on `port`, appending one JSON line per request to `log_path` (`-`: count only, for the bench)."""
    rx = Receiver(port)
    if log_path == "-":
        rx.start()
        print(rx.port, flush=True)
        while True:
            time.sleep(3600)
    out = open(log_path, "a", encoding="utf-8")
    original = rx._answer_for

    def logging_answer(path: str) -> Answer:
        req = rx.requests[-1]
        out.write(json.dumps({"path": req.path, "headers": req.headers, "body": req.body.decode()}) + "\n")
        out.flush()
        return original(path)

    rx._answer_for = logging_answer  # type: ignore[method-assign]
    rx.start()
    print(rx.port, flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    serve_forever(int(sys.argv[1]), sys.argv[2])
