"""Silences (§9.4): the engine (any batching) ≡ the reference interpreter on generated
rules, streams and silences; semantics from §9.4's text."""

from __future__ import annotations

import datetime as dt

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

import cepdsl
from cepdsl import interpret
from tests.differential.test_windows_filters import pieces
from tests.support.frames import assert_frames_match
from tests.support.generators import cuts, streams, window_rules

MATCHES = [
    'rule == "r"',
    'g == "a"',
    'severity == "medium" and x > 2',
    "count >= 2",
    "true",
    'rule in ["r", "z"] and g starts_with "b"',
    'rule == "other"',
]
PERIODS = [
    'every "*/2 * * * *" for 30s',
    'every "* * * * *" for 10s',
    'every "0 0 * * *" for 1h',
    'from "2024-01-01T00:01:00Z" until "2024-01-01T00:03:00Z"',
    'from "2023-01-01T00:00:00Z" until "2023-01-02T00:00:00Z"',
]


@st.composite
def silences(draw: st.DrawFn, has_count: bool) -> str:
    out = []
    names = draw(st.lists(st.sampled_from(["a_s", "b_s", "c_s", "d_s"]), unique=True, min_size=1, max_size=3))
    for name in names:
        matches = [m for m in MATCHES if has_count or "count" not in m]
        out.append(f"silence {name}\n  match {draw(st.sampled_from(matches))}\n  {draw(st.sampled_from(PERIODS))}\n")
    return "\n".join(out)


@given(st.data())
def test_silences_under_any_batching_equal_interpreter(data: st.DataObject) -> None:
    rule = data.draw(window_rules(), label="rule")
    # Every field a silence reads must be some rule's: `other` has `count`, `f` has `x`.
    text = (
        rule
        + "rule other from s group by g window tumbling 1m having count() >= 1\nrule f from s where n > 3\n"
        + data.draw(silences(True), label="silences")
    )
    frame = data.draw(streams(), label="stream")
    bounds = data.draw(cuts(frame.height), label="cuts")
    rules = cepdsl.compile(text)
    expected = interpret.run(rules.program, {"s": frame})
    session = rules.session()
    outs = [session.push("s", b) for b in pieces(frame, bounds)] + [session.flush()]
    for rid in ("r", "other", "f"):
        got = pl.concat([o[rid] for o in outs])
        assert_frames_match(got, expected[rid], ordered=True, label=f"{text} cuts={bounds}")
        assert session.stats()[rid]["silenced"] == got["silenced"].is_not_null().sum()


T0 = dt.datetime(2026, 1, 1)
RULES = """stream m (ts: timestamp, host: str, cpu: float)
rule disk_full from m where cpu > 90 severity high
rule io_slow from m where cpu > 50
silence nightly_backup "Backups saturate the disks"
  match rule in ["disk_full", "io_slow"] and host starts_with "db-"
  every "0 2 * * *" for 2h
silence z_all
  match severity == "high"
  from "2026-01-01T02:30:00Z" until "2026-01-01T03:00:00Z"
"""


def test_section_9_4_example_half_open_periods_and_first_by_name() -> None:
    ts = [
        T0 + dt.timedelta(hours=1, minutes=59),
        T0 + dt.timedelta(hours=2),
        T0 + dt.timedelta(hours=2, minutes=45),
        T0 + dt.timedelta(hours=3, minutes=59, seconds=59),
        T0 + dt.timedelta(hours=4),
        T0 + dt.timedelta(hours=2, minutes=50),
    ]
    hosts = ["db-1", "db-1", "db-1", "db-2", "db-1", "web-1"]
    frame = pl.DataFrame({"ts": ts, "host": hosts, "cpu": [95.0] * 6})
    rules = cepdsl.compile(RULES)
    out = rules.replay({"m": frame})
    disk = out["disk_full"].sort("ts")
    # [02:00, 04:00) for db-*; the 02:45 match is in both silences: the first by name wins;
    # web-1 at 02:50 is only in z_all ([02:30, 03:00), severity high).
    assert disk.select("host", "silenced").rows() == [
        ("db-1", None),
        ("db-1", "nightly_backup"),
        ("db-1", "nightly_backup"),
        ("web-1", "z_all"),
        ("db-2", "nightly_backup"),
        ("db-1", None),
    ]
    assert out["io_slow"].sort("ts")["silenced"].to_list() == [None, "nightly_backup", "nightly_backup", None, "nightly_backup", None]
    assert interpret.run(rules.program, {"m": frame})["disk_full"].sort("ts")["silenced"].equals(disk["silenced"])
    session = rules.session()
    session.push("m", frame.sort("ts"))
    session.flush()
    assert session.stats()["disk_full"]["silenced"] == 4 and session.stats()["io_slow"]["silenced"] == 3


def test_without_silences_records_have_no_silenced_column() -> None:
    rules = cepdsl.compile(RULES.split("silence")[0])
    assert "silenced" not in rules["disk_full"].output_schema
