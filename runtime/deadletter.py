"""The dead-letter output: every row the engine could not use, with why.

Malformed events (bad JSON, wrong types, missing time) and late rows end up
here instead of vanishing; `raw` keeps the original text (or the row as JSON)
so nothing is lost.
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
