"""Try before it fires: simulate (no state change), POST /cep/simulate for unsaved text,
dry-run (rendered, nothing sent), trigger (through the outbox, marked as a test)."""

from __future__ import annotations

import json

import pytest

from tests.api.conftest import Served

RULES = """\
stream auth (ts: timestamp, user: str, event_type: str, host: str)

channel out = file(path = "{out}")

rule failed "Failed login"
  from auth
  where event_type == "login_failed"
  severity high
  notify out
  message "{{{{ user }}}} failed"

rule burst "Burst"
  from auth
  where event_type == "login_failed"
  group by user
  window tumbling 1m
  having count() >= 3
"""

EVENTS = [{"ts": f"2026-01-01T00:00:{i:02d}Z", "user": "bob", "event_type": "login_failed", "host": "h"} for i in range(4)]


@pytest.mark.timeout(180)
def test_simulate_dry_run_trigger(serve, tmp_path) -> None:  # noqa: ANN001
    out = tmp_path / "alerts.log"
    s: Served = serve(RULES.format(out=out))
    with s.client() as c:
        r = c.post("/cep/rules/burst/simulate", json=EVENTS).json()
        assert r["ok"] is True and len(r["matches"]["burst"]) == 1
        assert r["matches"]["burst"][0]["count"] == 4 and r["matches"]["burst"][0]["user"] == "bob"
        nd = "\n".join(json.dumps(e) for e in EVENTS) + "\n{broken\n"
        r2 = c.post("/cep/rules/failed/simulate", content=nd, headers={"content-type": "application/x-ndjson"}).json()
        assert len(r2["matches"]["failed"]) == 4 and len(r2["dead_letters"]) == 1
        # Nothing reached the running engine or the history.
        assert c.get("/cep/events").json()["items"] == []
        assert c.get("/cep/rules/burst/metrics").json()["events_in"] == 0

        unsaved = c.post("/cep/simulate", json={"text": 'rule bobs from auth where user == "bob"\n', "events": EVENTS}).json()
        assert unsaved["ok"] is True and unsaved["rules"] == ["bobs"] and len(unsaved["matches"]["bobs"]) == 4
        broken = c.post("/cep/simulate", json={"text": "rule x from auth where nope > 1\n", "events": []}).json()
        assert broken["ok"] is False and broken["diagnostics"][0]["code"] == "unknown-field"

        dry = c.post("/cep/rules/failed/dry-run", json={"record": {"user": "carol"}}).json()
        assert dry["messages"] == [
            {
                "channel": "out",
                "kind": "file",
                "subject": dry["messages"][0]["subject"],
                "text": "carol failed",
                "template_error": None,
            }
        ]
        assert not out.exists()  # nothing sent

        trig = c.post("/cep/rules/failed/trigger", json={"record": {"user": "dave"}}).json()
        assert trig["enqueued"] == 1 and trig["channels"] == ["out"] and trig["test"] is True
        events = c.get("/cep/events").json()["items"]
        assert len(events) == 1 and events[0]["test"] is True and events[0]["record"]["user"] == "dave"
        import time

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (out.exists() and "dave failed" in out.read_text()):
            time.sleep(0.1)
        assert "dave failed" in out.read_text()
        assert c.post("/cep/rules/nope/simulate", json=[]).status_code == 404
