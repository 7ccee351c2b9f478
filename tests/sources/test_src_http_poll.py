"""HTTP metric polling against a real server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from runtime.sources import ManualClock, open_source
from runtime.sources.http_poll import HttpPollSource, pick

from src_helpers import plan

pytestmark = pytest.mark.timeout(30)
S = plan("m", ts="timestamp", **{"data.avg": "float", "host": "str", "n": "int"})


class Server:
    def __init__(self) -> None:
        self.responses: list[tuple[int, str]] = []
        self.paths: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                outer.paths.append(self.path)
                status, body = outer.responses.pop(0) if outer.responses else (200, "{}")
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def test_pick_paths() -> None:
    body = {"data": {"avg": 3, "items": [{"v": 1}, {"v": 2}]}, "a.b": 5}
    assert pick(body, "data.avg") == 3
    assert pick(body, "data.items.1.v") == 2
    assert pick(body, "data.items.-1.v") == 2
    assert pick(body, "a.b") == 5
    assert pick(body, "data.nope") is None and pick(body, "data.items.9") is None and pick(body, "data.avg.x") is None


def test_polls_become_events_stamped_with_poll_time(server: Server) -> None:
    server.responses = [
        (200, json.dumps({"data": {"avg": 1.5}, "host": "web1", "n": 3})),
        (200, json.dumps({"data": {"avg": 2}, "host": "web1"})),
    ]
    clock = ManualClock(start=1_714_557_600.0)
    src = HttpPollSource(S, server.url + "/metrics", interval_s=5.0, max_rows=1, max_delay_s=1.0, clock=clock)
    it = iter(src)
    b1 = next(it)
    assert b1.frame.rows() == [(datetime(2024, 5, 1, 10), 1.5, "web1", 3)]
    ticks = 0
    while (b := next(it)).empty:
        ticks += 1
    assert ticks >= 3  # idle ticks while waiting for the next poll slot
    assert b.frame.rows() == [(datetime(2024, 5, 1, 10, 0, 5), 2.0, "web1", None)]
    assert src.polls == 2 and src.errors == 0
    src.close()


def test_errors_are_counted_and_dead_lettered_never_raised(server: Server) -> None:
    server.responses = [(500, "oops"), (200, "not json"), (200, json.dumps({"data": {"avg": "hot"}}))]
    src = HttpPollSource(S, server.url, interval_s=1.0, max_rows=1, max_delay_s=0.5, clock=ManualClock())
    got = []
    for b in src:
        got += b.dead.rows()
        if len(got) == 3:
            break
    assert src.errors == 2
    assert "500" in got[0][1] and got[0][2] == "oops"
    assert got[1][1].startswith(f"poll {server.url} failed")
    assert got[2][1] == "field 'data.avg': expected float, got str \"hot\""
    src.close()


def test_unreachable_endpoint_and_timeout() -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    src = HttpPollSource(S, f"http://127.0.0.1:{port}/", interval_s=1.0, timeout_s=0.5, max_rows=1, clock=ManualClock())
    b = next(iter(src))
    assert src.errors == 1 and "ConnectError" in b.dead["reason"][0]


def test_spec_mapping_interval_and_passthrough_query(server: Server) -> None:
    server.responses = [(200, json.dumps({"stats": {"mean": 4.5}, "host": "h"}))]
    clock = ManualClock()
    src = open_source(f"{server.url}/m?interval=2s&map.data.avg=stats.mean&region=eu", S, clock=clock, max_rows=1)
    assert isinstance(src, HttpPollSource) and src.interval_s == 2.0
    b = next(iter(src))
    assert b.frame["data.avg"].to_list() == [4.5]
    assert server.paths == ["/m?region=eu"]
    src.close()
