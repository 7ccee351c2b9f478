"""Lookup tables under `cep serve` (§9.2): a failing reload keeps the old rows and is
reported by /cep/health and /metrics; joined fields reach the output."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

RULES = """\
stream auth (ts: timestamp, user: str, event_type: str, host: str)
table hosts (host: str, region: str)
  key host
  from "hosts.csv"
rule failed "Failed login"
  from auth
  join hosts on host
  where event_type == "login_failed"
"""


def _wait(cond, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


@pytest.mark.timeout(180)
def test_table_reload_failure_is_reported_and_old_rows_stay(serve, tmp_path: Path) -> None:
    srv = tmp_path / "srv"
    srv.mkdir()
    table = srv / "hosts.csv"
    table.write_text("host,region\ndb-1,eu\n")
    data = tmp_path / "auth.jsonl"
    data.write_text("")
    out_dir = tmp_path / "out"
    s = serve(RULES, sources=(f"auth=jsonl:{data}?follow=true",), out_dir=str(out_dir))

    def write(i: int) -> None:
        with open(data, "a", encoding="utf-8") as f:
            f.write(json.dumps({"ts": f"2026-01-01T10:00:{i:02d}Z", "user": "u", "event_type": "login_failed", "host": "db-1"}) + "\n")

    write(1)
    out = out_dir / "failed.jsonl"
    _wait(lambda: out.exists() and len(out.read_text().splitlines()) == 1)
    table.write_text("host,region\ndb-1,us\ndb-1,ap\n")  # a repeated key: the reload fails
    os.utime(table, ns=(1, 10**18))
    with s.client() as c:
        tables = lambda: c.get("/cep/health").json()["components"].get("tables", {})  # noqa: E731
        _wait(lambda: tables().get("hosts", {}).get("reload_failures") == 1)
        health = tables()["hosts"]
        assert "appears more than once" in health["last_error"] and health["rows"] == 1
        metrics = c.get("/metrics").text
        assert 'cep_table_reloads_total{outcome="failure",table="hosts"} 1.0' in metrics
        assert 'cep_rule_silenced_total{rule="failed"} 0.0' in metrics
    write(2)
    _wait(lambda: len(out.read_text().splitlines()) == 2)
    regions = [json.loads(line)["hosts.region"] for line in out.read_text().splitlines()]
    assert regions == ["eu", "eu"]  # the old version stayed
