"""Channels (kinds, create with env() secrets only, never echoed, test send), templates, the
form, and anomaly baselines (status, pre-seeded values, reset; Redis key of the design)."""

from __future__ import annotations

import json

import pytest

from tests.api.conftest import Served

RULES = """\
stream metrics (ts: timestamp, host: str, cpu: float)

rule cpu_odd "CPU anomaly"
  from metrics
  group by host
  anomaly zscore(cpu, threshold = 3.0) baseline 20 warmup 5
"""


def metric(host: str, cpu: float, second: int) -> str:
    return json.dumps({"ts": f"2026-01-01T00:{second // 60:02d}:{second % 60:02d}Z", "host": host, "cpu": cpu})


@pytest.mark.timeout(180)
def test_channels_templates_form(serve, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("HOOK_URL", "https://hooks.example.com/T0/secret-path")
    s: Served = serve(RULES)
    with s.client() as c:
        kinds = {k["kind"]: {o["name"]: o for o in k["options"]} for k in c.get("/cep/channels/types").json()}
        assert kinds["slack"]["webhook_url"] == {"name": "webhook_url", "required": True, "secret": True, "type": "str"}
        assert "retries" in kinds["console"]
        literal = c.post("/cep/channels", json={"name": "hook", "kind": "webhook", "options": {"url": "http://x/secret"}})
        assert literal.status_code == 422 and literal.json()["error"]["code"] == "literal-secret"
        made = c.post("/cep/channels", json={"name": "hook", "kind": "webhook", "options": {"url": {"env": "HOOK_URL"}}})
        assert made.status_code == 201, made.text
        assert made.json()["text"] == 'channel hook = webhook(url = env("HOOK_URL"), retries = 3, timeout = 10s)\n'
        assert "secret-path" not in json.dumps(c.get("/cep/channels").json())
        monkeypatch.delenv("HOOK_URL")
        unset = c.post("/cep/channels", json={"name": "hook2", "kind": "webhook", "options": {"url": {"env": "HOOK_URL"}}})
        assert unset.status_code == 422 and unset.json()["error"]["code"] == "channel-config"
        assert "hook2" not in {ch["name"] for ch in c.get("/cep/channels").json()}  # nothing stored
        monkeypatch.setenv("HOOK_URL", "https://hooks.example.com/T0/secret-path")
        out = tmp_path / "a.log"
        assert c.post("/cep/channels", json={"text": f'channel logfile = file(path = "{out}")'}).status_code == 201
        bad = c.post("/cep/channels", json={"text": "channel x = nosuch()"})
        assert bad.status_code == 422
        # A rule that uses the new channel; deleting the channel then does not check.
        rule = 'rule high "High"\n  from metrics\n  where cpu > 90\n  notify logfile\n  message "{{ host }} at {{ cpu }}"\n'
        assert c.post("/cep/rules", content=rule).status_code == 201
        refused = c.delete("/cep/channels/logfile")
        assert refused.status_code == 422 and refused.json()["error"]["code"] == "check-failed"
        tried = c.post("/cep/channels/test", json={"channel": "logfile", "record": {"host": "web1", "cpu": 99.5}}).json()
        assert tried["ok"] is True and tried["rule"] == "high" and tried["text"] == "web1 at 99.5"
        assert "web1 at 99.5" in out.read_text()
        patched = c.patch("/cep/channels/hook", json={"kind": "webhook", "options": {"url": {"env": "HOOK_URL"}, "method": "PUT"}})
        assert patched.status_code == 200 and 'method = "PUT"' in patched.json()["text"]

        assert c.put("/cep/templates", json={"name": "oncall", "body": "{{ title }} on {{ host }}"}).status_code == 200
        bad_t = c.put("/cep/templates", json={"name": "broken", "body": "{{ x | nosuchfilter }}"})
        assert bad_t.status_code == 422
        names = {t["name"]: t for t in c.get("/cep/templates").json()}
        assert names["oncall"]["origin"] == "catalogue" and names["oncall"]["version"] == 1
        assert names["oncall"]["in_program"] is True
        # A rule uses the named template (LANGUAGE.md §9.5) created over HTTP.
        uses = 'rule paged "Paged"\n  from metrics\n  where cpu > 99\n  message template("oncall")\n'
        assert c.post("/cep/rules", content=uses).status_code == 201
        dry = c.post("/cep/rules/paged/dry-run", json={"record": {"host": "db1"}}).json()
        assert dry["messages"][0]["text"] == "Paged on db1"
        assert any(t["origin"] == "builtin" for t in names.values())

        form = c.post(
            "/cep/form",
            json={
                "rule_id": "hot",
                "rule_name": "Hot",
                "trigger_type": "event",
                "trigger_spec": {"conditions": [{"field": "cpu", "op": ">", "value": 95}]},
            },
        ).json()
        assert form["ok"] is True and form["text"].startswith("rule hot")
        back = c.post("/cep/form", json={"text": form["text"]}).json()
        assert back["form"]["rule_id"] == "hot" and back["form"]["trigger_type"] == "event"
        assert "cpu" in back["form"]["trigger_spec"]["condition"]


@pytest.mark.timeout(180)
def test_anomaly_status_seed_reset(serve) -> None:  # noqa: ANN001
    s: Served = serve(RULES)
    with s.client() as c:
        lines = [metric("a", 50.0 + (i % 3), i) for i in range(10)] + [metric("b", 10.0, i) for i in range(3)]
        r = c.post("/cep/streams/metrics/events", content="\n".join(lines) + "\n")
        assert r.json()["matches"] == 0
        st = c.get("/cep/rules/cpu_odd/anomaly-status").json()
        groups = {g["group"]: g for g in st["groups"]}
        assert st["method"] == "zscore" and st["baseline"] == 20 and st["warmup"] == 5
        assert groups["a"]["n"] == 10 and groups["b"]["n"] == 3
        assert groups["a"]["mean"] == pytest.approx(50.9) and groups["a"]["std"] == pytest.approx(0.8306623862918)
        # Pre-seed host c with a tight baseline: its first row is scored against it and is an anomaly.
        seeded = c.put("/cep/rules/cpu_odd/anomaly-status", json={"baselines": {"c": [20.0, 21.0, 20.0, 21.0, 20.0, 21.0]}})
        assert seeded.status_code == 200
        assert {g["group"]: g["n"] for g in seeded.json()["groups"]}["c"] == 6
        hit = c.post("/cep/streams/metrics/events", content=metric("c", 80.0, 20) + "\n").json()
        assert hit["matches"] == 1
        ev = c.get("/cep/events", params={"rule": "cpu_odd"}).json()["items"][0]
        assert ev["group"] == "c" and ev["record"]["score"] > 3
        assert {g["group"]: g["last_score"] for g in c.get("/cep/rules/cpu_odd/anomaly-status").json()["groups"]}["c"] > 3
        one = c.post("/cep/rules/cpu_odd/anomaly-reset", json={"group": "a"}).json()
        assert one == {"rule": "cpu_odd", "reset": 1}
        after = {g["group"]: g["n"] for g in c.get("/cep/rules/cpu_odd/anomaly-status").json()["groups"]}
        assert after["a"] == 0 and after["b"] == 3
        assert c.post("/cep/rules/cpu_odd/anomaly-reset").json()["reset"] == 3
        assert c.post("/cep/rules/cpu_odd/anomaly-reset", json={"group": "zz"}).status_code == 404
        assert c.put("/cep/rules/cpu_odd/anomaly-status", json={"baselines": {"a|b": [1.0]}}).status_code == 422


@pytest.mark.timeout(180)
def test_baselines_under_the_design_key_with_redis_state(serve, redis_server, redis_client) -> None:  # noqa: ANN001
    served: Served = serve(RULES, state=redis_server.url)
    with served.client() as c:
        assert c.put("/cep/rules/cpu_odd/anomaly-status", json={"baselines": {"web1": [1.0, 2.0, 3.0]}}).status_code == 200
        assert redis_client.lrange("cep:anomaly:baseline:cpu_odd:web1", 0, -1) == ["1.0", "2.0", "3.0"]
        redis = c.get("/cep/health/redis").json()
        assert redis["configured"] is True and redis["status"] == "up" and redis["latency_ms"] >= 0


@pytest.mark.timeout(180)
def test_seed_rule_with_baseline_values(serve) -> None:  # noqa: ANN001
    s: Served = serve("stream metrics (ts: timestamp, host: str, cpu: float)\n")
    seed = {
        "rule_id": "cpu-anomaly",
        "rule_name": "CPU anomaly",
        "trigger_type": "anomaly",
        "trigger_spec": {
            "anomaly_method": "zscore",
            "value_path": "cpu",
            "baseline_window": 50,
            "baseline_values": [20.0, 21.0, 20.0, 21.0, 20.0, 21.0, 20.0, 21.0, 20.0, 21.0],
        },
    }
    with s.client() as c:
        r = c.post("/cep/rules", json=seed)
        assert r.status_code == 201, r.text
        rid = r.json()["rule"]["id"]
        st = c.get(f"/cep/rules/{rid}/anomaly-status").json()
        assert [(g["group"], g["n"]) for g in st["groups"]] == [("", 10)]
        hit = c.post("/cep/streams/metrics/events", content=metric("x", 90.0, 1) + "\n").json()
        assert hit["matches"] == 1  # scored against the imported baseline at once (warmup met)


@pytest.mark.timeout(180)
def test_an_iqr_baseline_can_be_seeded(serve) -> None:  # noqa: ANN001
    """PUT on the status route seeded through a copy of the kernel dispatch that did not pass
    iqr's arguments: a 500 for every iqr rule. It now goes through the executor itself."""
    s: Served = serve(
        "stream metrics (ts: timestamp, host: str, cpu: float)\n\nrule cpu_iqr\n  from metrics\n  group by host\n"
        "  anomaly iqr(cpu, multiplier = 1.5) baseline 20 warmup 5\n"
    )
    with s.client() as c:
        seeded = c.put("/cep/rules/cpu_iqr/anomaly-status", json={"baselines": {"c": [20.0, 21.0, 22.0, 23.0, 24.0, 25.0]}})
        assert seeded.status_code == 200, seeded.text
        group = {g["group"]: g for g in seeded.json()["groups"]}["c"]
        assert group["n"] == 6
        assert group["q1"] == pytest.approx(21.25) and group["q3"] == pytest.approx(23.75)
        assert c.post("/cep/streams/metrics/events", content=metric("c", 22.0, 20) + "\n").json()["matches"] == 0
        assert c.post("/cep/streams/metrics/events", content=metric("c", 80.0, 21) + "\n").json()["matches"] == 1
