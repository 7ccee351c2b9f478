"""The operations API's rule catalogue drives a `cep serve --workers 2` flow: rules created,
toggled, replaced and deleted over real HTTP apply to the running workers without a restart,
and a rule nobody changed keeps its state through all of it."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("bytewax")

from runtime.distributed.runner import Cluster  # noqa: E402
from runtime.distributed.serving import serve_flow  # noqa: E402
from runtime.distributed.stats import BOARD  # noqa: E402

pytestmark = pytest.mark.timeout(240)

RULES = """\
stream m (ts: timestamp, host: str, cpu: float)
rule hot from m where cpu > 50
rule pair from m group by host window last 2 events having count() >= 2
"""
T0 = datetime(2026, 1, 5)
HOSTS = ["a", "b", "c"]
HEADERS = {"X-CEP-Request": "1"}


def _rows(path: Path, start: int, n: int = 12) -> None:
    with open(path, "a") as f:
        for i in range(n):
            ts = (T0 + timedelta(seconds=start + i)).strftime("%Y-%m-%dT%H:%M:%SZ")
            f.write(json.dumps({"ts": ts, "host": HOSTS[i % 3], "cpu": 60.0 + i}) + "\n")


def _records(out: Path, rule: str) -> list[dict]:
    path = out / f"{rule}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _wait(predicate: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _applied(n: int) -> bool:
    inputs = BOARD.inputs()
    return bool(inputs) and all(row.get("control_applied", 0) >= n for row in inputs.values())


def test_api_rule_changes_reach_the_workers(tmp_path: Path) -> None:
    rule_file = tmp_path / "rules.cep"
    rule_file.write_text(RULES)
    source = tmp_path / "m.jsonl"
    source.write_text("")
    out = tmp_path / "out"
    control = tmp_path / "control.jsonl"
    stop = threading.Event()
    ready: dict[str, Any] = {}
    got_ready = threading.Event()
    result: list[int] = []
    BOARD.clear()

    def on_ready(address: str, ops: Any) -> None:
        ready.update(address=address, ops=ops)
        got_ready.set()

    def run() -> None:
        try:
            result.append(
                serve_flow(
                    [str(rule_file)],
                    [f"m=jsonl:{source}"],
                    Cluster(workers=2, snapshot_every_s=1),
                    buckets=3,
                    control=str(control),
                    idle_after_s=3600,
                    outbox=str(tmp_path / "outbox.sqlite"),
                    out_dir=str(out),
                    listen="127.0.0.1:0",
                    catalogue=f"sqlite:{tmp_path / 'catalogue.sqlite'}",
                    history=f"sqlite:{tmp_path / 'history.sqlite'}",
                    stop=stop,
                    on_ready=on_ready,
                )
            )
        finally:
            got_ready.set()

    server = threading.Thread(target=run, daemon=True)
    server.start()
    assert got_ready.wait(120) and "address" in ready, f"serve --workers did not start: {result}"
    c = httpx.Client(base_url=ready["address"], headers=HEADERS, timeout=60)
    try:
        _rows(source, 0)  # seconds 0..11
        _wait(lambda: len(_records(out, "hot")) == 12 and len(_records(out, "pair")) == 8, "phase 1")

        r = c.post("/cep/rules", content="rule cool from m where cpu < 65\n")
        assert r.status_code == 201, r.text
        reload = r.json()["reload"]
        assert reload["ok"] is True
        assert reload["report"]["added"] == ["cool"] and set(reload["report"]["kept"]) == {"hot", "pair"}
        r = c.patch("/cep/rules/pair/toggle", json={"enabled": False})  # a file rule: toggles work
        assert r.status_code == 200 and r.json()["enabled"] is False, r.text
        # Only the changes went into the feed: the kept rules got no command.
        assert [json.loads(line)["op"] for line in control.read_text().splitlines()] == ["register", "disable"]
        _wait(lambda: _applied(2), "the commands to reach every reader")
        listed = {x["id"]: x for x in c.get("/cep/rules").json()}
        assert listed["cool"]["enabled"] is True and listed["pair"]["enabled"] is False

        _rows(source, 100)
        _wait(lambda: len(_records(out, "cool")) == 5, "the registered rule's matches")
        time.sleep(0.5)
        assert len(_records(out, "pair")) == 8  # disabled: nothing new
        assert len(_records(out, "hot")) == 24

        r = c.put("/cep/rules/cool", content="rule cool from m where cpu < 62\n")
        assert r.status_code == 200 and r.json()["reload"]["report"]["changed"] == ["cool"], r.text
        r = c.patch("/cep/rules/pair/toggle", json={"enabled": True})
        assert r.status_code == 200, r.text
        r = c.patch("/cep/rules/hot/toggle", json={"enabled": False})
        assert r.status_code == 200, r.text
        _wait(lambda: _applied(5), "the second round of commands")
        _rows(source, 200)
        _wait(lambda: len(_records(out, "pair")) >= 19 and len(_records(out, "cool")) == 7, "phase 3")
        time.sleep(0.5)
        assert len(_records(out, "hot")) == 24

        r = c.delete("/cep/rules/cool")
        assert r.status_code == 200 and r.json()["reload"]["report"]["removed"] == ["cool"], r.text
        _wait(lambda: _applied(6), "the delete")
        _rows(source, 300)
        _wait(lambda: len(_records(out, "pair")) >= 31, "phase 4")
        time.sleep(0.5)
        assert len(_records(out, "cool")) == 7

        stats = c.get("/cep/stats").json()
        assert stats["running"] is True
        health = c.get("/cep/health/bytewax").json()
        assert health["configured"] is True
        assert all(not p["control_errors"] for p in health["input_partitions"].values())
        alerts = c.get("/cep/events", params={"rule": "cool", "limit": 100}).json()["items"]
        assert len(alerts) == 7  # the flow's matches reach the alert history too
    finally:
        c.close()
        stop.set()
        server.join(90)
    assert not server.is_alive() and result == [0]

    pair = sorted(_records(out, "pair"), key=lambda r: r["ts"])
    third = [r for r in pair if "2026-01-05T00:03:20" <= r["ts"] < "2026-01-05T00:05:00"]
    # `pair` kept its state while disabled and while other rules came and went: each host's
    # first phase-3 row pairs with its last row from phase 1 (phase 2 never reached it).
    assert len(third) == 12 and {r["host"] for r in third[:3]} == set(HOSTS)
    assert [r["ts"][17:19] for r in _records(out, "cool")] == ["40", "41", "42", "43", "44", "20", "21"]
