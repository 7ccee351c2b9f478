"""/cep/silences (LANGUAGE.md §9.4) on a real `cep serve`: create with a matcher and an
expiry, list (with the files' silences), expire; a run-time silence holds the matches the
engine emits from its creation to its expiry, which stay in the output but are not notified."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.api.conftest import RULES, Served

FILE_SILENCE = 'silence nightly "Backups"\n  match rule == "failed" and host starts_with "db-"\n  every "0 2 * * *" for 2h\n'


def _wait(cond, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


@pytest.mark.timeout(180)
def test_create_list_expire_and_apply(serve, tmp_path: Path) -> None:
    data = tmp_path / "auth.jsonl"
    data.write_text("")
    out_dir = tmp_path / "out"
    s: Served = serve(RULES + FILE_SILENCE, sources=(f"auth=jsonl:{data}?follow=true",), out_dir=str(out_dir))

    def write(host: str, i: int) -> None:
        with open(data, "a", encoding="utf-8") as f:
            f.write(json.dumps({"ts": f"2026-01-01T10:00:{i:02d}Z", "user": "u", "event_type": "login_failed", "host": host}) + "\n")

    with s.client() as c:
        listed = c.get("/cep/silences").json()
        assert [(x["id"], x["origin"]) for x in listed] == [("nightly", "file")]
        assert c.delete("/cep/silences/nightly").status_code == 409
        bad = c.post("/cep/silences", json={"match": 'hots == "web-1"', "duration": "1h"})
        assert bad.status_code == 422 and "no rule's match record has a field `hots`" in bad.text
        assert c.post("/cep/silences", json={"match": 'host == "web-1"'}).status_code == 422  # no expiry
        r = c.post(
            "/cep/silences",
            json={"matchers": [{"name": "host", "value": "web-1"}], "duration": "1h", "comment": "maintenance", "created_by": "ops"},
        )
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        assert r.json()["state"] == "active" and r.json()["match"] == '`host` == "web-1"'
        write("web-1", 1)
        write("web-2", 2)
        stats = lambda: s.ops.engine.stats()["rules"]["failed"]  # noqa: E731
        # The match count moves when the session emits; the run-time silence is counted just
        # after, on its way to the notifier: wait for both.
        _wait(lambda: stats()["matches"] >= 2 and stats()["silenced"] >= 1)
        assert stats()["silenced"] == 1
        assert c.delete(f"/cep/silences/{sid}").json()["state"] == "expired"
        assert c.get(f"/cep/silences/{sid}").json()["expired_at"] is not None
        assert c.get("/cep/silences/nope").status_code == 404
        write("web-1", 3)
        _wait(lambda: stats()["matches"] >= 3)
        assert stats()["silenced"] == 1  # expired: the later match is not silenced
        # The match count moves when the engine emits; the output file is written after it.
        out = out_dir / "failed.jsonl"
        _wait(lambda: out.exists() and out.read_text().count("\n") >= 3)
    records = [json.loads(line) for line in (out_dir / "failed.jsonl").read_text().splitlines()]
    assert [(r["host"], r.get("silenced")) for r in records] == [("web-1", sid), ("web-2", None), ("web-1", None)]
