"""Times in test files: RFC 3339 text or an offset like `+90s` from the file's `start`."""

from __future__ import annotations

import datetime as dt
import re

_UNITS_US = {"ms": 1_000, "s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000, "d": 86_400_000_000}
_PART = r"(\d+(?:\.\d+)?)(ms|s|m|h|d)"
_OFFSET = re.compile(rf"^([+-])((?:{_PART})+)$")
_PARTS = re.compile(_PART)

EPOCH = dt.datetime(1970, 1, 1)


class TimeTextError(ValueError):
    pass


def parse_offset_us(text: str) -> int | None:
    """`+90s`, `+1m30s`, `-500ms`, `+1.5h` → microseconds; None when `text` is not an offset."""
    m = _OFFSET.match(text.strip())
    if m is None:
        return None
    total = 0.0
    for number, unit in _PARTS.findall(m.group(2)):
        total += float(number) * _UNITS_US[unit]
    us = round(total)
    return -us if m.group(1) == "-" else us


def looks_like_offset(text: str) -> bool:
    return text.strip()[:1] in ("+", "-")


def to_utc_naive(value: dt.datetime) -> dt.datetime:
    """Naive UTC, the engine's reading of time (LANGUAGE.md §3.1: naive = UTC)."""
    if value.tzinfo is not None:
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value


def parse_instant(text: str) -> dt.datetime:
    """RFC 3339 text (a space for `T`, no offset = UTC) → naive UTC."""
    try:
        return to_utc_naive(dt.datetime.fromisoformat(text.strip()))
    except ValueError:
        raise TimeTextError(
            f"`{text}` is not an RFC 3339 time (e.g. 2026-01-01T00:00:00Z) or an offset from `start` (e.g. +90s)"
        ) from None


def resolve_time(value: object, start: dt.datetime | None) -> dt.datetime:
    """A time as written in a test file → naive UTC datetime."""
    if isinstance(value, dt.datetime):
        return to_utc_naive(value)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise TimeTextError(f"expected a time (RFC 3339 or an offset like +90s), got {value!r}")
    if isinstance(value, (int, float)):
        return EPOCH + dt.timedelta(milliseconds=value)  # epoch milliseconds, as in JSON input (§3.1)
    text = value.strip()
    if looks_like_offset(text):
        us = parse_offset_us(text)
        if us is None:
            raise TimeTextError(f"`{text}` is not an offset: write a number with a unit, e.g. +90s, +1m30s, +500ms")
        if start is None:
            raise TimeTextError(f"`{text}` is an offset, but the test file has no `start` to count from")
        return start + dt.timedelta(microseconds=us)
    return parse_instant(text)


def describe_time(value: dt.datetime | None, start: dt.datetime | None) -> str:
    """A time as a reader of the test file would write it: an offset from `start` when there is one."""
    if value is None:
        return "null"
    if start is None:
        return value.isoformat() + "Z"
    us = (value - start) // dt.timedelta(microseconds=1)
    sign = "-" if us < 0 else "+"
    us = abs(us)
    parts = []
    for unit in ("d", "h", "m", "s"):
        size = _UNITS_US[unit]
        if us >= size:
            parts.append(f"{us // size}{unit}")
            us %= size
    if us:
        parts.append(f"{us // 1000}ms" if us % 1000 == 0 else f"{us / 1e6:g}s")
    return sign + ("".join(parts) or "0s")
