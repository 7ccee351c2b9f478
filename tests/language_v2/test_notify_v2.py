"""The notifier and §9: silenced matches are never notified (§9.4); named templates and
the `alert_title`/`alert_message` aliases render (§9.5)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl

import cepdsl
from runtime.notify import Notifier
from runtime.notify.templates import record_context, render_message

RULES = """stream m (ts: timestamp, host: str, cpu: float)
channel out = file(path = "{path}")
template oncall = \"\"\"{{{{ alert_title }}}} on {{{{ host }}}}: {{{{ severity }}}}\"\"\"
rule hot "High CPU"
  from m
  where cpu > 90
  severity high
  notify out
  message template("oncall")
silence maintenance
  match host == "db-1"
  from "2026-01-01T00:00:00Z" until "2026-01-01T01:00:00Z"
"""


def test_silenced_matches_are_written_but_not_notified_and_templates_render(tmp_path: Path) -> None:
    rules = cepdsl.compile(RULES.format(path=tmp_path / "out.jsonl"))
    t0 = dt.datetime(2026, 1, 1)
    frame = pl.DataFrame(
        {
            "ts": [t0, t0 + dt.timedelta(minutes=1), t0 + dt.timedelta(hours=2)],
            "host": ["db-1", "web-1", "db-1"],
            "cpu": [95.0, 96.0, 97.0],
        }
    )
    matches = rules.replay({"m": frame})["hot"]
    assert matches["silenced"].to_list() == ["maintenance", None, None]  # all three in the output
    n = Notifier(rules.program, outbox=tmp_path / "o.sqlite")
    with n:
        assert n.submit("hot", matches) == 2
        assert n.drain(timeout=10)
    sent = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert sorted((s["message"], s["ts"]) for s in sent) == [
        ("High CPU on db-1: high", "2026-01-01T02:00:00Z"),
        ("High CPU on web-1: high", "2026-01-01T00:01:00Z"),
    ]
    assert n.stats()["silenced"] == 1


def test_alert_message_is_the_rendered_message_in_a_context_that_asks_for_it() -> None:
    rules = cepdsl.compile("stream m (ts: timestamp, host: str)\nrule r \"T\" from m message \"{{ host }} down\"\n")
    rule = rules["r"]
    first = render_message(rule, "console", {"host": "a", "ts": None, "severity": "medium"}).text
    ctx = record_context(rule, {"host": "a"}, message=first)
    assert ctx["alert_title"] == "T" and ctx["alert_message"] == "a down"
