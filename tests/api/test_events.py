"""Alert history: every emitted match stored (rules without channels too), filters, cursor
pagination, summary, detail with rendered messages and delivery status, delete."""

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
  message "{{{{ user }}}} failed on {{{{ host }}}}"

rule root "Root"
  from auth
  where user == "root"
  group by host
  severity critical
"""


def lines(n: int, start: int = 0) -> str:
    out = []
    for i in range(start, start + n):
        user = "root" if i % 5 == 0 else f"u{i}"
        kind = "login_failed" if i % 2 == 0 else "login_ok"
        out.append(
            json.dumps({"ts": f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}Z", "user": user, "event_type": kind, "host": f"h{i % 3}"})
        )
    return "\n".join(out) + "\n"


@pytest.mark.timeout(180)
def test_history(serve, tmp_path) -> None:  # noqa: ANN001
    s: Served = serve(RULES.format(out=tmp_path / "alerts.log"))
    with s.client() as c:
        got = c.post("/cep/streams/auth/events", content=lines(120), headers={"content-type": "application/x-ndjson"}).json()
        # 60 failed logins, 24 root logins
        assert got["matches"] == 84
        page = c.get("/cep/events", params={"limit": 50}).json()
        assert len(page["items"]) == 50 and page["next_cursor"] is not None
        ids = [a["id"] for a in page["items"]]
        assert ids == sorted(ids, reverse=True)
        seen = list(ids)
        cursor = page["next_cursor"]
        while cursor:
            page = c.get("/cep/events", params={"limit": 50, "cursor": cursor}).json()
            seen += [a["id"] for a in page["items"]]
            cursor = page["next_cursor"]
        assert len(seen) == len(set(seen)) == 84
        root = c.get("/cep/events", params={"rule": "root", "limit": 1000}).json()["items"]
        assert len(root) == 24 and {a["severity"] for a in root} == {"critical"}
        assert all(a["channels"] == [] for a in root)  # stored though it notifies nowhere
        h1 = c.get("/cep/events", params={"rule": "root", "group": "h1", "limit": 1000}).json()["items"]
        assert {a["record"]["host"] for a in h1} == {"h1"} and len(h1) == 8
        ranged = c.get("/cep/events", params={"since": "2026-01-01T00:01:00Z", "until": "2026-01-01T00:01:30Z", "limit": 1000}).json()[
            "items"
        ]
        assert ranged and all("2026-01-01T00:01:00" <= a["ts"] < "2026-01-01T00:01:30" for a in ranged)
        assert len(ranged) == sum(i % 2 == 0 for i in range(60, 90)) + sum(i % 5 == 0 for i in range(60, 90))
        assert c.get("/cep/events", params={"since": "yesterday"}).status_code == 422

        summary = c.get("/cep/events/summary", params={"since": "2026-01-01T00:00:00Z"}).json()
        assert summary["by_rule"] == {"failed": 60, "root": 24}
        assert summary["by_severity"] == {"high": 60, "critical": 24}
        assert [m["count"] for m in summary["per_minute"]] == [42, 42]
        assert summary["per_minute"][0]["minute"] == "2026-01-01T00:00:00.000000Z"

        failed = c.get("/cep/events", params={"rule": "failed", "limit": 1}).json()["items"][0]
        detail = c.get(f"/cep/events/{failed['id']}").json()
        assert detail["messages"][0]["channel"] == "out"
        assert detail["messages"][0]["text"] == f"{failed['record']['user']} failed on {failed['record']['host']}"
        assert detail["deliveries"][0]["channel"] == "out"
        assert detail["deliveries"][0]["status"] in ("pending", "in_flight", "sent")
        assert detail["deliveries"][0]["attempts"] is not None and detail["deliveries"][0]["updated_at"].endswith("Z")
        assert c.delete(f"/cep/events/{failed['id']}").status_code == 204
        assert c.get(f"/cep/events/{failed['id']}").status_code == 404
        assert c.delete(f"/cep/events/{failed['id']}").status_code == 404
        assert c.get("/cep/events/0").status_code == 422
        breakers = c.get("/cep/health/circuit-breakers").json()
        assert breakers["channels"]["out"]["state"] == "closed" and breakers["channels"]["out"]["failures"] == 0
        assert breakers["rules"]["failed"]["out"]["opens_at"] == "5 consecutive failures"
