"""`join T [as A] on EXPR` (§9.2) on a batch: left hash joins in Polars, never per row.

Each join computes, for every row, the position of its key in the table (null when
absent), then gathers the table's columns by that position as `A.field`.  Tables are
unique by key (a load-time check), so the joins keep the batch's rows and order: one
output row per input row, which is what lets a rule join before `where`.

Two ways to find the positions:

* the key is a dictionary-encoded column (Enum/Categorical: how Parquet strings with
  few distinct values may arrive): the dictionary's values are looked up once, then
  the codes index that lookup (a numpy gather: no string is hashed per row);
* anything else: a Polars left join of the key column on the table's key.

Table string columns are held as Categorical, so the gather moves 4-byte codes; the
rows handed to executors are decoded back to String (`rowsets.decode`) after `where`
has thrown most of them away.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from cepdsl.kernels.polars_expressions import compile_expr
from cepdsl.plan import JoinPlan, TablePlan, TField
from cepdsl.types import Type

_KEY = "__join_key"
_POS = "__join_pos"


@dataclass
class PreparedTable:
    """A loaded table, ready to be joined: string columns Categorical, and its key with
    each row's position."""

    plan: TablePlan
    frame: pl.DataFrame  # declared columns, engine dtypes (String as String)
    gatherable: pl.DataFrame = field(init=False)
    positions: pl.DataFrame = field(init=False)  # _KEY, _POS
    #: The last Enum dictionary looked up, and each of its values' positions: batches of
    #: one source share their dtype, so this is computed once per table per source.
    _dict: tuple[pl.Series, np.ndarray] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.gatherable = self.frame.with_columns(
            pl.col(f.name).cast(pl.Categorical) for f in self.plan.fields if f.type is Type.STR
        )
        self.positions = self.frame.select(pl.col(self.plan.key).alias(_KEY)).with_row_index(_POS)

    @property
    def key_type(self) -> Type:
        return self.plan.field(self.plan.key).type  # type: ignore[union-attr]

    def positions_of_values(self, values: pl.Series) -> np.ndarray:
        """Row position (int64, -1 when absent) of each of `values` (a dictionary)."""
        keys = pl.DataFrame({_KEY: values.cast(pl.String)})
        found = keys.join(self.positions.with_columns(pl.col(_KEY).cast(pl.String)), on=_KEY, how="left", maintain_order="left")
        return found[_POS].fill_null(-1).cast(pl.Int32).to_numpy()

    def dictionary_positions(self, categories: pl.Series) -> np.ndarray:
        cached = self._dict
        if cached is not None and cached[0].len() == categories.len() and cached[0].equals(categories):
            return cached[1]
        lookup = self.positions_of_values(categories)
        self._dict = (categories, lookup)
        return lookup


def prepare_tables(frames: Mapping[str, pl.DataFrame], plans: Mapping[str, TablePlan]) -> dict[str, PreparedTable]:
    return {name: PreparedTable(plans[name], frame) for name, frame in frames.items()}


def _positions(rows: pl.DataFrame, join: JoinPlan, table: PreparedTable, only: np.ndarray | None = None) -> pl.Series:
    """Per row of `rows`, the position of its key in `table` (UInt32, null when absent).
    `only`: the row numbers worth a hash lookup (the others get null): rows a rule's
    `where` drops whatever the join finds.  Dictionary-encoded keys ignore it (their
    lookup per row is an array index, cheaper than choosing rows)."""
    on = join.on
    if isinstance(on, TField) and on.name in rows.columns and table.key_type is Type.STR:
        col = rows[on.name]
        dtype = col.dtype  # (each `.dtype` of an Enum builds the dtype anew: ask once)
        if isinstance(dtype, pl.Enum):
            lookup = table.dictionary_positions(dtype.categories)
            phys = col.to_physical()
            codes = (phys.fill_null(0) if phys.null_count() else phys).to_numpy()
            return _valid(lookup[codes], col)
        if isinstance(dtype, pl.Categorical):
            present = col.unique().drop_nulls()
            codes_present = present.to_physical().cast(pl.Int64).to_numpy()
            lookup = np.full(int(codes_present.max()) + 1 if len(codes_present) else 1, -1, dtype=np.int32)
            lookup[codes_present] = table.positions_of_values(present)
            codes = col.to_physical().cast(pl.Int64).fill_null(0).to_numpy()
            return _valid(lookup[codes], col)
    key = rows.select(compile_expr(on).alias(_KEY)).to_series()
    if only is not None and len(only) < rows.height:
        found = _hash_positions(key.gather(pl.Series(only, dtype=pl.UInt32)), table)
        full = np.full(rows.height, -1, dtype=np.int64)
        full[only] = found.cast(pl.Int64).fill_null(-1).to_numpy()
        out = pl.Series(_POS, full)
        return out.set(out < 0, None).cast(pl.UInt32)
    return _hash_positions(key, table)


def _hash_positions(key: pl.Series, table: PreparedTable) -> pl.Series:
    """A left join of the key values on the table's key: each one's row position."""
    target = table.positions
    if key.dtype != target.schema[_KEY]:
        if key.dtype.is_numeric() and target.schema[_KEY].is_numeric():
            # int and float compare numerically (§9.2: `==`'s typing)
            key = key.cast(pl.Float64)
            target = target.with_columns(pl.col(_KEY).cast(pl.Float64))
        else:
            key = key.cast(target.schema[_KEY])
    if key.dtype == pl.Float64:
        key = key.fill_nan(None)
    found = pl.DataFrame({_KEY: key}).join(target, on=_KEY, how="left", maintain_order="left")
    return found[_POS].cast(pl.UInt32)


def _valid(pos: np.ndarray, col: pl.Series) -> pl.Series:
    """Positions with -1 (absent) and null keys as null."""
    out = pl.Series(_POS, pos)
    if col.null_count():
        out = out.set(col.is_null(), -1)
    if int(out.min() or 0) < 0:
        return out.set(out < 0, None).cast(pl.UInt32)
    return out.cast(pl.UInt32)


def position_column(alias: str) -> str:
    return f"__join_pos:{alias}"


def apply_joins(
    rows: pl.DataFrame,
    joins: tuple[JoinPlan, ...],
    tables: Mapping[str, PreparedTable],
    needed: frozenset[str] | None = None,
    only: np.ndarray | None = None,
) -> pl.DataFrame:
    """`rows` with every join's `ALIAS.field` columns added, in the order written (a
    later join's key may read an earlier join's fields).

    With `needed`, only those joined columns are gathered now, and each join's row
    positions are kept (`position_column`): `complete_joins` gathers the others for
    the rows that passed `where` — usually few, so most of the gather is never done.
    With `only` (row numbers), keys are looked up for those rows only."""
    for join in joins:
        table = tables[join.table.name]
        pos = _positions(rows, join, table, only)
        names = {f.name: f"{join.alias}.{f.name}" for f in join.table.fields}
        take = [f for f, n in names.items() if needed is None or n in needed]
        cols = table.gatherable.select(pl.col(take).gather(pos)).rename({f: names[f] for f in take}).get_columns() if take else []
        if needed is not None:
            cols.append(pos.alias(position_column(join.alias)))
        rows = rows.hstack(cols)
    return rows


def complete_joins(rows: pl.DataFrame, joins: tuple[JoinPlan, ...], tables: Mapping[str, PreparedTable]) -> pl.DataFrame:
    """The joined columns `apply_joins(..., needed)` left out, gathered for these rows;
    the position columns dropped."""
    for join in joins:
        pos_name = position_column(join.alias)
        if pos_name not in rows.columns:
            continue
        table = tables[join.table.name]
        names = {f.name: f"{join.alias}.{f.name}" for f in join.table.fields}
        take = [f for f, n in names.items() if n not in rows.columns]
        if take:
            # Few rows here (those that passed `where`): gathered as String, nothing to decode.
            pos = rows[pos_name]
            cols = table.frame.select(pl.col(take).gather(pos)).rename({f: names[f] for f in take}).get_columns()
            rows = rows.hstack(cols)
        rows = rows.drop(pos_name)
    return rows
