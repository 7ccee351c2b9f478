"""§9.3 in the streaming loop: episodes survive a checkpoint and restart, the wall clock
resolves an episode on a silent stream, and a hot reload that changes a firing rule
sends its resolved record to the notifier."""

from __future__ import annotations

import datetime as dt

import polars as pl

from cepdsl.frontend import compile_source
from runtime.state import MemoryStore
from runtime.stream_loop import StreamingEngine
from tests.engine.test_streaming import T0, T0_S, Clock, Sink, batch

RULES = """
stream m (ts: timestamp, host: str, cpu: float)

rule hot from m group by host window tumbling 10s having avg(cpu) > 80
  resolve
"""


def rows_of(sink: Sink, rule_id: str) -> pl.DataFrame:
    # Records gain `silenced` once a run-time silence exists: frames of both shapes.
    return pl.concat([f for r, f in sink.got if r == rule_id], how="diagonal_relaxed")


def states(frame: pl.DataFrame) -> list[tuple[str, float]]:
    return [(s, (t - T0).total_seconds()) for s, t in zip(frame["state"], frame["ts"], strict=True)]


def test_episode_survives_a_restart_and_resolves_after_it() -> None:
    store, clock = MemoryStore(), Clock()
    sink = Sink()
    first = StreamingEngine(
        compile_source(RULES), {"src": [batch([1, 5, 12], [90, 90, 95], 1)]}, notifier=sink, store=store, clock=clock
    ).start()
    first.step()
    first.checkpoint()
    assert states(sink.rows("hot")) == [("firing", 10.0)]
    second = StreamingEngine(
        compile_source(RULES), {"src": [batch([25, 31], [10, 10], 2)]}, notifier=sink, store=store, clock=clock
    ).start()
    second.step()
    # Window [10, 20) held (95); [20, 30) holds 10: not holding → resolved at 30 s, with the
    # episode that fired before the restart.
    got = sink.rows("hot")
    assert states(got) == [("firing", 10.0), ("resolved", 30.0)]
    assert got["firing_since"].to_list() == [T0 + dt.timedelta(seconds=10)] * 2


def test_wall_clock_resolves_an_episode_on_a_silent_stream() -> None:
    clock, sink = Clock(), Sink()
    engine = StreamingEngine(
        compile_source(RULES), {"src": [batch([1, 5], [90, 90], 1)]}, notifier=sink, clock=clock, idle_after_s=1.0
    ).start()
    engine.step()
    clock.now = T0_S + 15  # silent: the watermark follows the clock to 15 s
    engine.step()
    assert states(sink.rows("hot")) == [("firing", 10.0)]
    clock.now = T0_S + 25  # window [10, 20) has no rows of host a: resolved at 20 s
    engine.step()
    assert states(sink.rows("hot")) == [("firing", 10.0), ("resolved", 20.0)]


def test_changing_a_firing_rule_sends_its_resolved_record() -> None:
    clock, sink = Clock(), Sink()
    engine = StreamingEngine(compile_source(RULES), {"src": [batch([1, 5, 12], [90, 90, 95], 1)]}, notifier=sink, clock=clock).start()
    engine.step()
    result = engine.reload(compile_source(RULES.replace("> 80", "> 99")))
    assert result.ok and result.report.changed == ("hot",)
    got = sink.rows("hot")
    assert states(got) == [("firing", 10.0), ("resolved", 12.0)]  # at the stream's watermark
    assert got["resolved_at"].to_list()[1] == got["ts"].to_list()[1]


def test_a_run_time_silence_of_the_firing_record_holds_its_resolved_record_too() -> None:
    clock, sink = Clock(), Sink()
    program = compile_source(RULES)
    engine = StreamingEngine(
        program, {"src": [batch([1, 5, 12], [90, 90, 10], 1), batch([25], [10], 2)]}, notifier=sink, clock=clock
    ).start()
    engine.silences.create(program, 'rule == "hot"', expires_at=T0_S + 3600)
    engine.step()  # firing at 10 s, silenced
    engine.silences.expire(engine.silences.list()[0].id)
    engine.step()  # resolved at 20 s: no silence active now, but its firing was silenced
    got = rows_of(sink, "hot")
    assert states(got) == [("firing", 10.0), ("resolved", 20.0)]
    assert got["silenced"].to_list()[0] is not None
    assert got["silenced"].to_list()[1] == got["silenced"].to_list()[0]


def test_a_run_time_silence_does_not_hold_the_resolved_record_of_a_notified_firing() -> None:
    clock, sink = Clock(), Sink()
    program = compile_source(RULES)
    engine = StreamingEngine(
        program, {"src": [batch([1, 5, 12], [90, 90, 10], 1), batch([25], [10], 2)]}, notifier=sink, clock=clock
    ).start()
    engine.step()  # firing at 10 s, notified
    engine.silences.create(program, 'rule == "hot"', expires_at=T0_S + 3600)
    engine.step()  # resolved at 20 s while a silence is active: it follows its firing
    got = rows_of(sink, "hot")
    assert states(got) == [("firing", 10.0), ("resolved", 20.0)]
    assert got["silenced"].to_list()[-1] is None


def test_the_replay_driver_in_chunks_equals_the_interpreter(tmp_path) -> None:  # noqa: ANN001
    import numpy as np

    from cepdsl import interpret
    from runtime.replay import replay
    from tests.support.frames import assert_frames_match

    text = """stream m (ts: timestamp, host: str, cpu: float)
rule hot from m group by host window sliding 2m every 1m having avg(cpu) > 60
  for 1m
  resolve after 2m
rule sched from m group by host schedule "* * * * *" over 2m having max(cpu) > 90
  resolve
rule quiet from m group by host absent for 90s
  resolve
"""
    rng = np.random.default_rng(3)
    n = 2000
    t = np.sort(rng.integers(0, 3 * 3600, n)) * 1_000_000 + 1_767_225_600_000_000
    df = pl.DataFrame(
        {"ts": pl.Series(t).cast(pl.Datetime("us")), "host": rng.choice(["a", "b", "c", "d"], n), "cpu": rng.uniform(0, 100, n)}
    )
    df.write_parquet(tmp_path / "m.parquet")
    program = compile_source(text)
    replay(program, {"m": [tmp_path / "m.parquet"]}, tmp_path / "out", batch_rows=300)
    expected = interpret.run(program, {"m": df})
    for rid in ("hot", "sched", "quiet"):
        got = pl.read_parquet(tmp_path / "out" / f"{rid}.parquet")
        assert got.height > 0, rid
        assert_frames_match(got, expected[rid], label=rid)
