"""Source spec strings."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.sources import SourceSpecError, open_source, parse_duration_s
from runtime.sources.http_poll import HttpPollSource
from runtime.sources.jsonl import JsonlSource
from runtime.sources.parquet_dir import ParquetDirSource
from runtime.sources.redis_streams import RedisStreamSource

from src_helpers import plan

S = plan(ts="timestamp", v="int")


def test_durations() -> None:
    assert parse_duration_s("500ms") == 0.5 and parse_duration_s("5s") == 5 and parse_duration_s("2m") == 120
    assert parse_duration_s("1.5") == 1.5
    with pytest.raises(SourceSpecError):
        parse_duration_s("soon")


def test_kinds(tmp_path: Path) -> None:
    j = open_source(f"jsonl:{tmp_path}/e.jsonl?follow=false&max_rows=5&max_delay=2s", S)
    assert isinstance(j, JsonlSource) and not j.follow and j.max_rows == 5 and j.max_delay_s == 2.0
    assert j.flush_when_caught_up  # the default: cut a batch once nothing more is waiting
    assert not open_source(f"jsonl:{tmp_path}/e.jsonl?eager=false", S).flush_when_caught_up
    assert isinstance(open_source("jsonl:-", S, stdin=0), JsonlSource)
    d = open_source(f"parquet-dir:{tmp_path}?poll=250ms", S)
    assert isinstance(d, ParquetDirSource) and d.poll_s == 0.25
    r = open_source("redis://127.0.0.1:6399/2?stream=events&group=cep&consumer=c9&claim_idle=30s", S)
    assert isinstance(r, RedisStreamSource) and (r.key, r.group, r.consumer, r.claim_idle_ms) == ("events", "cep", "c9", 30_000)
    h = open_source("http://127.0.0.1:8080/metrics?interval=5s", S)
    assert isinstance(h, HttpPollSource) and h.interval_s == 5.0 and h.url == "http://127.0.0.1:8080/metrics"
    h.close()


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("events.jsonl", "no kind"),
        ("kafka://x", "unknown source kind"),
        ("jsonl:", "missing path"),
        ("jsonl:/x?bogus=1", "unknown option"),
        ("redis://127.0.0.1:6379/0", r"\?stream="),
        ("parquet-dir:/x?poll=often", "not a duration"),
    ],
)
def test_bad_specs(spec: str, match: str) -> None:
    with pytest.raises(SourceSpecError, match=match):
        open_source(spec, S)
