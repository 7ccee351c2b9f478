"""Run-time silences (§9.4, `/cep/silences`): from creation to expiry by the engine's
clock; matchers as `.cep` expressions or Alertmanager-style lists; never notified."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from cepdsl.frontend import compile_source
from runtime.dead_letter_writer import empty_dead_letters
from runtime.silence_book import SilenceRefused, compile_matcher, matcher_text
from runtime.sources.batch import Batch
from runtime.stream_loop import StreamingEngine

T0 = dt.datetime(2026, 1, 1)
T0_S = (T0 - dt.datetime(1970, 1, 1)).total_seconds()
RULES = "stream m (ts: timestamp, host: str, cpu: float)\nrule hot from m where cpu > 90 severity high\n"


class Clock:
    def __init__(self) -> None:
        self.now = T0_S

    def __call__(self) -> float:
        return self.now


class Sink:
    def __init__(self) -> None:
        self.got: list[pl.DataFrame] = []

    def submit(self, rule_id: str, matches: pl.DataFrame) -> int:
        self.got.append(matches)
        return matches.height


class Feed:
    def __init__(self) -> None:
        self.pending: list[Batch] = []

    def __iter__(self):
        return self

    def __next__(self) -> Batch:
        if not self.pending:
            raise StopIteration
        return self.pending.pop(0)

    def push(self, seconds: int, host: str) -> None:
        frame = pl.DataFrame(
            {"ts": [T0 + dt.timedelta(seconds=seconds)], "host": [host], "cpu": [95.0]},
            schema={"ts": pl.Datetime("us"), "host": pl.String, "cpu": pl.Float64},
        )
        self.pending.append(Batch("m", frame, empty_dead_letters(), {}))


def test_a_runtime_silence_holds_from_creation_to_expiry_by_the_engine_clock() -> None:
    program = compile_source(RULES)
    clock, sink, feed = Clock(), Sink(), Feed()
    outputs: list[pl.DataFrame] = []
    eng = StreamingEngine(program, {"src": feed}, notifier=sink, clock=clock, on_matches=lambda rid, f: outputs.append(f)).start()
    feed.push(0, "db-1")
    eng.step()  # before the silence
    s = eng.silences.create(program, 'host starts_with "db-"', expires_at=clock.now + 60, comment="maintenance")
    feed.push(1, "db-1")
    feed.push(2, "web-1")
    eng.step()
    eng.step()
    clock.now += 61  # expired
    feed.push(3, "db-1")
    eng.step()
    # Records of a program without file silences get the column once run-time ones exist.
    assert "silenced" not in outputs[0].columns
    assert [f["silenced"][0] for f in outputs[1:]] == [s.id, None, None]
    assert [f["host"][0] for f in outputs] == ["db-1", "db-1", "web-1", "db-1"]  # all written
    assert eng.silences.counts == {"hot": 1}
    assert s.as_json(clock.now)["state"] == "expired"


def test_expire_early_and_matcher_forms() -> None:
    program = compile_source(RULES)
    clock = Clock()
    from runtime.silence_book import SilenceBook

    book = SilenceBook(clock)
    s = book.create(
        program,
        matcher_text([{"name": "rule", "value": "hot", "op": "="}, {"name": "host", "value": "db-.*", "op": "=~"}]),
        expires_at=clock.now + 3600,
    )
    assert s.match_text == 'rule == "hot" and `host` matches "db-.*"'
    assert s.active(clock.now)
    clock.now += 1
    book.expire(s.id)
    assert not s.active(clock.now) and s.as_json(clock.now)["state"] == "expired"
    with pytest.raises(SilenceRefused, match="no rule's match record has a field `hots`"):
        compile_matcher(program, 'hots == "a"')
    with pytest.raises(SilenceRefused, match="expires_at must be later"):
        book.create(program, 'rule == "hot"', expires_at=clock.now - 1)
    with pytest.raises(SilenceRefused, match="op"):
        matcher_text([{"name": "host", "value": "x", "op": "~~"}])


def test_engine_stats_count_runtime_silences_per_rule() -> None:
    program = compile_source(RULES)
    clock, feed = Clock(), Feed()
    eng = StreamingEngine(program, {"src": feed}, clock=clock).start()
    eng.silences.create(program, 'rule == "hot"', expires_at=clock.now + 60)
    feed.push(0, "a")
    eng.step()
    assert eng.stats()["rules"]["hot"]["silenced"] == 1
