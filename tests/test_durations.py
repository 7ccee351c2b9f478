"""One duration reader for rule files, source/state specs and flags (cepdsl/durations.py)."""

from __future__ import annotations

import pytest

from cepdsl import durations
from cepdsl.compat import parse_duration_us as compat_duration_us
from cepdsl.frontend import check_source
from runtime.sources import SourceSpecError, parse_duration_s
from runtime.state.spec import StateSpecError, open_store


@pytest.mark.parametrize(
    ("text", "us"),
    [
        ("500ms", 500_000),
        ("5s", 5_000_000),
        ("1m", 60_000_000),
        ("1h", 3_600_000_000),
        ("7d", 7 * 86_400_000_000),
        ("5", 5_000_000),
        ("1.5s", 1_500_000),
        (" 2m ", 120_000_000),
    ],
)
def test_flags_and_specs_read_units_and_plain_seconds(text: str, us: int) -> None:
    assert durations.parse_duration_us(text) == us
    assert parse_duration_s(text) == us / 1e6


@pytest.mark.parametrize("text", ["5", "1.5s", "5 s", "soon", "", "-1s", "5sec"])
def test_the_language_takes_only_integer_and_unit(text: str) -> None:
    with pytest.raises(durations.DurationError):
        durations.parse_duration_us(text, literal=True)


def test_the_same_reader_everywhere() -> None:
    program, diags = check_source(
        "stream s (ts: timestamp, x: int)\nrule r from s group by x window tumbling 90s having count() > 1\n"
    )
    assert not diags and program.rules[0].window.size_us == durations.parse_duration_us("90s")
    assert compat_duration_us("2 hours") == durations.parse_duration_us("2h") == durations.parse_duration_us("2 hours", words=True)
    with pytest.raises(SourceSpecError, match="not a duration: 'soon'"):
        parse_duration_s("soon")
    with pytest.raises(StateSpecError, match="not a duration"):
        open_store("redis://127.0.0.1:1/0?backoff=soon")
    assert durations.duration_text(90_000_000) == "90s" and durations.duration_text(3_600_000_000) == "1h"


def test_absurd_lengths_do_not_crash() -> None:
    assert durations.parse_duration_us("9" * 5000 + "s", literal=True) == 10**30 * 1_000_000
    assert durations.parse_duration_us("9" * 500 + ".5s") == 10**30 * 1_000_000
