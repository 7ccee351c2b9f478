"""§9.3 through the notifier to real receivers: resolved messages, PagerDuty trigger/resolve
sharing the episode's dedup_key, Slack/webhook/email marks, suppressed records never sent."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from conftest import T0, program

from cepdsl import Rules
from runtime.notify.channels import EmailChannel, Notification
from runtime.notify.records import episode_key, frame_records, idempotency_key
from runtime.notify.templates import render_message

pytestmark = pytest.mark.timeout(180)  # a cold Numba cache compiles the lifecycle kernels first (~20 s under load)

RULE = """
channel hook = webhook(url = env("HOOK_URL"))
channel chat = slack(webhook_url = env("SLACK_URL"))
channel pd = pagerduty(routing_key = env("PD_KEY"), api_base = env("PD_BASE"))
rule hot "Hot host"
  from metrics
  group by host
  window tumbling 1m
  having avg(cpu) > 80
  severity high
  notify hook, chat, pd
  message "{{ host }} is hot ({{ avg_cpu }})"
  RESOLVE
"""


def env_for(rx) -> dict[str, str]:  # noqa: ANN001
    return {"HOOK_URL": rx.url + "/hook", "SLACK_URL": rx.url + "/slack", "PD_KEY": "pd-key-1", "PD_BASE": rx.url + "/pd"}


def records(resolve: str, cpus: list[float], throttle: str = "") -> tuple[object, pl.DataFrame]:
    prog = program(RULE.replace("RESOLVE", resolve + (f"\n  throttle {throttle}" if throttle else "")))
    rows = [{"ts": T0 + dt.timedelta(minutes=i, seconds=5), "host": "web-1", "cpu": c, "memory": 1.0} for i, c in enumerate(cpus)]
    rows.append({"ts": T0 + dt.timedelta(minutes=len(cpus) + 1), "host": "other", "cpu": 1.0, "memory": 1.0})
    out = Rules(prog).replay({"metrics": pl.DataFrame(rows)})["hot"]
    return prog, out


def test_resolved_message_is_the_firing_message_prefixed_or_the_clause_template() -> None:
    prog, out = records("resolve", [90.0, 50.0])
    rule = prog.rule("hot")
    firing, resolved = frame_records(out)
    assert (firing["state"], resolved["state"]) == ("firing", "resolved")
    assert render_message(rule, "console", firing).text == "web-1 is hot (90.0)"
    assert render_message(rule, "console", resolved).text == "[RESOLVED] web-1 is hot (50.0)"
    assert render_message(rule, "email", resolved).subject == "[RESOLVED] [HIGH] Hot host"
    prog, out = records('resolve "{{ host }} is back, since {{ firing_since }}"', [90.0, 50.0])
    resolved = frame_records(out)[1]
    assert render_message(prog.rule("hot"), "slack", resolved).text == "web-1 is back, since 2024-05-01 12:01:00"


def test_keys_firing_and_resolved_share_the_episode_not_the_idempotency_key() -> None:
    prog, out = records("resolve", [90.0, 50.0, 90.0, 50.0])
    rule = prog.rule("hot")
    recs = frame_records(out)
    assert [r["state"] for r in recs] == ["firing", "resolved", "firing", "resolved"]
    keys = [idempotency_key(rule, r) for r in recs]
    assert len(set(keys)) == 4
    episodes = [episode_key(rule, r) for r in recs]
    assert episodes[0] == episodes[1] != episodes[2] == episodes[3]
    assert None not in episodes


def test_receivers_get_trigger_and_resolve_of_one_incident(receiver, make_notifier) -> None:  # noqa: ANN001
    prog, out = records("resolve", [90.0, 50.0])
    n = make_notifier(prog, env_for(receiver)).start()
    assert n.submit("hot", out) == 6
    assert n.drain(10)
    got = receiver.wait_for(6)
    pd = [r.json() for r in got if r.path == "/pd/v2/enqueue"]
    trigger = next(p for p in pd if p["event_action"] == "trigger")
    resolve = next(p for p in pd if p["event_action"] == "resolve")
    assert resolve == {"routing_key": "pd-key-1", "event_action": "resolve", "dedup_key": trigger["dedup_key"], "client": "cep"}
    hooks = sorted((r.json() for r in got if r.path == "/hook"), key=lambda b: b["ts"])
    assert [h["status"] for h in hooks] == ["firing", "resolved"]
    assert hooks[1]["message"] == "[RESOLVED] web-1 is hot (50.0)"
    assert hooks[0]["episode_key"] == hooks[1]["episode_key"] == trigger["dedup_key"]
    assert hooks[1]["resolved_at"] == "2024-05-01T12:02:00Z" and hooks[1]["firing_since"] == "2024-05-01T12:01:00Z"
    slack = sorted((r.json() for r in got if r.path == "/slack"), key=lambda b: b["blocks"][0]["text"]["text"])
    assert slack[0]["blocks"][0]["text"]["text"] == "[HIGH] Hot host"
    assert slack[1]["blocks"][0]["text"]["text"] == "[RESOLVED] [HIGH] Hot host"
    assert slack[1]["attachments"][0]["color"] == "#2eb886"


def test_a_throttled_firing_and_its_resolved_record_are_not_sent(receiver, make_notifier) -> None:  # noqa: ANN001
    prog, out = records("resolve", [90.0, 50.0, 90.0, 50.0], throttle="10m")
    assert out["suppressed"].to_list() == [False, False, True, True]
    n = make_notifier(prog, env_for(receiver)).start()
    assert n.submit("hot", out) == 6  # the first episode only, on three channels
    assert n.drain(10)
    got = receiver.wait_for(6)
    assert sorted(r.json()["status"] for r in got if r.path == "/hook") == ["firing", "resolved"]
    assert len(receiver.requests) == 6


def test_email_of_a_resolved_episode_answers_its_firing_mail() -> None:
    prog, out = records("resolve", [90.0, 50.0])
    rule = prog.rule("hot")
    mails = []
    for rec in frame_records(out):
        r = render_message(rule, "email", rec)
        mails.append(
            EmailChannel.message(
                _Fake(),
                Notification(
                    idempotency_key(rule, rec),
                    "hot",
                    "Hot host",
                    "high",
                    rec["ts"],
                    r.subject,
                    r.text,
                    rec,
                    {"host": "web-1"},
                    rec["state"],
                    episode_key(rule, rec),
                ),
            )
        )
    assert mails[1]["In-Reply-To"] == mails[0]["Message-ID"] == f"<{episode_key(rule, frame_records(out)[0])}@cep.local>"
    assert (mails[0]["X-CEP-State"], mails[1]["X-CEP-State"]) == ("firing", "resolved")


class _Fake:
    class config:  # noqa: N801 - stands in for a resolved channel config
        @staticmethod
        def get(name: str, default: object = None) -> object:
            return {"sender": "cep@example.org", "to": "ops@example.org"}.get(name, default)

    def recipients(self) -> list[str]:
        return ["ops@example.org"]
