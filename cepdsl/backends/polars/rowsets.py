"""The rows each rule of a stream sees: every `where` of the stream in one pass.

Profiled on 10M rows (docs/windows.md, bench/README.md): a `filter` per rule costs a
full pass over every column per rule, and `fill_null(false)` on each predicate is a
pass of its own.  Here:

* one rule: its predicate → `arg_true` → gather, no `fill_null` (`arg_true`, like
  `filter`, skips null: `where` keeps only true);
* many rules: one `select` of every predicate (Polars' CSE computes a condition
  shared by several rules once), then per rule `arg_true` and a gather of only the
  matching rows — no per-rule pass over the frame;
* rules without `where` get the frame itself.

String fields may arrive dictionary-encoded (Categorical/Enum: equality against a
literal compares codes, ~40x faster than on String).  Predicates run on them as
they are; the rows handed to executors have them cast back to String (the engine's
dtype), so executors and match records never see the encoding.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from cepdsl.backends.polars.expressions import MANY_OPTS, compile_expr
from cepdsl.plan import TExpr


def _full_length(e: pl.Expr) -> pl.Expr:
    # A predicate reading no column (`where true`) is a scalar: spread it over the frame.
    return e if e.meta.root_names() else pl.repeat(e, pl.len())


def decode(frame: pl.DataFrame) -> pl.DataFrame:
    """Categorical/Enum columns back to String (no-op, and no copy, when there are none)."""
    enc = [c for c, dt in frame.schema.items() if isinstance(dt, (pl.Categorical, pl.Enum))]
    return frame.with_columns(pl.col(enc).cast(pl.String)) if enc else frame


class WhereSet:
    """The `where` of each rule of one stream (None: no `where`)."""

    def __init__(self, wheres: Sequence[TExpr | None]) -> None:
        self.wheres = list(wheres)
        self._present = [i for i, w in enumerate(self.wheres) if w is not None]
        self._exprs = [_full_length(compile_expr(self.wheres[i])).alias(f"__w{i}") for i in self._present]  # type: ignore[arg-type]

    def masks(self, rows: pl.DataFrame) -> list[pl.Series | None]:
        """Per rule, its predicate over `rows` (null where the predicate is null), or None."""
        out: list[pl.Series | None] = [None] * len(self.wheres)
        if not self._exprs:
            return out
        frame = rows.lazy().select(self._exprs).collect(optimizations=MANY_OPTS)
        for i in self._present:
            out[i] = frame.get_column(f"__w{i}")
        return out

    def split(self, rows: pl.DataFrame) -> list[pl.DataFrame]:
        """Per rule, the rows whose `where` is true, in `rows`' order, with String dtypes."""
        if not self._exprs:
            whole = decode(rows)
            return [whole] * len(self.wheres)
        if len(self._exprs) == 1:
            idx = {self._present[0]: rows.select(self._exprs[0].arg_true()).to_series()}
        else:
            masks = rows.lazy().select(self._exprs).collect(optimizations=MANY_OPTS)
            idx = {i: masks.get_column(f"__w{i}").arg_true() for i in self._present}
        whole = None
        out = []
        for i in range(len(self.wheres)):
            if i in idx:
                out.append(decode(rows[idx[i]]))
            else:
                whole = decode(rows) if whole is None else whole
                out.append(whole)
        return out
