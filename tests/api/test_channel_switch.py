"""Channels switched off and on over HTTP: a real webhook receiver on 127.0.0.1 stops and
starts getting alerts, the alerts in between are recorded as `skipped` (not lost, not sent
later), the switch survives a restart, and every catalogue store keeps it apart from the
rules' switches."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from runtime.catalogue import open_catalogue
from tests.api.conftest import HEADERS, Served


class Hook:
    """A webhook receiver on 127.0.0.1 keeping every body it is sent (as text)."""

    def __init__(self) -> None:
        self.bodies: list[str] = []
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("content-length", 0))).decode("utf-8", "replace")
                with owner.lock:
                    owner.bodies.append(body)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def saw(self, word: str) -> bool:
        with self.lock:
            return any(word in b for b in self.bodies)

    def close(self) -> None:
        self.server.shutdown()
        self.thread.join(5)


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    yield h
    h.close()


def rules(url: str) -> str:
    return f'''\
stream auth (ts: timestamp, user: str, event_type: str, host: str)

channel hook = webhook(url = "{url}", retries = 0)

rule failed "Failed login"
  from auth
  where event_type == "login_failed"
  severity high
  notify hook
  message "failed login for {{{{ user }}}}"
'''


def client(s: Served) -> httpx.Client:
    # The first batch compiles the rule's kernels: slow on a loaded machine.
    return httpx.Client(base_url=s.url, timeout=180, headers=HEADERS)


def failed_login(c, user: str, second: int) -> None:  # noqa: ANN001
    line = json.dumps({"ts": f"2026-01-01T00:00:{second:02d}Z", "user": user, "event_type": "login_failed", "host": "h"})
    r = c.post("/cep/streams/auth/events", content=line + "\n", headers={"content-type": "application/x-ndjson"})
    assert r.status_code == 200 and r.json()["matches"] == 1, r.text


def wait(pred, timeout: float = 20.0, what: str = "condition"):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def delivery_of(c, user: str) -> dict | None:  # noqa: ANN001
    for a in c.get("/cep/events", params={"rule": "failed", "limit": 50}).json()["items"]:
        if a["record"].get("user") == user:
            d = c.get(f"/cep/events/{a['id']}").json()["deliveries"]
            return next((x for x in d if x["channel"] == "hook"), None)
    return None


@pytest.mark.timeout(240)
def test_a_disabled_channel_skips_its_alerts_and_an_enabled_one_sends_again(serve, hook) -> None:  # noqa: ANN001
    s: Served = serve(rules(hook.url), allow_hosts=("127.0.0.1",))
    with client(s) as c:
        assert c.get("/cep/channels/hook").json()["enabled"] is True
        failed_login(c, "alice", 1)
        wait(lambda: hook.saw("alice"), what="alice's alert at the webhook")

        off = c.patch("/cep/channels/hook/toggle", json={"enabled": False})
        assert off.status_code == 200 and off.json() == {"name": "hook", "enabled": False}
        assert c.get("/cep/channels/hook").json()["enabled"] is False
        assert [ch["enabled"] for ch in c.get("/cep/channels").json() if ch["name"] == "hook"] == [False]
        failed_login(c, "bob", 2)
        got = wait(lambda: (d := delivery_of(c, "bob")) and d["status"] == "skipped" and d, what="bob's delivery skipped")
        assert "disabled" in got["last_error"]
        assert not hook.saw("bob")
        assert 'cep_deliveries_total{outcome="skipped"} 1.0' in c.get("/metrics").text

        # Unknown channels, bad names and a missing header are refused as for rules.
        assert c.patch("/cep/channels/nope/toggle", json={"enabled": False}).status_code == 404
        assert c.patch("/cep/channels/bad!name/toggle", json={"enabled": False}).status_code == 422
        assert c.patch("/cep/channels/hook/toggle", json={"enabled": False}, headers={"X-CEP-Request": ""}).status_code == 403
    assert s.shutdown() == 0

    # A restart keeps the switch; an empty body flips it back on, and bob's alert stays skipped.
    s2: Served = serve(rules(hook.url), allow_hosts=("127.0.0.1",))
    with client(s2) as c:
        assert c.get("/cep/channels/hook").json()["enabled"] is False
        failed_login(c, "carol", 3)
        wait(lambda: (d := delivery_of(c, "carol")) and d["status"] == "skipped", what="carol's delivery skipped")
        on = c.patch("/cep/channels/hook/toggle")
        assert on.status_code == 200 and on.json()["enabled"] is True
        failed_login(c, "dave", 4)
        wait(lambda: hook.saw("dave"), what="dave's alert at the webhook")
        assert delivery_of(c, "bob")["status"] == "skipped"
        time.sleep(0.5)
        assert not hook.saw("bob") and not hook.saw("carol")
    assert s2.shutdown() == 0


@pytest.fixture(params=["sqlite", "postgresql", "redis"])
def catalogue(request, tmp_path) -> Iterator:  # noqa: ANN001
    if request.param == "sqlite":
        cat = open_catalogue(f"sqlite:{tmp_path / 'cat.sqlite'}")
    elif request.param == "postgresql":
        cat = open_catalogue(request.getfixturevalue("postgres_url"))
        cat.db.execute("DELETE FROM cep_toggles")
    else:
        client = request.getfixturevalue("redis_client")
        cat = open_catalogue(request.getfixturevalue("redis_server").url + "?prefix=sw:")
        client.flushdb()
    yield cat
    cat.close()


def test_channel_switches_are_kept_apart_from_rule_switches(catalogue) -> None:  # noqa: ANN001
    before = catalogue.stamp()
    catalogue.set_enabled("r1", False, 1.0)
    catalogue.set_channel_enabled("hook", False, 2.0)
    catalogue.set_channel_enabled("mail", False, 3.0)
    catalogue.set_channel_enabled("mail", True, 4.0)
    assert catalogue.toggles() == {"r1": False}
    assert catalogue.channel_toggles() == {"hook": False, "mail": True}
    assert catalogue.stamp() != before  # other processes sharing the catalogue see the change
