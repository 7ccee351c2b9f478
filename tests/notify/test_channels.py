"""Each channel against a real receiver: what arrives, byte for byte where it matters."""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs

import pytest
from conftest import T0, cpu_rows, matches, program

pytestmark = pytest.mark.timeout(20)

HIGH_CPU = """
channel hook = webhook(url = env("HOOK_URL"), headers = {"X-Team": "ops", "Authorization": env("HOOK_AUTH")})
channel chat = slack(webhook_url = env("SLACK_URL"), channel = "#ops")
channel sms = sms(account_sid = "AC123", auth_token = env("TWILIO_TOKEN"), from_number = "+15550001",
                  to = ["+15550002", "+15550003"], api_base = env("TWILIO_BASE"))
channel pd = pagerduty(routing_key = env("PD_KEY"), api_base = env("PD_BASE"))
rule high_cpu "High CPU"
  from metrics
  where cpu > 80
  group by host
  severity high
  notify hook, chat, sms, pd
  message "{{ host }}: cpu {{ cpu }}%"
"""


def env_for(rx) -> dict[str, str]:
    return {
        "HOOK_URL": rx.url + "/hook",
        "HOOK_AUTH": "Bearer hook-secret-123",
        "SLACK_URL": rx.url + "/services/T0/B0/slacksecret99",
        "TWILIO_TOKEN": "twilio-token-456",
        "TWILIO_BASE": rx.url + "/twilio",
        "PD_KEY": "pd-routing-key-789",
        "PD_BASE": rx.url + "/pd",
    }


def test_every_http_channel_delivers_what_its_receiver_expects(receiver, make_notifier):
    prog = program(HIGH_CPU)
    n = make_notifier(prog, env_for(receiver)).start()
    assert n.submit("high_cpu", matches(prog, "high_cpu", cpu_rows(1))) == 4
    assert n.drain(10)
    got = receiver.wait_for(5)  # 1 webhook + 1 slack + 2 sms + 1 pagerduty
    assert len(got) == 5
    by_path = {r.path: r for r in got}

    hook = by_path["/hook"]
    body = hook.json()
    assert hook.method == "POST"
    assert hook.headers["content-type"] == "application/json"
    assert hook.headers["x-team"] == "ops" and hook.headers["authorization"] == "Bearer hook-secret-123"
    assert hook.headers["idempotency-key"] == body["id"] and body["id"].startswith("cep-")
    assert body["message"] == "web-0: cpu 90.0%"
    assert body["subject"] == "[HIGH] High CPU"
    assert body["ts"] == "2024-05-01T12:00:00Z" and body["record"]["host"] == "web-0"
    assert body["severity"] == "high" and body["rule"] == "high_cpu"

    slack = by_path["/services/T0/B0/slacksecret99"].json()
    assert slack["channel"] == "#ops"
    assert slack["blocks"][0] == {"type": "header", "text": {"type": "plain_text", "text": "[HIGH] High CPU"}}
    assert slack["blocks"][1]["text"]["text"] == "web-0: cpu 90.0%"
    assert slack["attachments"][0]["color"] == "#E8912D"
    assert slack["attachments"][0]["fields"] == [{"title": "host", "value": "web-0", "short": True}]

    sms = [r for r in got if r.path.startswith("/twilio")]
    assert [r.path for r in sms] == ["/twilio/2010-04-01/Accounts/AC123/Messages.json"] * 2
    assert sms[0].headers["authorization"] == "Basic " + base64.b64encode(b"AC123:twilio-token-456").decode()
    forms = [parse_qs(r.body.decode()) for r in sms]
    assert [f["To"][0] for f in forms] == ["+15550002", "+15550003"]
    assert forms[0]["From"] == ["+15550001"]
    assert forms[0]["Body"] == ["[HIGH] High CPU web-0: cpu 90.0%"]

    pd = by_path["/pd/v2/enqueue"].json()
    assert pd["routing_key"] == "pd-routing-key-789" and pd["event_action"] == "trigger"
    assert pd["dedup_key"] == body["id"]
    assert pd["payload"]["severity"] == "error"  # high → error
    assert pd["payload"]["summary"] == "[HIGH] High CPU: web-0: cpu 90.0%"
    assert pd["payload"]["source"] == "host=web-0"
    assert pd["payload"]["timestamp"] == "2024-05-01T12:00:00Z"
    assert pd["payload"]["custom_details"]["cpu"] == 90.0
    assert n.stats()["sent"] == 4


@pytest.mark.parametrize(
    "severity, colour, pd_sev",
    [
        ("info", "#439FE0", "info"),
        ("low", "#2EB67D", "warning"),
        ("medium", "#ECB22E", "warning"),
        ("critical", "#E01E5A", "critical"),
    ],
)
def test_severity_maps_to_slack_colour_and_pagerduty_severity(receiver, make_notifier, severity, colour, pd_sev):
    prog = program(f"""
channel chat = slack(webhook_url = env("SLACK_URL"))
channel pd = pagerduty(routing_key = "k-123456", api_base = env("PD_BASE"))
rule r from metrics where cpu > 1 severity {severity} notify chat, pd
""")
    n = make_notifier(prog, {"SLACK_URL": receiver.url + "/slack", "PD_BASE": receiver.url}).start()
    n.submit("r", matches(prog, "r", cpu_rows(1)))
    assert n.drain(10)
    assert receiver.received("/slack")[0].json()["attachments"][0]["color"] == colour
    assert receiver.received("/v2/enqueue")[0].json()["payload"]["severity"] == pd_sev


def test_default_templates_name_title_severity_key_fields_and_rule(receiver, make_notifier):
    prog = program("""
channel hook = webhook(url = env("HOOK_URL"))
channel chat = slack(webhook_url = env("SLACK_URL"))
rule hot "Hot host" from metrics where cpu > 80 group by host severity critical notify hook, chat
""")
    n = make_notifier(prog, {"HOOK_URL": receiver.url + "/hook", "SLACK_URL": receiver.url + "/slack"}).start()
    n.submit("hot", matches(prog, "hot", cpu_rows(1)))
    assert n.drain(10)
    hook = receiver.received("/hook")[0].json()
    assert hook["message"] == "[CRITICAL] Hot host: host=web-0, cpu=90.0, memory=75.5"
    slack = receiver.received("/slack")[0].json()
    assert slack["blocks"][1]["text"]["text"] == "*host*: web-0\n*cpu*: 90.0\n*memory*: 75.5"
    assert "rule `hot`" in slack["blocks"][2]["elements"][0]["text"]


def test_slack_escapes_mentions_from_event_data(receiver, make_notifier):
    prog = program("""
channel chat = slack(webhook_url = env("SLACK_URL"))
rule r from metrics where cpu > 1 notify chat message "host {{ host }}"
""")
    n = make_notifier(prog, {"SLACK_URL": receiver.url + "/slack"}).start()
    n.submit("r", matches(prog, "r", [{"ts": T0, "host": "<!channel> & co", "cpu": 99.0, "memory": 1.0}]))
    assert n.drain(10)
    text = receiver.received("/slack")[0].json()["blocks"][1]["text"]["text"]
    assert text == "host &lt;!channel&gt; &amp; co"


def test_pagerduty_payload_stays_under_512_kb(receiver, make_notifier):
    prog = program("""
channel pd = pagerduty(routing_key = "k-123456", api_base = env("PD_BASE"))
rule r from metrics where cpu > 1 notify pd
""")
    n = make_notifier(prog, {"PD_BASE": receiver.url}).start()
    big = "x" * 700_000
    n.submit("r", matches(prog, "r", [{"ts": T0, "host": big, "cpu": 99.0, "memory": 1.0}]))
    assert n.drain(10)
    req = receiver.received("/v2/enqueue")[0]
    assert len(req.body) <= 512 * 1024
    details = req.json()["payload"]["custom_details"]
    assert details["truncated"] is True and details["record_json"].startswith('{"rule": "r"')


def test_file_and_console_channels(tmp_path, make_notifier, capsys):
    import io

    out = io.StringIO()
    path = tmp_path / "alerts.jsonl"
    prog = program(f"""
channel f = file(path = "{path}")
channel c = console()
rule r "R" from metrics where cpu > 1 severity low notify f, c message "{{{{ host }}}} {{{{ cpu }}}}"
""")
    n = make_notifier(prog, console=out, max_in_flight=1).start()
    n.submit("r", matches(prog, "r", cpu_rows(3)))
    assert n.drain(10)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["message"] for line in lines] == ["web-0 90.0", "web-1 91.0", "web-2 92.0"]
    assert lines[0]["record"]["ts"] == "2024-05-01T12:00:00Z" and lines[0]["severity"] == "low"
    assert out.getvalue().splitlines() == ["[LOW] R: web-0 90.0", "[LOW] R: web-1 91.0", "[LOW] R: web-2 92.0"]
