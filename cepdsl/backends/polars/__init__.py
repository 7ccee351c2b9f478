"""The Polars backend: the executors for filter, window and schedule rules, over plan
expressions compiled to Polars expressions (`cepdsl.kernels.polars_expressions`, shared
with the Numba pattern executor).  `cepdsl.backends.EXECUTORS` says which rule runs where."""

from __future__ import annotations

from cepdsl.kernels.polars_expressions import (
    UnsupportedExpression,
    compile_expr,
    compile_many,
    compile_predicate,
    evaluate_many,
)

__all__ = [
    "UnsupportedExpression",
    "compile_expr",
    "compile_many",
    "compile_predicate",
    "evaluate_many",
]
