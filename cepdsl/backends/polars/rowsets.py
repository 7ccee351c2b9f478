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

import numpy as np
import polars as pl

from cepdsl.kernels.polars_expressions import MANY_OPTS, compile_condition, full_length
from cepdsl.plan import TBinary, TExpr, TUnary

#: From this many rows a batch is big (see `split`): one rule's matching rows come from a
#: lazy `filter`, several rules' from an `arg_true` per predicate column.
_FILTER_ROWS = 65_536
_ROW = "__where_row"


def decode(frame: pl.DataFrame) -> pl.DataFrame:
    """Categorical/Enum columns back to String (no-op, and no copy, when there are none)."""
    enc = [c for c, dt in frame.schema.items() if isinstance(dt, (pl.Categorical, pl.Enum))]
    return frame.with_columns(pl.col(enc).cast(pl.String)) if enc else frame


def _over_atoms(expr: TExpr, atoms: dict[TExpr, str]) -> pl.Expr:
    """`expr` as and/or/not of columns naming its other sub-expressions (added to `atoms`)."""
    if isinstance(expr, TBinary) and expr.op in ("and", "or"):
        left, right = _over_atoms(expr.left, atoms), _over_atoms(expr.right, atoms)
        return left & right if expr.op == "and" else left | right
    if isinstance(expr, TUnary) and expr.op == "not":
        return ~_over_atoms(expr.operand, atoms)
    return pl.col(atoms.setdefault(expr, f"__a{len(atoms)}"))


class WhereSet:
    """The `where` of each rule of one stream (None: no `where`).

    Rules with the same `where` (real rule sets repeat conditions with other names,
    severities or messages) share one predicate column, one `arg_true` and one gathered
    frame: the gather is most of the cost with many rules."""

    def __init__(self, wheres: Sequence[TExpr | None]) -> None:
        self.wheres = list(wheres)
        unique: dict[TExpr, int] = {}
        #: per rule, the index of its distinct predicate (None: no `where`)
        self._slot: list[int | None] = []
        for w in self.wheres:
            self._slot.append(None if w is None else unique.setdefault(w, len(unique)))
        self._exprs = [full_length(compile_condition(w)).alias(f"__w{k}") for w, k in unique.items()]
        # Many rules: every distinct condition under and/or/not ("atom") is computed once
        # over the rows, then each rule's predicate is and/or/not of those boolean columns
        # (bitmaps, Kleene like `compile_expr`).  Polars' CSE finds only some shared
        # sub-expressions; this finds all of them (10M rows, 100 rules: 42 predicates from
        # 12 atoms).
        atoms: dict[TExpr, str] = {}
        combos = [_over_atoms(w, atoms).alias(f"__w{k}") for w, k in unique.items()]
        self._atoms = [full_length(compile_condition(a)).alias(name) for a, name in atoms.items()]
        self._combos = combos

    def _predicates(self, rows: pl.DataFrame) -> pl.DataFrame:
        if len(self._exprs) == 1:
            return rows.lazy().select(self._exprs).collect(optimizations=MANY_OPTS)
        atoms = rows.lazy().select(self._atoms).collect(optimizations=MANY_OPTS)
        return atoms.select(self._combos)

    def masks(self, rows: pl.DataFrame) -> list[pl.Series | None]:
        """Per rule, its predicate over `rows` (null where the predicate is null), or None."""
        if not self._exprs:
            return [None] * len(self.wheres)
        frame = self._predicates(rows)
        return [None if k is None else frame.to_series(k) for k in self._slot]

    def split(self, rows: pl.DataFrame) -> list[pl.DataFrame]:
        """Per rule, the rows whose `where` is true, in `rows`' order, with String dtypes."""
        if len(self._exprs) == 1 and rows.height >= _FILTER_ROWS and _ROW not in rows.columns:
            # A lazy `filter` evaluates the predicate morsel by morsel on every core, where
            # `select` makes each and/or/comparison a whole-column pass: 26 vs 52 ms on 10M
            # rows (bench_filters' rule), though ~0.2 ms more of planning per call.
            idx = [rows.lazy().with_row_index(_ROW).filter(self._exprs[0]).select(_ROW).collect().to_series()]
        elif len(self._exprs) == 1:
            # `arg_true`, like `filter`, skips null: no `fill_null` pass.
            idx = [rows.select(self._exprs[0].arg_true()).to_series()]
        elif self._exprs and rows.height >= _FILTER_ROWS:
            masks = self._predicates(rows)
            idx = [masks.to_series(k).arg_true() for k in range(len(self._exprs))]
        elif self._exprs:
            # All masks to numpy at once (null → false, as `arg_true` has it), then one
            # flatnonzero per rule: a Polars call per rule costs more than the work at
            # micro-batch sizes (but a big batch's 2-D copy costs more than those calls).
            masks = self._predicates(rows).select(pl.all().fill_null(False)).to_numpy()
            idx = [pl.Series(np.flatnonzero(masks[:, k]), dtype=pl.UInt32) for k in range(len(self._exprs))]
        # One schema look for all rules (it costs ~10 µs a call).
        encoded = any(isinstance(dt, (pl.Categorical, pl.Enum)) for dt in rows.schema.values())
        gathered: dict[int | None, pl.DataFrame] = {}
        out = []
        for k in self._slot:
            sub = gathered.get(k)
            if sub is None:
                sub = rows if k is None else rows[idx[k]]
                sub = gathered[k] = decode(sub) if encoded else sub
            out.append(sub)
        return out
