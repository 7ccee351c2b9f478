"""Filter rules (§5.1): one match per released row; the engine already applied `where`."""

from __future__ import annotations

import polars as pl

from cepdsl.executor import TIME, Executor, Progress, finalize
from cepdsl.plan import RulePlan


class FilterExecutor(Executor):
    """Stateless: every row the engine releases is a match at the row's event time.

    The match record is built by one `select` compiled once per rule (constants, `ts`
    from TIME, the fields in §7 order); `finalize`'s generic casts run only when a frame
    does not already carry the engine dtypes.  With 100 rules on a stream this per-rule
    work is most of the cost, so it is kept to one pass over the matching rows."""

    def __init__(self, rule: RulePlan) -> None:
        super().__init__(rule)
        self._empty = rule.empty_output()
        schema = rule.output_schema
        self._fields = {c: dt for c, dt in schema.items() if c not in ("rule", "ts", "severity")}
        self._record = [
            pl.lit(rule.id, pl.String).alias("rule") if c == "rule"
            else pl.lit(rule.severity, pl.String).alias("severity") if c == "severity"
            else pl.col(TIME).cast(pl.Datetime("us")).alias("ts") if c == "ts"
            else pl.col(c)
            for c in schema
        ]  # fmt: skip

    def process(self, rows: pl.DataFrame, progress: Progress) -> pl.DataFrame:
        if rows.height == 0:
            return self._empty
        if TIME not in rows.columns:
            # The engine may hand filter rules rows without TIME (one column less to
            # gather per rule): TIME is the time field's µs, so `ts` is that field.
            tf = self.rule.stream.time_field
            rows = rows.with_columns((pl.col(tf).dt.epoch("us") if tf else pl.lit(None, pl.Int64)).alias(TIME))
        if all(rows.schema.get(c) == dt for c, dt in self._fields.items()):
            return rows.select(self._record)
        return finalize(self.rule, rows.with_columns(pl.col(TIME).alias("ts")))

    def advance(self, progress: Progress) -> pl.DataFrame:
        return self._empty

    def finish(self, progress: Progress) -> pl.DataFrame:
        return self._empty
