"""Durations, read one way everywhere: in rule files (`within 10m`), in `--source`
and `--state` specs (`interval=5s`, `backoff=500ms`) and in flags
(`--checkpoint-every 5s`).

The language's spelling is an integer with a unit (`500ms`, `30s`, `5m`, `1h`,
`7d`; LANGUAGE.md §2). Outside rule files a plain number is also read as seconds
(`--checkpoint-every 5`, what the flag took before it took units) and a fraction
is allowed (`1.5s`), because a shell user writes what `sleep` takes.
"""

from __future__ import annotations

import math
import re

#: Microseconds per unit, the language's units only.
US_PER = {"ms": 1_000, "s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000, "d": 86_400_000_000}

#: Spelled-out units, read where people write durations in prose (the seed design's JSON rules).
UNIT_WORDS = {
    "ms": "ms", "msec": "ms", "millisecond": "ms", "milliseconds": "ms",
    "s": "s", "sec": "s", "secs": "s", "second": "s", "seconds": "s",
    "m": "m", "min": "m", "mins": "m", "minute": "m", "minutes": "m",
    "h": "h", "hr": "h", "hrs": "h", "hour": "h", "hours": "h",
    "d": "d", "day": "d", "days": "d",
}  # fmt: skip

#: The language's literal: what the lexer lets through.
LITERAL = re.compile(r"([0-9]+)(ms|s|m|h|d)")
_LOOSE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h|d)?\s*")
_WORDY = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]+)?\s*")
#: Integers longer than this are past every limit; read as 10**30 (Python refuses to
#: convert strings of over 4,300 digits, and the checks quote the text, not the value).
_MAX_DIGITS = 30


class DurationError(ValueError):
    """Text that is not a duration; the message says what is."""


def parse_duration_us(text: str, *, literal: bool = False, words: bool = False) -> int:
    """`500ms` → 500_000. With `literal`, only the language's form (integer + unit);
    otherwise also plain seconds (`5`) and fractions (`1.5s`), rounded to the microsecond;
    with `words`, spelled-out units too (`2 hours`)."""
    m = LITERAL.fullmatch(text) if literal else (_WORDY if words else _LOOSE).fullmatch(text)
    unit = UNIT_WORDS.get((m.group(2) or "s").lower()) if m else None
    if m is None or unit is None:
        example = "500ms, 30s, 5m, 1h, 7d" if literal else "500ms, 5s, 1m, 1h or plain seconds"
        raise DurationError(f"not a duration: {text!r} (use e.g. {example})")
    amount = m.group(1)
    if "." not in amount:
        return (int(amount) if len(amount.lstrip("0")) <= _MAX_DIGITS else 10**_MAX_DIGITS) * US_PER[unit]
    us = float(amount) * US_PER[unit]
    return round(us) if math.isfinite(us) else 10**_MAX_DIGITS * US_PER[unit]


def parse_duration_s(text: str) -> float:
    """Seconds, for flags and specs (`5s` → 5.0, `500ms` → 0.5, `2` → 2.0)."""
    return parse_duration_us(text) / 1_000_000


def duration_text(us: int) -> str:
    """The largest exact unit: 300_000_000 → `5m`; not a whole number of ms → ValueError."""
    for unit in ("d", "h", "m", "s", "ms"):
        if us % US_PER[unit] == 0:
            return f"{us // US_PER[unit]}{unit}"
    raise ValueError(f"{us} µs is not a whole number of milliseconds: no duration literal spells it")
