"""Rule catalogue over HTTP on a running engine: create, check (422 + diagnostics), versions,
toggle, edit, delete, read-only file rules, explain, the seed's JSON shape."""

from __future__ import annotations

import time

import pytest

from tests.api.conftest import Served

ROOT = 'rule root_login "Root login"\n  from auth\n  where user == "root"\n  severity critical\n'


def event(user: str, kind: str = "login_ok", second: int = 0) -> str:
    return '{"ts": "2026-01-01T00:00:%02dZ", "user": "%s", "event_type": "%s", "host": "h1"}' % (second, user, kind)


def ingest(c, *lines: str) -> dict:  # noqa: ANN001
    r = c.post("/cep/streams/auth/events", content="\n".join(lines) + "\n", headers={"content-type": "application/x-ndjson"})
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.timeout(180)
def test_rule_lifecycle_on_a_running_engine(serve) -> None:  # noqa: ANN001
    s: Served = serve()
    with s.client() as c:
        rules = c.get("/cep/rules").json()
        assert [(r["id"], r["origin"], r["enabled"], r["loaded"]) for r in rules] == [("failed", "file", True, True)]
        assert rules[0]["text"].startswith('rule failed "Failed login"')

        # A rule that does not check: 422, the same diagnostics as `cep check`, nothing changed.
        bad = c.post("/cep/rules", content='rule bad from auth where usr == "root"\n')
        assert bad.status_code == 422
        err = bad.json()["error"]
        assert err["code"] == "check-failed"
        (d,) = err["diagnostics"]
        assert (d["line"], d["col"], d["code"]) == (1, 26, "unknown-field")
        assert d["message"] == "unknown field `usr` in stream `auth`"
        assert d["hints"] == ["did you mean `user`?"]
        assert [r["id"] for r in c.get("/cep/rules").json()] == ["failed"]

        created = c.post("/cep/rules", content=ROOT)
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["rule"]["id"] == "root_login" and body["rule"]["loaded"] is True
        assert body["version"]["version"] == 1 and body["version"]["applied_at"] is not None
        assert body["reload"]["report"]["added"] == ["root_login"]
        assert body["reload"]["report"]["kept"] == ["failed"]
        assert c.post("/cep/rules", content=ROOT).status_code == 409  # exists: PUT changes it

        got = ingest(c, event("root"), event("alice", "login_failed", 1))
        assert got == {"stream": "auth", "accepted": 2, "dead_letters": 0, "matches": 2}

        # Edit: a new version; the old one is kept.
        edited = ROOT.replace('"root"', '"admin"')
        put = c.put("/cep/rules/root_login", content=edited)
        assert put.status_code == 200, put.text
        assert put.json()["version"]["version"] == 2
        assert put.json()["reload"]["report"]["changed"] == ["root_login"]
        versions = c.get("/cep/rules/root_login/versions").json()
        assert [v["version"] for v in versions] == [1, 2]
        assert '"root"' in versions[0]["text"] and '"admin"' in versions[1]["text"]
        assert ingest(c, event("root", second=2), event("admin", second=3))["matches"] == 1

        # File rules: listed, text read-only, toggle works.
        ro = c.put("/cep/rules/failed", content='rule failed from auth\n')
        assert ro.status_code == 409 and ro.json()["error"]["code"] == "read-only"
        assert "ops.cep:3" in ro.json()["error"]["message"]
        assert c.delete("/cep/rules/failed").status_code == 409
        off = c.patch("/cep/rules/failed/toggle", json={"enabled": False})
        assert off.status_code == 200 and off.json()["enabled"] is False
        assert ingest(c, event("bob", "login_failed", 4))["matches"] == 0
        view = c.get("/cep/rules/failed").json()
        assert (view["enabled"], view["loaded"]) == (False, False)
        assert (view["title"], view["kind"], view["severity"]) == ("Failed login", "filter", "high")  # shown as written

        explain = c.get("/cep/rules/root_login/explain")
        assert explain.status_code == 200 and explain.text.startswith("rule root_login")
        assert c.get("/cep/rules/failed/explain").status_code == 409  # disabled: no plan running

        deleted = c.delete("/cep/rules/root_login")
        assert deleted.status_code == 200 and deleted.json()["version"]["deleted"] is True
        assert c.get("/cep/rules/root_login").status_code == 404
        assert [v["version"] for v in c.get("/cep/rules/root_login/versions").json()] == [1, 2, 3]
        assert ingest(c, event("admin", second=5))["matches"] == 0
        assert c.get("/cep/rules/nope").status_code == 404
        assert c.get("/cep/rules/not-an-id!").status_code == 422
    assert s.shutdown() == 0

    # Restart on the same state directory: the toggle and the catalogue persist.
    s2: Served = serve(sub="srv")
    with s2.client() as c:
        rules = {r["id"]: r for r in c.get("/cep/rules").json()}
        assert rules["failed"]["enabled"] is False
        assert "root_login" not in rules
        assert c.post("/cep/rules", content=ROOT.replace("root_login", "again")).status_code == 201
    s2.shutdown()
    s3: Served = serve(sub="srv")
    with s3.client() as c:
        assert {r["id"] for r in c.get("/cep/rules").json()} == {"failed", "again"}


@pytest.mark.timeout(120)
def test_json_bodies_and_seed_shape(serve) -> None:  # noqa: ANN001
    s: Served = serve()
    with s.client() as c:
        r = c.post("/cep/rules", json={"text": ROOT})
        assert r.status_code == 201
        seed = {
            "rule_id": "cpu-high",
            "rule_name": "Root by seed",
            "trigger_type": "event",
            "trigger_spec": {"conditions": [{"field": "user", "op": "==", "value": "root"}]},
        }
        r = c.post("/cep/rules", json=seed)
        assert r.status_code == 201, r.text
        assert r.json()["rule"]["stream"] == "auth"
        assert c.post("/cep/rules", content=b"rule x from auth\xff\n").json()["error"]["code"] == "encoding"
        bad_json = c.post("/cep/rules", content=b'{"text": ', headers={"content-type": "application/json"})
        assert bad_json.status_code == 400 and bad_json.json()["error"]["code"] == "invalid-json"
        two = c.post("/cep/rules", content=ROOT + ROOT.replace("root_login", "other"))
        assert two.status_code == 422 and two.json()["error"]["code"] == "one-declaration"
        mismatch = c.put("/cep/rules/other", content=ROOT)
        assert mismatch.status_code == 422 and mismatch.json()["error"]["code"] == "id-mismatch"
        check = c.post(
            "/cep/check", content="stream s (ts: timestamp, cpu: float)\nrule r from s where cpux > 1\n", params={"filename": "x.cep"}
        ).json()
        assert check["ok"] is False and check["diagnostics"][0]["rendered"].startswith("x.cep:2:21: error:")
        time.sleep(0)


@pytest.mark.timeout(120)
def test_several_files_form_one_program(tmp_path) -> None:  # noqa: ANN001
    import threading

    import httpx

    from runtime.serve import serve_forever

    (tmp_path / "streams.cep").write_text("stream auth (ts: timestamp, user: str, event_type: str, host: str)\n")
    (tmp_path / "rules.cep").write_text('rule failed from auth where event_type == "login_failed"\n')
    got: dict = {}
    ready, stop = threading.Event(), threading.Event()
    args = [str(tmp_path / "streams.cep"), str(tmp_path / "rules.cep")]

    def on_ready(address: str, ops) -> None:  # noqa: ANN001
        got["url"] = address
        ready.set()

    t = threading.Thread(
        target=lambda: got.setdefault(
            "code",
            serve_forever(
                args,
                state=f"sqlite:{tmp_path / 'st.sqlite'}",
                outbox=str(tmp_path / "ob.sqlite"),
                listen="127.0.0.1:0",
                stop=stop,
                on_ready=on_ready,
            ),
        ),
        daemon=True,
    )
    t.start()
    assert ready.wait(60)
    with httpx.Client(base_url=got["url"], headers={"X-CEP-Request": "1"}, timeout=30) as c:
        (rule,) = c.get("/cep/rules").json()
        assert (rule["id"], rule["origin"], rule["file"], rule["line"]) == ("failed", "file", args[1], 1)
        assert ingest(c, event("a", "login_failed"))["matches"] == 1
        assert c.get("/cep/health").json()["files"] == args
    stop.set()
    t.join(60)
    assert got["code"] == 0


@pytest.mark.timeout(180)
def test_a_catalogue_rule_that_stops_checking_is_left_out_and_reported(serve, tmp_path) -> None:  # noqa: ANN001
    s: Served = serve()
    with s.client() as c:
        assert c.post("/cep/rules", content='rule by_host from auth where host == "h1"\n').status_code == 201
        assert c.post("/cep/rules", content=ROOT).status_code == 201
    s.shutdown()
    # The rule file loses the field `host`: by_host no longer checks; the rest starts.
    (tmp_path / "srv" / "ops.cep").write_text(
        "stream auth (ts: timestamp, user: str, event_type: str)\n\n"
        'rule failed "Failed login"\n  from auth\n  where event_type == "login_failed"\n  severity high\n'
    )
    s2: Served = serve(sub="srv")
    with s2.client() as c:
        rules = {r["id"]: r for r in c.get("/cep/rules").json()}
        assert rules["by_host"]["loaded"] is False and rules["root_login"]["loaded"] is True
        h = c.get("/cep/health")
        assert h.status_code == 503
        assert any("by_host" in r and "does not check" in r for r in h.json()["reasons"])
        # Other changes still work; fixing the rule brings it back.
        assert c.patch("/cep/rules/failed/toggle", json={"enabled": True}).status_code == 200
        fixed = c.put("/cep/rules/by_host", content='rule by_host from auth where user == "h1"\n')
        assert fixed.status_code == 200 and fixed.json()["rule"]["loaded"] is True
        assert c.get("/cep/health").status_code == 200
