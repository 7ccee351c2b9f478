"""The pane arithmetic both window executors share (cepdsl/kernels/panes.py): values by
hand, and the same answers from Python ints, numpy arrays, Polars expressions and the
Numba-compiled copy the window kernel uses."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from cepdsl.backends.numba.window_kernels import _first_k
from cepdsl.frontend import compile_source
from cepdsl.kernels.panes import PaneGrid, first_window, last_window

S = 1_000_000
STREAM = "stream m (ts: timestamp, host: str, cpu: float)\n"


def grid(window: str) -> PaneGrid:
    return PaneGrid.of(compile_source(STREAM + f"rule r from m window {window}").rules[0])


def test_grids_of_rules() -> None:
    assert grid("tumbling 10s") == PaneGrid(10 * S, 10 * S, 10 * S)
    assert grid("sliding 50s every 20s") == PaneGrid(50 * S, 20 * S, 10 * S)
    rule = compile_source(STREAM + "rule r from m window tumbling 10s").rules[0]
    assert PaneGrid.of(rule, 30 * S, 20 * S) == PaneGrid(30 * S, 20 * S, 10 * S)
    with pytest.raises(ValueError, match=r"rule r: bad window size 10000000 / every 20000000"):
        PaneGrid.of(rule, 10 * S, 20 * S)


def test_windows_holding_a_pane_by_hand() -> None:
    g = grid("sliding 50s every 20s")  # windows [20k s, 20k + 50 s), panes of 10 s
    # The pane [40 s, 50 s) lies in the windows starting at 0, 20 and 40 s: k = 0, 1, 2.
    assert first_window(40 * S, g.size, g.every, g.pane) == 0
    assert last_window(40 * S, g.every) == 2
    # The pane [-10 s, 0) lies in k = -2 ([-40, 10)) and k = -1 ([-20, 30)).
    assert first_window(-10 * S, g.size, g.every, g.pane) == -2
    assert last_window(-10 * S, g.every) == -1
    assert g.last_end(45 * S) == 90 * S and g.last_end(-1) == 30 * S


def test_due_late_and_finish() -> None:
    g = grid("sliding 50s every 20s")
    assert g.due(None, 100 * S) == (None, 2)  # windows ending at or before 100 s: k ≤ 2 (ends 50, 70, 90)
    assert g.due(90 * S, 130 * S) == (3, 4)  # ends 110, 130
    ts = np.array([39, 40, 41, 59, 60]) * S
    assert g.late_mask(ts, None).tolist() == [False] * 5
    # Late once every window holding the row has been emitted: up to 60 s, the last ends at 90 s.
    assert g.late_mask(ts, 90 * S).tolist() == [True, True, True, True, False]
    assert g.finish_at(0, 4) == 90 * S  # pane 4 = [40 s, 50 s): its last window ends at 40 + 50 s
    assert g.finish_at(200 * S, 4) == 200 * S


def test_same_answers_from_ints_arrays_expressions_and_the_kernel() -> None:
    g = grid("sliding 1m every 20s")
    starts = np.arange(-200, 200, 7, dtype=np.int64) * S
    want = [first_window(int(t), g.size, g.every, g.pane) for t in starts]
    assert first_window(starts, g.size, g.every, g.pane).tolist() == want
    assert [_first_k(t, g.size, g.every, g.pane) for t in starts] == want
    frame = pl.DataFrame({"t": starts}).select(
        first_window(pl.col("t"), g.size, g.every, g.pane).alias("k"), g.last_end(pl.col("t")).alias("end")
    )
    assert frame["k"].to_list() == want
    assert frame["end"].to_list() == [g.last_end(int(t)) for t in starts]
