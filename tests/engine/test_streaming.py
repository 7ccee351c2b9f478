"""runtime.stream_loop: the streaming loop, driven by tests through feed/step with a fake clock."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from cepdsl.engine import Session
from cepdsl.frontend import compile_source
from runtime.dead_letter_writer import dead_letters, empty_dead_letters
from runtime.sources.batch import Batch
from runtime.state import MemoryStore
from runtime.stream_loop import OFFSETS_KEY, StreamingEngine
from tests.support.fakes import echo_executors

RULES = """
stream m (ts: timestamp, host: str, cpu: float)

rule hot from m where cpu > 80
"""
LATE_RULES = RULES.replace("cpu: float)", "cpu: float)\n  lateness 10s")
T0 = dt.datetime(2024, 1, 1)
T0_S = (T0 - dt.datetime(1970, 1, 1)).total_seconds()


class Clock:
    def __init__(self, now: float = T0_S) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Sink:
    def __init__(self) -> None:
        self.got: list[tuple[str, pl.DataFrame]] = []

    def submit(self, rule_id: str, matches: pl.DataFrame) -> int:
        self.got.append((rule_id, matches))
        return matches.height

    def rows(self, rule_id: str) -> pl.DataFrame:
        frames = [f for r, f in self.got if r == rule_id]
        return pl.concat(frames) if frames else pl.DataFrame()


class AckingSource:
    def __init__(self, batches: list[Batch]) -> None:
        self.batches = batches
        self.acked: list[Batch] = []

    def __iter__(self):
        return iter(self.batches)

    def ack(self, batch: Batch) -> None:
        self.acked.append(batch)


def batch(seconds: list[float], cpus: list[float], pos: int, dead: pl.DataFrame | None = None) -> Batch:
    frame = pl.DataFrame(
        {"ts": [T0 + dt.timedelta(seconds=s) for s in seconds], "host": ["a"] * len(seconds), "cpu": cpus},
        schema={"ts": pl.Datetime("us"), "host": pl.String, "cpu": pl.Float64},
    )
    return Batch("m", frame, dead if dead is not None else empty_dead_letters(), {"pos": pos})


def test_batches_flow_to_the_notifier_and_dead_letters_to_their_sink() -> None:
    program = compile_source(RULES)
    sink, dead = Sink(), []
    bad = dead_letters("m", ["bad json"], ["{oops"])
    src = AckingSource([batch([0, 1], [90.0, 10.0], 1), batch([2], [95.0], 2, dead=bad)])
    eng = StreamingEngine(program, {"src": src}, notifier=sink, dead_letters=dead.append, clock=Clock()).start()
    assert eng.step().batches == 1 and eng.step().batches == 1 and eng.step().batches == 0
    assert sink.rows("hot")["cpu"].to_list() == [90.0, 95.0]
    assert pl.concat(dead)["reason"].to_list() == ["bad json"]
    assert len(src.acked) == 2  # without a store, a processed batch is done
    assert eng.stats()["engine"]["rows"] == 3 and eng.stats()["rules"]["hot"]["matches"] == 2


def test_wall_clock_moves_the_watermark_of_a_silent_stream() -> None:
    program = compile_source(LATE_RULES)
    built, make = echo_executors()
    clock, sink = Clock(T0_S), Sink()
    eng = StreamingEngine(
        program,
        {"src": [batch([0], [90.0], 1)]},
        notifier=sink,
        clock=clock,
        idle_after_s=1.0,
        session=Session(program, executors=make),
    ).start()
    eng.step()
    assert sink.rows("hot").height == 0  # held: lateness 10 s
    clock.now += 5
    eng.step()
    assert eng.session.progress("m").watermark_us == int((T0_S - 5) * 1e6)
    assert sink.rows("hot").height == 0
    clock.now += 10
    eng.step()
    assert sink.rows("hot")["ts"].to_list() == [T0]


def test_checkpoint_and_restart_resume_state_and_offsets() -> None:
    program = compile_source(RULES)
    store, clock = MemoryStore(), Clock()
    src = AckingSource([batch([0], [90.0], 1), batch([30], [99.0], 2)])
    eng = StreamingEngine(program, {"src": src}, notifier=Sink(), store=store, clock=clock, checkpoint_every_s=60)
    eng.start()
    eng.step()
    assert src.acked == []  # not stored yet
    clock.now += 61
    assert eng.step().checkpointed
    assert len(src.acked) == 2
    assert store.load(OFFSETS_KEY).offsets == {"src": {"pos": 2}}
    assert {"hot", "stream:m", OFFSETS_KEY} <= set(store.rule_ids())

    opened_with = {}

    def opener(offsets):
        opened_with.update(offsets)
        return {"src": [batch([40], [85.0], 3)]}

    sink = Sink()
    again = StreamingEngine(program, opener, notifier=sink, store=store, clock=clock).start()
    assert opened_with == {"src": {"pos": 2}}
    assert again.session.stats()["hot"]["matches"] == 2  # counters came back
    again.step()
    assert sink.rows("hot")["cpu"].to_list() == [85.0]
    assert again.session.progress("m").max_ts_us == int((T0_S + 40) * 1e6)


def test_hot_reload_reports_a_bad_file_and_keeps_running(tmp_path: Path) -> None:
    program = compile_source(RULES)
    sink = Sink()
    eng = StreamingEngine(program, {"src": [batch([0], [90.0], 1), batch([1], [91.0], 2)]}, notifier=sink, clock=Clock())
    eng.start().step()
    bad = tmp_path / "bad.cep"
    bad.write_text(RULES + "rule broken from nowhere\n")
    result = eng.reload(bad)
    assert not result.ok and "nowhere" in result.error
    good = tmp_path / "good.cep"
    good.write_text(RULES.replace("cpu > 80", "cpu > 90") + "\nrule all from m\n")
    result = eng.reload(good)
    assert result.ok and result.report.changed == ("hot",) and result.report.added == ("all",)
    eng.step()
    assert sink.rows("hot")["cpu"].to_list() == [90.0, 91.0]
    assert sink.rows("all")["cpu"].to_list() == [91.0]


def test_run_reads_sources_in_threads_until_they_are_exhausted() -> None:
    program = compile_source(LATE_RULES)
    sink, store = Sink(), MemoryStore()
    batches = [batch([i], [81.0 + i], i) for i in range(20)]
    eng = StreamingEngine(program, {"src": batches}, notifier=sink, store=store, clock=Clock())
    eng.run(poll_s=0.01)
    assert sink.rows("hot")["cpu"].to_list() == [81.0 + i for i in range(20)]
    # every source ended for good: held rows were flushed; final checkpoint on the way out
    assert store.load(OFFSETS_KEY).offsets == {"src": {"pos": 19}}
    assert eng.errors == []


def test_a_restored_silent_stream_still_follows_the_wall_clock() -> None:
    program = compile_source(LATE_RULES)
    store, clock = MemoryStore(), Clock()
    first = StreamingEngine(program, {"src": [batch([0], [95.0], 1)]}, notifier=Sink(), store=store, clock=clock)
    first.start().step()
    first.close()  # checkpoint: the row is still held (lateness 10 s)
    sink = Sink()
    again = StreamingEngine(program, {"src": []}, notifier=sink, store=store, clock=clock).start()
    clock.now += 30  # nothing ever arrives again
    again.step()
    assert sink.rows("hot")["cpu"].to_list() == [95.0]


def test_a_failing_source_is_reported_and_the_others_keep_running() -> None:
    program = compile_source(RULES)

    def broken():
        yield batch([0], [90.0], 1)
        raise OSError("disk gone")

    sink = Sink()
    eng = StreamingEngine(
        program, {"bad": broken(), "good": [batch([1], [91.0], 1), batch([2], [92.0], 2)]}, notifier=sink, clock=Clock()
    )
    eng.run(poll_s=0.01)
    assert eng.errors == ["source bad: disk gone"]
    assert sorted(sink.rows("hot")["cpu"].to_list()) == [90.0, 91.0, 92.0]


class PushCounter(Session):
    pushes: list[int] = []

    def push(self, stream, frame):  # type: ignore[no-untyped-def]
        PushCounter.pushes.append(frame.height)
        return super().push(stream, frame)


def test_batches_that_queued_up_are_pushed_as_one_and_each_is_still_acked() -> None:
    program = compile_source(RULES)
    sink, dead = Sink(), []
    bad = dead_letters("m", ["bad json"], ["{oops"])
    src = AckingSource([batch([0, 1], [90.0, 10.0], 1), batch([2], [95.0], 2, dead=bad), batch([3], [99.0], 3)])
    eng = StreamingEngine(program, {"src": src}, notifier=sink, dead_letters=dead.append, clock=Clock()).start()
    eng.session.__class__ = PushCounter
    PushCounter.pushes = []
    for b in src.batches:  # what a source thread would have queued while the engine was busy
        eng._inbox.put(("src", b))
    eng._threads.append(None)  # type: ignore[arg-type]  # threaded mode: step drains the inbox
    report = eng.step()
    assert report.batches == 3 and report.rows == 4
    assert PushCounter.pushes == [4]  # one push for the three batches
    assert sink.rows("hot")["cpu"].to_list() == [90.0, 95.0, 99.0]
    assert pl.concat(dead)["reason"].to_list() == ["bad json"]
    assert [b.offsets["pos"] for b in src.acked] == [1, 2, 3] and eng.offsets["src"] == {"pos": 3}


def test_with_source_threads_acks_run_on_their_own_thread_and_all_land_by_close() -> None:
    program = compile_source(RULES)
    acked_on: list[str] = []

    class ThreadNoting(AckingSource):
        def ack(self, batch: Batch) -> None:
            import threading

            acked_on.append(threading.current_thread().name)
            super().ack(batch)

    src = ThreadNoting([batch([i], [float(i)], i + 1) for i in range(20)])
    eng = StreamingEngine(program, {"src": src}, notifier=Sink(), clock=Clock(), store=MemoryStore(), checkpoint_every_s=0.0)
    eng.run(poll_s=0.01)
    assert [b.offsets["pos"] for b in src.acked] == list(range(1, 21))  # every batch, in order, by close()
    assert set(acked_on) == {"cep-ack"}


def test_a_far_future_event_is_a_dead_letter_and_does_not_move_time() -> None:
    """Issue 12 item 5: before, one row at 9999-12-31 (even one failing `where`) moved the
    watermark so every later row was late."""
    program = compile_source(RULES)
    sink, dead = Sink(), []
    future = pl.DataFrame(
        {"ts": [dt.datetime(9999, 12, 31), T0 + dt.timedelta(hours=2)], "host": ["x", "y"], "cpu": [1.0, 99.0]},
        schema={"ts": pl.Datetime("us"), "host": pl.String, "cpu": pl.Float64},
    )
    batches = [batch([0], [90.0], 1), Batch("m", future, empty_dead_letters(), {"pos": 2}), batch([1], [91.0], 3)]
    eng = StreamingEngine(program, {"src": batches}, notifier=sink, clock=Clock(), dead_letters=dead.append)
    eng.start()
    for _ in range(3):
        eng.step()
    assert sink.rows("hot")["cpu"].to_list() == [90.0, 91.0]  # the row after the future ones is not late
    reasons = [r for f in dead for r in f["reason"].to_list()]
    assert len(reasons) == 2 and all("ahead of the wall clock" in r and "1h" in r for r in reasons)
    assert eng.session.progress("m").max_ts_us < int((T0_S + 3600) * 1e6)
    # The bound is configurable; None turns it off (replay keeps its semantics: it never applies there).
    eng2 = StreamingEngine(
        program, {"src": [Batch("m", future, empty_dead_letters(), {})]}, notifier=Sink(), clock=Clock(), max_future_s=3 * 3600.0
    )
    eng2.start().step()
    assert eng2.counters["dead_letters"] == 1 and eng2.counters["rows"] == 1
