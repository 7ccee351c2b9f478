"""A rule created, toggled, edited and deleted over HTTP while events stream in from a followed
file: the stored matches equal a replay of the same input, cut at the source offsets each change
recorded, under the rule versions in effect between the cuts (no event dropped or seen twice)."""

from __future__ import annotations

import json
import random
import threading
import time
from pathlib import Path

import pytest

from cepdsl.engine import Session
from runtime.catalogue.program import assemble
from runtime.sources.ndjson import blocks_to_frame
from tests.api.conftest import RULES, Served

USERS = ["root", "alice", "bob", "admin", "carol"]


def rule_text(version: int) -> str:
    users = ", ".join(f'"{u}"' for u in USERS[: 1 + version % 4])
    return f'rule watched "Watched users"\n  from auth\n  where user in [{users}]\n  severity high\n'


@pytest.mark.timeout(300)
def test_changes_while_streaming_equal_replay(serve, tmp_path: Path) -> None:
    data = tmp_path / "auth.jsonl"
    data.write_text("")
    s: Served = serve(sources=(f"auth=jsonl:{data}?follow=true",))
    rng = random.Random(7)
    stop = threading.Event()
    written = [0]

    def writer() -> None:
        i = 0
        with open(data, "a", encoding="utf-8") as f:
            while not stop.is_set():
                for _ in range(rng.randint(5, 40)):
                    kind = "login_failed" if i % 3 == 0 else "login_ok"
                    f.write(
                        json.dumps(
                            {
                                "ts": f"2026-01-01T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z",
                                "user": USERS[i % len(USERS)],
                                "event_type": kind,
                                "host": f"e{i}",
                            }
                        )
                        + "\n"
                    )
                    i += 1
                f.flush()
                written[0] = i
                time.sleep(0.01)

    program_texts: list[tuple[int, dict[str, str], set[str]]] = []  # (offset, catalogue texts, disabled)
    catalogue: dict[str, str] = {}
    disabled: set[str] = set()
    t = threading.Thread(target=writer, daemon=True)
    t.start()
    version = 0
    with s.client() as c:
        steps = [
            "create",
            "toggle_off",
            "toggle_on",
            "edit",
            "toggle_file",
            "edit",
            "toggle_file",
            "delete",
            "create",
            "edit",
            "toggle_off",
            "edit",
            "toggle_on",
        ]
        for step in steps:
            time.sleep(rng.uniform(0.05, 0.3))
            if step == "create":
                r = c.post("/cep/rules", content=rule_text(version))
                catalogue["rules/watched.cep"] = rule_text(version)
            elif step == "edit":
                version += 1
                r = c.put("/cep/rules/watched", content=rule_text(version))
                catalogue["rules/watched.cep"] = rule_text(version)
            elif step == "delete":
                r = c.delete("/cep/rules/watched")
                catalogue.pop("rules/watched.cep")
            elif step in ("toggle_off", "toggle_on"):
                r = c.patch("/cep/rules/watched/toggle", json={"enabled": step == "toggle_on"})
                (disabled.add if step == "toggle_off" else disabled.discard)("watched")
            else:
                r = c.patch("/cep/rules/failed/toggle", json={})
                disabled ^= {"failed"}
            assert r.status_code in (200, 201), (step, r.text)
            offsets = r.json()["reload"]["offsets"]
            program_texts.append((offsets["auth#0"]["pos"] if offsets else 0, dict(catalogue), set(disabled)))
        stop.set()
        t.join()
        size = data.stat().st_size
        deadline = time.monotonic() + 60
        while s.ops.engine.offsets.get("auth#0", {}).get("pos") != size and time.monotonic() < deadline:
            time.sleep(0.1)
        assert s.ops.engine.offsets["auth#0"]["pos"] == size
        time.sleep(0.5)
        got = set()
        cursor = None
        while True:
            params = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
            page = c.get("/cep/events", params=params).json()
            got |= {(a["rule"], a["record"]["host"]) for a in page["items"]}
            cursor = page["next_cursor"]
            if not cursor:
                break

    raw = data.read_bytes()
    files = {"ops.cep": RULES}
    cuts = [(0, {}, set()), *program_texts]
    expected = set()
    positions = [p for p, _, _ in cuts] + [len(raw)]
    assert positions == sorted(positions), positions
    assert len({p for p in positions if 0 < p < len(raw)}) >= 5, positions  # changes landed mid-stream
    for (start, texts, off), end in zip(cuts, positions[1:], strict=True):
        if end <= start:
            continue
        program = assemble({**files, **texts}, off).program
        assert program is not None
        frame, dead = blocks_to_frame(program.stream("auth"), [raw[start:end]])
        assert dead.height == 0
        session = Session(program, replay=True)
        outs = session.push("auth", frame)
        for rid, f in [*outs.items(), *session.flush().items()]:
            expected |= {(rid, h) for h in f.get_column("host").to_list()} if f.height else set()
    assert written[0] > 200
    assert len(expected) > 50
    assert got == expected
