"""`cep serve` as a user runs it: a subprocess that prints its address, answers health (503 with
the reasons when degraded: a followed file that does not exist, a refused reload), /metrics,
/cep/stats without sentinels, and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import RULES


@pytest.mark.timeout(240)
def test_serve_prints_its_address_and_reports_health(tmp_path: Path) -> None:
    rules = tmp_path / "ops.cep"
    rules.write_text(RULES)
    missing = tmp_path / "not-there.jsonl"
    env = {**os.environ, "CEP_LOG": "WARNING"}
    env.pop("CEP_API_TOKEN", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "runtime.cli",
            "serve",
            str(rules),
            "--listen",
            "127.0.0.1:0",
            "--source",
            f"auth=jsonl:{missing}?follow=true",
            "--state",
            f"sqlite:{tmp_path / 'st.sqlite'}",
            "--outbox",
            str(tmp_path / "ob.sqlite"),
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith(f"cep: serving {rules} on http://127.0.0.1:"), line
        url = line.split(" on ", 1)[1].split()[0]
        with httpx.Client(base_url=url, timeout=30, headers={"X-CEP-Request": "1"}) as c:
            h = c.get("/cep/health")
            assert h.status_code == 503
            body = h.json()
            assert body["status"] == "degraded"
            assert any("not-there.jsonl: no such file" in r for r in body["reasons"])
            assert body["last_reload"]["ok"] is True and body["last_reload"]["origin"] == "start"
            srcs = c.get("/cep/health/sources").json()
            assert srcs[0]["ok"] is False and "no such file" in srcs[0]["error"]
            assert c.get("/cep/health/live").status_code == 200
            assert c.get("/cep/health/ready").status_code == 503
            assert c.get("/cep/health/redis").json() == {
                "configured": False,
                "status": "not-configured",
                "latency_ms": None,
                "degraded_since": None,
                "last_error": None,
            }
            # The file appears: healthy again.
            missing.write_text('{"ts": "2026-01-01T00:00:00Z", "user": "u", "event_type": "login_failed", "host": "h"}\n')
            deadline = time.monotonic() + 20
            while c.get("/cep/health").status_code != 200 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert c.get("/cep/health").status_code == 200
            while c.get("/cep/stats/summary").json()["events_today"] < 1 and time.monotonic() < deadline:
                time.sleep(0.2)
            # A rule file that does not check: the running rules stay, health says so with the diagnostics.
            rules.write_text(RULES.replace('event_type == "login_failed"', "event_typo == 1"))
            deadline = time.monotonic() + 20
            while c.get("/cep/health").status_code != 503 and time.monotonic() < deadline:
                time.sleep(0.2)
            body = c.get("/cep/health").json()
            assert body["last_reload"]["ok"] is False and body["last_reload"]["origin"] == "file"
            assert body["last_reload"]["diagnostics"][0]["code"] == "unknown-field"
            assert [r["id"] for r in c.get("/cep/rules").json()] == ["failed"]
            stats = c.get("/cep/stats").json()
            text = repr(stats)
            assert "-4611686018427387904" not in text and "watermark_us" not in text
            assert stats["streams"]["auth"]["max_event_time"] == "2026-01-01T00:00:00.000000Z"
            metrics = c.get("/metrics").text
            assert "cep_events_in_total 1.0" in metrics
            assert 'cep_rule_matches_total{rule="failed"} 1.0' in metrics
            assert 'cep_reloads_total{outcome="failure"} 1.0' in metrics
            assert "cep_rule_eval_seconds_bucket" in metrics
            summary = c.get("/cep/stats/summary").json()
            assert summary["events_today"] == 1 and summary["matches_today"] == 1 and summary["active_rules"] == 1
            perf = c.get("/cep/rules/performance").json()
            assert perf[0]["id"] == "failed" and perf[0]["matches"] == 1 and perf[0]["last_execution"] is not None
            recent = c.get("/cep/streams/auth/recent", params={"n": 5}).json()
            assert recent == {
                "stream": "auth",
                "events": [{"ts": "2026-01-01T00:00:00Z", "user": "u", "event_type": "login_failed", "host": "h"}],
            }
            streams = c.get("/cep/streams").json()
            assert streams[0]["name"] == "auth" and streams[0]["events_in"] == 1
            assert streams[0]["watermark"].endswith("Z")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in err


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "args, message",
    [
        (["--source", "auth=jsonl:x.jsonl?follw=false"], "error: jsonl:x.jsonl?follw=false: unknown option(s) follw"),
        (["--listen", "127.0.0.1:abc"], "error: --listen 127.0.0.1:abc: the port must be a number"),
        (["--catalogue", "mysql://x"], "error: cannot open the catalogue or history store: unknown catalogue store"),
        (["--source", "nostream=jsonl:x.jsonl"], "error: --source nostream=jsonl:x.jsonl: the file declares no stream `nostream`"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "ops.cep").write_text(RULES)
    env = {**os.environ, "CEP_LOG": "WARNING"}
    env.pop("CEP_API_TOKEN", None)
    p = subprocess.run(
        [sys.executable, "-m", "runtime.cli", "serve", "ops.cep", "--listen", "127.0.0.1:0", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=100,
        env=env,
    )
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(message), p.stderr
