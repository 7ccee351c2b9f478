"""Channel resolution at start, and secrets kept out of everything printable."""

from __future__ import annotations

import logging

import pytest
from conftest import cpu_rows, matches, program

from runtime.notify import ChannelConfigError, Notifier, notify_test, resolve_channels

from receiver import Answer

pytestmark = pytest.mark.timeout(20)

SRC = """
channel hook = webhook(url = env("HOOK_URL"), headers = {"Authorization": env("HOOK_AUTH")})
channel pd = pagerduty(routing_key = env("PD_KEY"), api_base = env("PD_BASE"))
rule r "R" from metrics where cpu > 1 notify hook fallback pd
"""


def test_missing_env_variable_is_a_clear_error_at_start(tmp_path):
    prog = program(SRC)
    with pytest.raises(ChannelConfigError) as err:
        Notifier(prog, env={"HOOK_URL": "https://hooks.example.org/x", "HOOK_AUTH": "a-secret"}, outbox=tmp_path / "o.sqlite")
    assert str(err.value) == "channel 'pd', option 'routing_key': environment variable 'PD_KEY' is not set"
    assert err.value.variable == "PD_KEY" and err.value.channel == "pd"


def test_resolved_channels_never_show_secrets():
    prog = program(SRC)
    env = {
        "HOOK_URL": "https://hooks.example.org/T000/B000/hooksecret",
        "HOOK_AUTH": "Bearer tok-abcdef",
        "PD_KEY": "R0UTINGKEY123",
        "PD_BASE": "https://events.example.org",
    }
    channels = resolve_channels(prog, env)
    shown = repr(channels) + str([c.describe() for c in channels.values()])
    for secret in env.values():
        if secret != env["PD_BASE"]:
            assert secret not in shown
    assert channels["pd"].describe()["options"]["routing_key"] == "env(PD_KEY)"
    assert channels["hook"].redact("POST https://hooks.example.org/T000/B000/hooksecret failed") == "POST *** failed"
    assert channels["hook"].redact("path /T000/B000/hooksecret") == "path ***"


def test_secrets_never_reach_the_outbox_logs_or_failures(receiver, make_notifier, tmp_path, caplog):
    receiver.script("/hook", Answer(401, body=b'{"error":"bad token Bearer tok-abcdef for /hook/hooksecret"}'))
    receiver.script("/pd", *[Answer(500, body=b"R0UTINGKEY123 rejected")] * 2)
    prog = program(
        SRC.replace("notify hook fallback pd", "notify hook fallback pd").replace(
            'pagerduty(routing_key = env("PD_KEY"), api_base = env("PD_BASE"))',
            'pagerduty(routing_key = env("PD_KEY"), api_base = env("PD_BASE"), retries = 1)',
        )
    )
    env = {
        "HOOK_URL": receiver.url + "/hook/hooksecret",
        "HOOK_AUTH": "Bearer tok-abcdef",
        "PD_KEY": "R0UTINGKEY123",
        "PD_BASE": receiver.url + "/pd",
    }
    outbox = tmp_path / "secret-check.sqlite"
    caplog.set_level(logging.DEBUG, logger="cep.notify")
    n = make_notifier(prog, env, outbox=outbox).start()
    n.submit("r", matches(prog, "r", cpu_rows(1)))
    assert n.drain(10)
    assert receiver.received("/pd")[0].json()["routing_key"] == "R0UTINGKEY123"  # the receiver does get it
    failures = n.failures()
    assert [f["channel"] for f in failures] == ["pd", "hook"]
    assert failures[1]["reason"] == 'HTTP 401: {"error":"bad token *** for ***"}'  # the URL path is secret too
    assert failures[0]["reason"] == "HTTP 500: *** rejected"
    n.stop()
    blob = outbox.read_bytes() + b"".join(p.read_bytes() for p in tmp_path.glob("secret-check.sqlite*"))
    everything = blob.decode("latin-1") + caplog.text + repr(n) + str(n.stats())
    for secret in ("tok-abcdef", "R0UTINGKEY123", "hooksecret"):
        assert secret not in everything, secret


def test_notify_test_returns_what_was_sent_with_secrets_masked(receiver):
    prog = program(SRC + '  message "{{ host }} at {{ cpu }}"\n')
    env = {
        "HOOK_URL": receiver.url + "/hook/hooksecret",
        "HOOK_AUTH": "Bearer tok-abcdef",
        "PD_KEY": "R0UTINGKEY123",
        "PD_BASE": receiver.url + "/pd",
    }
    from conftest import LOCAL

    out = notify_test(prog, "r", "pd", {"host": "db-1", "cpu": 97.5, "ts": "2024-05-01T12:00:00Z"}, env=env, policy=LOCAL)
    assert out["ok"] is True and out["text"] == "db-1 at 97.5"
    assert out["sent"]["status"] == 200 and out["sent"]["target"] == "***/v2/enqueue"  # every env() value is secret
    assert "R0UTINGKEY123" not in str(out) and '"routing_key":"***"' in out["sent"]["request"]["body"]
    got = receiver.received("/pd")[0].json()
    assert got["payload"]["timestamp"] == "2024-05-01T12:00:00Z" and got["payload"]["summary"] == "[MEDIUM] R: db-1 at 97.5"

    sample = notify_test(prog, "r", "hook", env=env, policy=LOCAL)  # no record: a sample from the output columns
    assert sample["ok"] is True and sample["text"] == "sample-host at 42.5"
    hook = receiver.received("/hook")[0]
    assert hook.headers["authorization"] == "Bearer tok-abcdef"
    assert sample["sent"]["request"]["headers"]["Authorization"] == "***"
    assert "hooksecret" not in str(sample)
