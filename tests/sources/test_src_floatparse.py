"""Eisel-Lemire (floatparse.py) gives Python's float() exactly whenever it says it decided."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from runtime.sources import floatparse

_mantissas = st.one_of(
    st.integers(0, 10**19 - 1),
    st.integers(0, 2**64 - 1).filter(lambda m: m < 10**19),
    st.sampled_from([0, 1, 5, 9, 2**53 - 1, 2**53, 2**53 + 1, 10**15, 10**18, 10**19 - 1, 4503599627370497]),
)
_exponents = st.one_of(st.integers(-30, 30), st.integers(-360, 360), st.sampled_from([-342, -325, -324, -308, -307, 22, 23, 308, 309]))


@given(st.lists(st.tuples(_mantissas, _exponents, st.booleans()), min_size=1, max_size=50))
def test_decided_values_are_float_of_the_text(cases: list[tuple[int, int, bool]]) -> None:
    mans = np.array([m for m, _, _ in cases], dtype=np.uint64)
    exps = np.array([e for _, e, _ in cases], dtype=np.int64)
    negs = np.array([n for _, _, n in cases], dtype=np.bool_)
    out = np.empty(len(cases))
    ok = floatparse.parse_many(mans, exps, negs, out)
    for (m, e, n), got, decided in zip(cases, out.tolist(), ok.tolist()):
        want = float(f"{'-' if n else ''}{m}e{e}")
        if decided:
            assert got == want and np.signbit(got) == np.signbit(want), (m, e, n, got, want)


def test_common_values_are_decided() -> None:
    """Undecided is for halfway cases, subnormals and overflow, not for everyday numbers."""
    texts = [(4922363202795087, -14), (1, 0), (25, -1), (17976931348623157, 292), (22250738585072014, -324)]
    out = np.empty(len(texts))
    ok = floatparse.parse_many(
        np.array([m for m, _ in texts], dtype=np.uint64), np.array([e for _, e in texts]), np.zeros(len(texts), bool), out
    )
    assert ok.tolist() == [True, True, True, True, True]
    assert out.tolist() == [49.22363202795087, 1.0, 2.5, 1.7976931348623157e308, 2.2250738585072014e-308]
