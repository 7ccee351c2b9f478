"""`borrow`: the same array (data, shape, strides) without an owner, usable in a kernel and
in the calls it makes, writes landing in the caller's array."""

from __future__ import annotations

import numba as nb
import numpy as np

from cepdsl.kernels.borrow import borrow


@nb.njit(cache=False)
def _add_at(a: np.ndarray, i: int, j: int, v: float) -> None:
    a[i, j] += v


@nb.njit(cache=False)
def _scale_rows(a: np.ndarray) -> float:
    b = borrow(a)
    total = 0.0
    for i in range(b.shape[0]):
        for j in range(b.shape[1]):
            _add_at(b, i, j, float(i))  # a per-element call taking the borrowed array
            total += b[i, j]
    return total


@nb.njit(cache=False)
def _shape_and_strides(a: np.ndarray) -> tuple[int, int, int, int]:
    b = borrow(a)
    return b.shape[0], b.shape[1], b.strides[0], b.strides[1]


def test_borrowed_array_is_the_callers_array() -> None:
    a = np.arange(12, dtype=np.float64).reshape(3, 4)
    want = a + np.arange(3, dtype=np.float64)[:, None]
    total = _scale_rows(a)
    assert np.array_equal(a, want)
    assert total == want.sum()


def test_borrow_keeps_shape_and_strides_of_a_view() -> None:
    base = np.zeros((6, 8))
    view = base[::2, 1::3]  # not contiguous: layout 'A'
    assert _shape_and_strides(view) == (3, 3, view.strides[0], view.strides[1])
    _scale_rows(view)
    assert np.array_equal(base[::2, 1::3], np.arange(3, dtype=np.float64)[:, None] * np.ones((3, 3)))
    assert base[1::2].sum() == 0 and base[:, 0].sum() == 0
