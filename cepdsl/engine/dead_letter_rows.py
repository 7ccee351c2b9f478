"""The dead-letter output: every row the engine could not use, and why.

Malformed events (missing time, wrong types) and late rows end up here instead
of vanishing. `raw` keeps the original text, or the row re-encoded as JSON, so
nothing is lost. The schema lives in `cepdsl` (pure) so the embedding API and
the runtime write the same thing; `runtime.dead_letter_writer` re-exports it.
"""

from __future__ import annotations

import polars as pl

DEAD_LETTER_SCHEMA: dict[str, pl.DataType] = {
    "stream": pl.String(),
    "reason": pl.String(),
    "raw": pl.String(),
}


def dead_letters(stream: str, reasons: list[str], raws: list[str]) -> pl.DataFrame:
    return pl.DataFrame(
        {"stream": [stream] * len(reasons), "reason": reasons, "raw": raws},
        schema=DEAD_LETTER_SCHEMA,
    )


def empty_dead_letters() -> pl.DataFrame:
    return pl.DataFrame(schema=DEAD_LETTER_SCHEMA)


def rows_as_dead_letters(stream: str, rows: pl.DataFrame, reason: str | pl.Expr) -> pl.DataFrame:
    """Dead letters for whole rows: `raw` is each row as one JSON object (vectorised,
    no per-row Python). `reason` may be one string or an expression per row."""
    if rows.height == 0:
        return empty_dead_letters()
    reason_expr = pl.lit(reason, pl.String) if isinstance(reason, str) else reason
    return rows.select(
        pl.lit(stream, pl.String).alias("stream"),
        reason_expr.cast(pl.String).alias("reason"),
        pl.struct(pl.all()).struct.json_encode().alias("raw"),
    )


def concat_dead_letters(frames: list[pl.DataFrame]) -> pl.DataFrame:
    frames = [f for f in frames if f.height]
    if not frames:
        return empty_dead_letters()
    return pl.concat(frames, how="vertical")
