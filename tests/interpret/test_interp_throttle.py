"""Throttle (§5.7): suppressed when an earlier emitted match of the key is in (ts − D, ts]."""

from __future__ import annotations

from tests.interpret.interp_helpers import events, records, replay


def test_throttle_window_is_open_on_the_left() -> None:
    # D = 10s; matches at 0 (emit), 5 (0 in (-5, 5]: suppressed), 10 (0 not in (0, 10]: emit),
    # 15 and 19.999999 (10 in the window: suppressed; suppressed ones do not restart the clock),
    # 20 (10 not in (10, 20]: emit).
    frame = events(*({"ts": t, "cpu": 99.0} for t in (0, 5, 10, 15, 19.999999, 20)))
    result = replay("rule hot from m where cpu > 80 throttle 10s\n", frame)
    assert records(result.matches["hot"], "ts") == [{"ts": 0}, {"ts": 10}, {"ts": 20}]
    assert result.suppressed == {"hot": 3}


def test_throttle_is_per_group_key() -> None:
    frame = events({"ts": 0, "host": "a"}, {"ts": 1, "host": "b"}, {"ts": 2, "host": "a"}, {"ts": 3, "host": "b"})
    result = replay('rule r from m where host != "" group by host throttle 1m\n', frame)
    assert records(result.matches["r"], "ts", "host") == [{"ts": 0, "host": "a"}, {"ts": 1, "host": "b"}]
    assert result.suppressed["r"] == 2


def test_equal_ts_repeat_is_suppressed() -> None:
    frame = events({"ts": 5}, {"ts": 5})
    result = replay("rule r from m where ts is not null throttle 1s\n", frame)
    assert result.matches["r"].height == 1 and result.suppressed["r"] == 1


def test_throttle_on_window_matches_uses_window_end() -> None:
    # tumbling 1m, one row per minute → matches at 60, 120, 180, 240; throttle 2m:
    # 60 emit, 120 (60 in (0, 120]) suppressed, 180 (60 not in (60, 180]) emit, 240 suppressed.
    frame = events(*({"ts": 60 * i + 1} for i in range(4)))
    result = replay("rule w from m window tumbling 1m throttle 2m\n", frame)
    assert records(result.matches["w"], "ts") == [{"ts": 60}, {"ts": 180}]
    assert result.suppressed["w"] == 2


def test_without_throttle_nothing_is_suppressed() -> None:
    result = replay("rule r from m where ts is not null\n", events({"ts": 1}, {"ts": 1}))
    assert result.matches["r"].height == 2 and result.suppressed["r"] == 0
