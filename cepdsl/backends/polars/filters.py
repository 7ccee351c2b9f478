"""Filter rules (§5.1): one match per released row; the engine already applied `where`."""

from __future__ import annotations

import polars as pl

from cepdsl.backends.base import TIME, Executor, Progress, finalize


class FilterExecutor(Executor):
    """Stateless: every row the engine releases is a match at the row's event time."""

    def process(self, rows: pl.DataFrame, progress: Progress) -> pl.DataFrame:
        if rows.height == 0:
            return self.rule.empty_output()
        return finalize(self.rule, rows.with_columns(pl.col(TIME).alias("ts")))
