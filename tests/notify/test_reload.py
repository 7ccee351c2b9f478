"""A hot reload that adds a rule and a channel: the notifier knows both afterwards."""

from __future__ import annotations

import polars as pl
import pytest

from cepdsl.frontend import compile_source
from runtime.notify import ChannelConfigError, Notifier

BASE = "stream s (ts: timestamp, x: int)\nchannel c = console()\nrule a from s where x > 0 notify c\n"


def test_reload_adds_rules_and_channels(tmp_path, capsys) -> None:
    import io

    out = io.StringIO()
    n = Notifier(compile_source(BASE), outbox=tmp_path / "o.sqlite", console=out)
    frame = pl.DataFrame({"rule": ["b"], "ts": [pl.datetime(2026, 1, 1)], "severity": ["medium"], "x": [5]})
    with pytest.raises(KeyError):
        n.submit("b", frame)
    n.reload(
        compile_source(BASE + 'channel d = file(path = "' + str(tmp_path / "d.jsonl") + '")\nrule b from s where x > 1 notify d\n')
    )
    with n:
        assert n.submit("b", pl.select(rule=pl.lit("b"), ts=pl.datetime(2026, 1, 1), severity=pl.lit("medium"), x=pl.lit(5))) == 1
        assert n.drain(timeout=10)
    lines = (tmp_path / "d.jsonl").read_text().splitlines()
    assert len(lines) == 1 and '"x": 5' in lines[0].replace('"x":5', '"x": 5')


def test_reload_with_a_missing_secret_keeps_the_running_configuration(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("NOPE_URL", raising=False)
    n = Notifier(compile_source(BASE), outbox=tmp_path / "o.sqlite")
    with pytest.raises(ChannelConfigError):
        n.reload(compile_source(BASE + 'channel w = webhook(url = env("NOPE_URL"))\nrule b from s where x > 1 notify w\n'))
    assert n.program.rules[0].id == "a" and len(n.program.rules) == 1
