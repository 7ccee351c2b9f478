"""The RFC 3339 kernel (rfc3339.py) ≡ Polars' strptime on the shape it accepts, and the
rows it leaves go the general way, so `_parse_rfc3339` gives what the general path gives."""

from __future__ import annotations

import polars as pl
from hypothesis import given
from hypothesis import strategies as st
from polars.testing import assert_series_equal

from runtime.sources import rfc3339
from runtime.sources.records import _parse_rfc3339, _parse_rfc3339_general

_FORMAT = "%Y-%m-%dT%H:%M:%S%.fZ"


@st.composite
def _near_rfc3339(draw: st.DrawFn) -> str | None:
    """Text of the common shape with every part sometimes wrong, cut short or replaced."""
    if draw(st.integers(0, 19)) == 0:
        return None
    y = draw(st.sampled_from([0, 1, 1600, 1900, 1969, 1970, 2000, 2023, 2024, 2100, 9999]))
    mo, d = draw(st.integers(0, 13)), draw(st.integers(0, 32))
    h, mi, s = draw(st.integers(0, 25)), draw(st.integers(0, 60)), draw(st.integers(0, 61))
    digits = draw(st.text("0123456789", max_size=11))
    frac = draw(st.sampled_from(["", ".", "." + digits, "." + digits, ",5", ".5x"]))
    zone = draw(st.sampled_from(["Z", "Z", "Z", "z", "+00:00", "-07:30", "", " Z"]))
    sep = draw(st.sampled_from(["T", "T", "T", " ", "t", "_"]))
    text = f"{y:04d}-{mo:02d}-{d:02d}{sep}{h:02d}:{mi:02d}:{s:02d}{frac}{zone}"
    if draw(st.integers(0, 9)) == 0:
        text = text[: draw(st.integers(0, len(text)))]
    if draw(st.integers(0, 19)) == 0:
        text = draw(st.sampled_from(["+", " ", "2023-1-01T00:00:00Z", "١٩٧٠-01-01T00:00:00Z"])) + text
    return text


@given(st.lists(_near_rfc3339(), max_size=40))
def test_accepted_values_are_what_strptime_gives(values: list[str | None]) -> None:
    s = pl.Series(values, dtype=pl.String)
    fast, status, missed = rfc3339.parse_common(s)
    want = s.str.to_datetime(_FORMAT, strict=False, time_unit="us")
    ok = pl.Series(status == rfc3339.OK)
    assert_series_equal(fast.filter(ok), want.filter(ok), check_names=False)
    assert missed == int((status == rfc3339.NOT_HANDLED).sum())
    assert (pl.Series(status == rfc3339.NULL) == s.is_null()).all()


@given(st.lists(_near_rfc3339(), max_size=40))
def test_parse_gives_what_the_general_path_gives(values: list[str | None]) -> None:
    s = pl.Series(values, dtype=pl.String)
    got, failed = _parse_rfc3339(s)
    want, want_failed = _parse_rfc3339_general(s)
    assert_series_equal(got, want)
    assert failed == want_failed


def test_examples() -> None:
    s = pl.Series(
        [
            "1970-01-01T00:00:00Z",
            "1969-12-31T23:59:59.5Z",
            "2024-02-29T23:59:59.999999Z",
            "2023-01-01T00:00:00.123456789Z",  # past µs: truncated, as strptime does
            "2023-02-29T00:00:00Z",  # no such day
            "2023-01-01T00:00:60Z",  # a leap second: left to the general path
            None,
        ]
    )
    got, status, missed = rfc3339.parse_common(s)
    assert got.cast(pl.Int64).to_list()[:4] == [0, -500_000, 1_709_251_199_999_999, 1_672_531_200_123_456]
    assert status.tolist() == [0, 0, 0, 0, 2, 2, 1] and missed == 2
    assert got.to_list()[4:] == [None, None, None]
