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

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from cepdsl.backends.polars.rowsets import decode
from cepdsl.kernels.polars_expressions import compile_condition, compile_expr, compile_predicate, full_length
from cepdsl.plan import JoinPlan, TablePlan, TBinary, TExpr, TField, fields_read
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
    padded_frame: pl.DataFrame = field(init=False)  # `frame` and one all-null row (`absent`)
    padded_gatherable: pl.DataFrame = field(init=False)
    absent: int = field(init=False)
    positions: pl.DataFrame = field(init=False)  # _KEY, _POS
    #: The last Enum dictionary looked up, and each of its values' positions: batches of
    #: one source share their dtype, so this is computed once per table per source.
    _dict: tuple[pl.Series, np.ndarray] | None = field(default=None, init=False)
    #: The same for `dictionary_rows` (absent and null: `absent`).
    _dict_rows: tuple[pl.Series, np.ndarray, pl.Series] | None = field(default=None, init=False)
    #: String keys: a hash index of the table's keys, built at the first String lookup.
    _string_index: Any = field(default=None, init=False)
    #: (condition, alias) -> per padded row, whether the condition holds (see `row_mask`).
    _masks: dict[tuple[TExpr, str], np.ndarray] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.gatherable = self.frame.with_columns(pl.col(f.name).cast(pl.Categorical) for f in self.plan.fields if f.type is Type.STR)
        self.positions = self.frame.select(pl.col(self.plan.key).alias(_KEY)).with_row_index(_POS)
        # One all-null row after the last: where a key is absent, a gather at `absent` gives
        # the nulls a left join gives, with no null positions to build or test.
        self.absent = self.frame.height
        # (One chunk: a gather from two chunks cost 5x, 10M rows' positions into 100k.)
        self.padded_frame = pl.concat([self.frame, self.frame.clear(1)], rechunk=True)
        self.padded_gatherable = pl.concat([self.gatherable, self.gatherable.clear(1)], rechunk=True)

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

    def dictionary_rows(self, categories: pl.Series) -> tuple[np.ndarray, pl.Series]:
        """Per code of an Enum with these `categories`, its table row (UInt32; absent →
        `absent`), and one more entry, `absent`, for null keys (code `len(categories)`);
        and the categories with a null after them, to decode codes by a gather."""
        cached = self._dict_rows
        if cached is not None and cached[0].len() == categories.len() and cached[0].equals(categories):
            return cached[1], cached[2]
        found = self.positions_of_values(categories)
        rows = np.append(np.where(found < 0, self.absent, found), self.absent).astype(np.uint32)
        decoded = categories.extend_constant(None, 1).rechunk()
        self._dict_rows = (categories, rows, decoded)
        return rows, decoded

    def row_mask(self, condition: TExpr, alias: str) -> np.ndarray:
        """Per row of `padded_frame`, whether `condition` (reading only `ALIAS.field`s of this
        table) is true there (null: false). Computed once per table version: a condition on
        the joined row alone has the same value for every event joined to that row."""
        got = self._masks.get((condition, alias))
        if got is None:
            names = {f"{alias}.{f.name}": f.name for f in self.plan.fields}
            wanted = [pl.col(names[n]).alias(n) for n in sorted(fields_read(condition)) if n in names]
            frame = self.padded_gatherable.select(wanted) if wanted else pl.DataFrame({_KEY: np.zeros(self.padded_frame.height)})
            got = frame.select(full_length(compile_predicate(condition))).to_series().to_numpy()
            self._masks[(condition, alias)] = got
        return got

    def rows_of(self, key: pl.Series, only: np.ndarray | None = None) -> np.ndarray:
        """Per value of `key` (or of `key[only]`), its table row (UInt32; absent or null → `absent`)."""
        if key.dtype == pl.String and self.key_type is Type.STR:
            if self._string_index is None:
                from cepdsl.kernels.string_keys import StringKeyIndex

                self._string_index = StringKeyIndex(self.frame.get_column(self.plan.key))
            return self._string_index.rows_of(key, self.absent, only)
        if only is not None:
            key = key.gather(pl.Series(only, dtype=pl.UInt32))
        return _hash_positions(key, self).fill_null(self.absent).to_numpy()


def prepare_tables(frames: Mapping[str, pl.DataFrame], plans: Mapping[str, TablePlan]) -> dict[str, PreparedTable]:
    return {name: PreparedTable(plans[name], frame) for name, frame in frames.items()}


def _positions(rows: pl.DataFrame, join: JoinPlan, table: PreparedTable, only: np.ndarray | None = None) -> pl.Series:
    """Per row of `rows`, the position of its key in `table` (UInt32; absent: null, or
    `table.absent` for String keys — both gather nulls from the padded frames).
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
    key = rows.select(full_length(compile_expr(on)).alias(_KEY)).to_series()  # (`on` may read no field)
    if key.dtype == pl.String and table.key_type is Type.STR:
        # The table's String-key index (absent → `absent`, the padded frames' null row).
        if only is not None and len(only) < rows.height:
            full = np.full(rows.height, table.absent, dtype=np.uint32)
            full[only] = table.rows_of(key, only)
            return pl.Series(_POS, full)
        return pl.Series(_POS, table.rows_of(key))
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
        cols = (
            table.padded_gatherable.select(pl.col(take).gather(pos)).rename({f: names[f] for f in take}).get_columns() if take else []
        )
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
            cols = table.padded_frame.select(pl.col(take).gather(pos)).rename({f: names[f] for f in take}).get_columns()
            rows = rows.hstack(cols)
        rows = rows.drop(pos_name)
    return rows


# ----------------------------------------------------------------------------- one rule's joins
_ROW = "__join_row"


def _conjuncts(e: TExpr) -> list[TExpr]:
    if isinstance(e, TBinary) and e.op == "and":
        return _conjuncts(e.left) + _conjuncts(e.right)
    return [e]


def _and(parts: list[TExpr]) -> TExpr | None:
    return functools.reduce(lambda a, b: TBinary(Type.BOOL, "and", a, b), parts) if parts else None


def _table_of(joins: tuple[JoinPlan, ...], alias: str) -> str:
    return next(j.table.name for j in joins if j.alias == alias)


@dataclass(frozen=True)
class JoinedFilter:
    """A rule's joins and `where` as one filter, for a join group of one rule.

    `where` is cut at its top-level `and`s: the conjuncts reading no joined column
    (`pre`) run over the whole batch first; keys are looked up only for the rows they
    keep; the other conjuncts (`rest`) run over those rows with the joined columns they
    read gathered; the matching rows alone are gathered whole, with every joined
    column.  `and` is true only where every conjunct is true, so this keeps exactly
    the rows `where` keeps, and no column is gathered for a row `where` drops."""

    joins: tuple[JoinPlan, ...]
    pre: pl.Expr | None
    rest: pl.Expr | None
    rest_fields: frozenset[str]
    #: `rest` when it reads the fields of one join alone (that join's alias beside it): then
    #: it is evaluated once per table row (`PreparedTable.row_mask`), not per event.
    rest_on_table: tuple[TExpr, str] | None = None

    @staticmethod
    def of(where: TExpr | None, joins: tuple[JoinPlan, ...]) -> JoinedFilter:
        joined = {c.name for j in joins for c in j.columns}
        parts = _conjuncts(where) if where is not None else []
        pre = [c for c in parts if not fields_read(c) & joined]
        rest = [c for c in parts if fields_read(c) & joined]
        rest_expr = _and(rest)
        rest_fields = frozenset(fields_read(rest_expr)) if rest_expr is not None else frozenset()
        on_table = None
        for j in joins:
            if rest_expr is not None and rest_fields <= {f"{j.alias}.{f.name}" for f in j.table.fields}:
                on_table = (rest_expr, j.alias)
        return JoinedFilter(
            joins,
            None if not pre else compile_condition(_and(pre)),  # type: ignore[arg-type]
            None if rest_expr is None else compile_condition(rest_expr),
            rest_fields,
            on_table,
        )

    def run(self, rows: pl.DataFrame, tables: Mapping[str, PreparedTable]) -> pl.DataFrame:
        """The rows of `rows` the rule keeps, in order, with every `ALIAS.field` added and
        dictionary-encoded columns decoded to String."""
        idx: np.ndarray | None = None  # candidate row numbers (None: every row)
        if self.pre is not None:
            idx = rows.lazy().with_row_index(_ROW).filter(self.pre).select(_ROW).collect().to_series().to_numpy()
        stream_cols = set(rows.columns)
        positions: dict[str, np.ndarray] = {}  # alias -> table row per candidate (absent: the null row)
        decoders: dict[str, tuple[pl.Series, np.ndarray]] = {}  # Enum column -> (categories, codes of all rows)
        by_code: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # alias -> (table row per code, code per candidate)

        def at_candidates(names: set[str]) -> pl.DataFrame:
            """The columns `names` for the candidate rows: stream columns gathered, joined ones looked up."""
            own = [n for n in names if n in stream_cols]
            frame = None
            if own:
                frame = rows.select(own) if idx is None else rows.select(pl.col(own).gather(pl.Series(idx, dtype=pl.UInt32)))
            cols = []
            for join in self.joins:
                if join.alias not in positions and join.alias not in by_code:
                    continue
                take = [f.name for f in join.table.fields if f"{join.alias}.{f.name}" in names]
                if take:
                    if join.alias in by_code:  # (a later join's key reads this one's fields)
                        lookup, codes_at = by_code[join.alias]
                        pos = pl.Series(lookup[codes_at])
                    else:
                        pos = pl.Series(positions[join.alias])
                    got = tables[join.table.name].padded_gatherable.select(pl.col(take).gather(pos))
                    cols += [c.alias(f"{join.alias}.{c.name}") for c in got.get_columns()]
            if frame is None:  # (a frame of no columns has no height to add columns to)
                n = rows.height if idx is None else len(idx)
                return pl.DataFrame(cols) if cols else pl.DataFrame({_ROW: np.zeros(n, dtype=np.uint8)})
            return frame.hstack(cols) if cols else frame

        for join in self.joins:
            table = tables[join.table.name]
            on = join.on
            if isinstance(on, TField) and on.name in stream_cols and table.key_type is Type.STR:
                col = rows.get_column(on.name)
                dtype = col.dtype  # (each `.dtype` of an Enum builds the dtype anew: ask once)
                if isinstance(dtype, pl.Enum):
                    cats = dtype.categories
                    lookup, decoded = table.dictionary_rows(cats)
                    phys = col.to_physical()
                    codes = (phys.fill_null(cats.len()) if phys.null_count() else phys).to_numpy()
                    decoders[on.name] = (decoded, codes)
                    by_code[join.alias] = (lookup, codes if idx is None else codes[idx])
                    continue
                if dtype == pl.String:  # probed in place for the candidates: no gather of their Strings
                    positions[join.alias] = table.rows_of(col, idx)
                    continue
            key = at_candidates(fields_read(on)).select(full_length(compile_expr(on)).alias(_KEY)).to_series()
            positions[join.alias] = table.rows_of(key)
        if self.rest_on_table is not None:
            # Per table row, then per candidate by its row (or, for an Enum key, by its code:
            # one lookup per dictionary value, and table rows only for the rows kept).
            cond, alias = self.rest_on_table
            ok = tables[_table_of(self.joins, alias)].row_mask(cond, alias)
            if alias in by_code:
                lookup, codes_at = by_code[alias]
                keep = np.flatnonzero(ok[lookup][codes_at])
            else:
                keep = np.flatnonzero(ok[positions[alias]])
            idx = keep if idx is None else idx[keep]
            by_code = {a: (lookup, c[keep]) for a, (lookup, c) in by_code.items()}
            positions = {a: p[keep] for a, p in positions.items()}
        positions.update({a: lookup[c] for a, (lookup, c) in by_code.items()})
        if self.rest is not None and self.rest_on_table is None:
            keep = at_candidates(set(self.rest_fields)).select(self.rest.arg_true()).to_series().to_numpy()
            idx = keep if idx is None else idx[keep]
            positions = {a: p[keep] for a, p in positions.items()}
        # The matches, whole: stream columns (Enum ones decoded by their dictionary), joined columns as String.
        sel = pl.Series(idx, dtype=pl.UInt32) if idx is not None else None
        plain = [c for c in rows.columns if c not in decoders]
        # (A gather per column in one select runs the columns in parallel: 41 vs 63 ms for 1.26M of 10M rows.)
        out = rows.select(plain) if sel is None else rows.select(pl.col(plain).gather(sel))
        extra = [
            cats.gather(pl.Series(codes if idx is None else codes[idx], dtype=pl.UInt32)).alias(name)
            for name, (cats, codes) in decoders.items()
        ]
        for join in self.joins:
            pos = pl.Series(positions[join.alias], dtype=pl.UInt32)
            got = tables[join.table.name].padded_frame.select(pl.all().gather(pos))
            extra += [c.alias(f"{join.alias}.{c.name}") for c in got.get_columns()]
        out = out.hstack(extra)
        if decoders:
            out = out.select(rows.columns + [c.name for c in extra if c.name not in decoders])
        return decode(out)
