"""The value types of the language and how they map onto Polars dtypes.

Every field may be null, so a type here says what a non-null value is.
Time is carried as naive UTC microseconds (`pl.Datetime("us")`) everywhere
inside the engine: one unit means no silent rescaling between kernels.
"""

from __future__ import annotations

import enum
import functools
from typing import TYPE_CHECKING

from cepdsl import durations

if TYPE_CHECKING:  # Polars loads on first use: `cep check` never needs it
    import polars as pl


class Type(enum.Enum):
    INT = "int"
    FLOAT = "float"
    STR = "str"
    BOOL = "bool"
    TIMESTAMP = "timestamp"
    # Not declarable on a stream; arise in expressions only.
    DURATION = "duration"
    NULL = "null"  # the type of the literal `null`: fits anything
    LIST = "list"  # only as the right side of `in`

    def __str__(self) -> str:
        return self.value

    @property
    def is_numeric(self) -> bool:
        return self in (Type.INT, Type.FLOAT)


DECLARABLE = {t.value: t for t in (Type.INT, Type.FLOAT, Type.STR, Type.BOOL, Type.TIMESTAMP)}

TIME_UNIT = "us"
US_PER = durations.US_PER  # one table for the language, specs and flags


@functools.cache
def polars_dtype(t: Type) -> pl.DataType:
    """The in-engine dtype of a declared field type (cached: executors ask per batch)."""
    import polars as pl

    return {
        Type.INT: pl.Int64(),
        Type.FLOAT: pl.Float64(),
        Type.STR: pl.String(),
        Type.BOOL: pl.Boolean(),
        Type.TIMESTAMP: pl.Datetime(TIME_UNIT),
        Type.DURATION: pl.Duration(TIME_UNIT),
        Type.NULL: pl.Null(),
    }[t]


def unify_numeric(a: Type, b: Type) -> Type:
    """`int` and `float` mix to `float`; `null` takes the other side's type."""
    if a is Type.NULL:
        return b
    if b is Type.NULL:
        return a
    if a is Type.FLOAT or b is Type.FLOAT:
        return Type.FLOAT
    return Type.INT
