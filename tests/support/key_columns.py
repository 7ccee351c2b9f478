"""Random group-key frames for the key-coding tests: strings around the 12-byte inline
limit of Arrow string views, floats with -0.0 and NaN, ints and bools, each with nulls."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import polars as pl


def key_frame(seed: int, words: Sequence[str | None], max_rows: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, max_rows))
    return pl.DataFrame(
        [
            pl.Series("s", [words[i] for i in rng.integers(0, len(words), n)], dtype=pl.String),
            pl.Series("f", [[0.0, -0.0, math.nan, 1.5, None][i] for i in rng.integers(0, 5, n)], dtype=pl.Float64),
            pl.Series("i", [[1, 2, None, -5][i] for i in rng.integers(0, 4, n)], dtype=pl.Int64),
            pl.Series("b", [[True, False, None][i] for i in rng.integers(0, 3, n)], dtype=pl.Boolean),
        ]
    )
