"""The `cep` command as a user runs it: real subprocesses, real files, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import polars as pl
import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def cep(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runtime.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


# ----------------------------------------------------------------------------- check


def test_check_clean_file_exits_zero() -> None:
    r = cep("check", "examples/ops.cep")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""


def test_check_reports_every_error_with_position_caret_and_hint(tmp_path: Path) -> None:
    bad = tmp_path / "bad.cep"
    bad.write_text("stream m (ts: timestamp, cpu: float)\nrule a from m where cpuu > 1\nrule b from m where cpu > 1 severity urgent\n")
    r = cep("check", str(bad))
    assert r.returncode == 1
    lines = r.stderr.splitlines()
    assert lines[0] == f"{bad}:2:21: error: unknown field `cpuu` in stream `m`"
    assert lines[1] == "rule a from m where cpuu > 1"
    assert lines[2] == " " * 20 + "^^^^"
    assert lines[3] == "hint: did you mean `cpu`?"
    assert lines[4].startswith(f"{bad}:3:38: error: unknown severity `urgent`")
    assert sum(1 for ln in lines if ": error: " in ln) == 2


def test_check_several_files_and_missing_file(tmp_path: Path) -> None:
    r = cep("check", "examples/ops.cep", str(tmp_path / "nope.cep"))
    assert r.returncode == 2
    assert "no such file" in r.stderr


#: LANGUAGE.md §1's example, kept in the repository: a clean clone need not sit beside the spec.
SECTION1 = Path(__file__).parent / "data" / "language_section1.cep"


def test_language_reference_example_checks_clean(tmp_path: Path) -> None:
    # The reference lives in the repository (docs/language.md): the kept copy must still be its §1 example.
    lang = (ROOT / "docs" / "language.md").read_text()
    assert lang[lang.index("## 1.") :].split("```")[1] == SECTION1.read_text()
    f = tmp_path / "ops.cep"
    f.write_text(SECTION1.read_text())
    r = cep("check", str(f))
    assert r.returncode == 0, r.stderr


# ----------------------------------------------------------------------------- fmt / explain


def test_fmt_is_idempotent_and_keeps_comments(tmp_path: Path) -> None:
    f = tmp_path / "x.cep"
    f.write_text("# header\nstream s(ts:timestamp,x:int)   rule r from s where (x>1)   # why\n  severity high\n")
    once = cep("fmt", str(f))
    assert once.returncode == 0, once.stderr
    assert "# header" in once.stdout and "# why" in once.stdout
    f.write_text(once.stdout)
    twice = cep("fmt", str(f))
    assert twice.stdout == once.stdout
    assert cep("fmt", "--check", str(f)).returncode == 0


def test_explain_shows_plan_and_hides_secrets(tmp_path: Path) -> None:
    f = tmp_path / "x.cep"
    f.write_text(
        'stream s (ts: timestamp, host: str, cpu: float)\n'
        'channel pd = pagerduty(routing_key = env("PD_KEY"))\n'
        'channel hook = webhook(url = "https://hooks.example.com/very-secret-token")\n'
        "rule hot from s group by host window tumbling 1m having avg(cpu) > 80 notify pd, hook\n"
    )
    r = cep("explain", str(f), env={"PD_KEY": "live-secret-value"})
    assert r.returncode == 0, r.stderr
    assert "hot" in r.stdout and "avg_cpu" in r.stdout and "host" in r.stdout
    assert "live-secret-value" not in r.stdout
    assert "very-secret-token" not in r.stdout


# ----------------------------------------------------------------------------- replay


def test_replay_writes_a_file_per_rule_and_a_summary(tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = cep(
        "replay",
        "examples/ops.cep",
        "--data",
        "metrics=examples/data/metrics.parquet",
        "--data",
        "auth=examples/data/auth.parquet",
        "--out",
        str(out),
        "--no-progress",
    )
    assert r.returncode == 0, r.stderr
    for rule in ("high_cpu", "hot_host", "brute_force", "heartbeat_lost", "cpu_anomaly", "morning_errors"):
        assert (out / f"{rule}.parquet").exists()
        assert rule in r.stdout
    assert (out / "_dead_letter.parquet").exists()
    brute = pl.read_parquet(out / "brute_force.parquet")
    assert brute["user"].to_list() == ["mallory"]
    assert brute["fail_count"].to_list() == [4]


def test_replay_empty_output_has_the_right_columns(tmp_path: Path) -> None:
    rules = tmp_path / "r.cep"
    rules.write_text("stream s (ts: timestamp, x: int)\nrule never from s where x > 1000 severity low\n")
    data = tmp_path / "d"
    data.mkdir()
    pl.DataFrame(
        {"ts": [datetime(2026, 1, 1) + timedelta(seconds=i) for i in range(5)], "x": list(range(5)), "extra": ["e"] * 5}
    ).write_parquet(data / "part-0.parquet")
    r = cep("replay", str(rules), "--data", str(data / "*.parquet"), "--out", str(tmp_path / "out"), "--no-progress")
    assert r.returncode == 0, r.stderr
    out = pl.read_parquet(tmp_path / "out" / "never.parquet")
    assert out.height == 0
    assert out.columns == ["rule", "ts", "severity", "x"]


def test_replay_missing_declared_field_names_field_and_file(tmp_path: Path) -> None:
    rules = tmp_path / "r.cep"
    rules.write_text("stream s (ts: timestamp, x: int, y: float)\nrule r from s where x > 1\n")
    f = tmp_path / "d.parquet"
    pl.DataFrame({"ts": [datetime(2026, 1, 1)], "x": [1]}).write_parquet(f)
    r = cep("replay", str(rules), "--data", str(f), "--out", str(tmp_path / "out"), "--no-progress")
    assert r.returncode == 1
    assert "`y`" in r.stderr or "'y'" in r.stderr
    assert "d.parquet" in r.stderr
    assert "Traceback" not in r.stderr


# ----------------------------------------------------------------------------- import


def test_import_seed_json_gives_a_file_that_checks(tmp_path: Path) -> None:
    seed = {
        "rule_id": "rule-123",
        "rule_name": "CPU Alert",
        "trigger_type": "metric",
        "trigger_spec": {
            "conditions": [{"field": "cpu", "op": ">", "value": 80}, {"field": "memory", "op": ">", "value": 70}],
            "logic": "AND",
        },
        "action_spec": {"endpoint": "https://webhook.example.com/alerts", "method": "POST"},
    }
    src = tmp_path / "rules.json"
    src.write_text(json.dumps(seed))
    out = tmp_path / "rules.cep"
    r = cep("import", str(src), "-o", str(out))
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    assert "cpu > 80" in text and "memory > 70" in text
    assert cep("check", str(out)).returncode == 0


def test_import_reports_the_json_path_of_what_it_cannot_convert(tmp_path: Path) -> None:
    src = tmp_path / "rules.json"
    src.write_text(
        json.dumps(
            {
                "rules": [
                    {
                        "rule_id": "x",
                        "trigger_type": "metric",
                        "trigger_spec": {"conditions": [{"field": "cpu", "op": "~=", "value": 1}]},
                    }
                ]
            }
        )
    )
    r = cep("import", str(src))
    assert r.returncode == 1
    assert "$.rules[0].trigger_spec.conditions[0]" in r.stderr


# ----------------------------------------------------------------------------- notify test


class _Receiver(BaseHTTPRequestHandler):
    bodies: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        length = int(self.headers.get("content-length", 0))
        type(self).bodies.append(
            {"path": self.path, "body": json.loads(self.rfile.read(length) or b"{}"), "headers": dict(self.headers)}
        )
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    _Receiver.bodies = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    t.join(5)


@pytest.mark.timeout(120)
def test_notify_test_renders_and_sends_to_a_real_receiver(tmp_path: Path, receiver: str) -> None:
    f = tmp_path / "n.cep"
    f.write_text(
        "stream s (ts: timestamp, host: str, cpu: float)\n"
        f'channel hook = webhook(url = "{receiver}/alerts")\n'
        'rule hot "Hot host" from s where cpu > 90 severity high notify hook message "{{ host }} at {{ cpu }}%"\n'
    )
    refused = cep("notify", "test", str(f), "--rule", "hot", "--channel", "hook", "--record", '{"host": "web-1", "cpu": 97.5}')
    assert refused.returncode == 1  # loopback is refused unless allowed explicitly
    assert _Receiver.bodies == []
    r = cep(
        "notify",
        "test",
        str(f),
        "--rule",
        "hot",
        "--channel",
        "hook",
        "--record",
        '{"host": "web-1", "cpu": 97.5}',
        "--allow-host",
        "127.0.0.1",
    )
    assert r.returncode == 0, r.stderr
    assert len(_Receiver.bodies) == 1
    got = _Receiver.bodies[0]
    assert got["path"] == "/alerts"
    assert "web-1 at 97.5%" in json.dumps(got["body"])
    assert "web-1 at 97.5%" in r.stdout
