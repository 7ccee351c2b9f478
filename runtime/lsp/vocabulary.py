"""What the editor offers by name: functions and aggregates with their signatures,
clause keywords, severities, window kinds.  The names come from the checker's own
tables (`cepdsl.typecheck`, `cepdsl.channels`); tests/lsp/test_vocabulary.py fails
when the checker learns a name this module has no signature for.
"""

from __future__ import annotations

from cepdsl import ast
from cepdsl.plan import SEVERITIES
from cepdsl.typecheck import AGGREGATES, SCALAR_FUNCTIONS

#: name -> (signature, what it returns / does)
FUNCTIONS: dict[str, tuple[str, str]] = {
    "abs": ("abs(x: number) -> number", "absolute value"),
    "round": ("round(x: number, digits: int = 0) -> number", "rounded half to even"),
    "floor": ("floor(x: number) -> number", "largest integer not above x"),
    "ceil": ("ceil(x: number) -> number", "smallest integer not below x"),
    "lower": ("lower(s: str) -> str", "lower case"),
    "upper": ("upper(s: str) -> str", "upper case"),
    "len": ("len(s: str) -> int", "length in characters"),
    "coalesce": ("coalesce(a, b, ...) -> same type", "the first argument that is not null"),
    "hour": ("hour(t: timestamp) -> int", "hour of day, UTC (0-23)"),
    "minute": ("minute(t: timestamp) -> int", "minute of the hour (0-59)"),
    "day_of_week": ("day_of_week(t: timestamp) -> int", "day of week, UTC"),
}

AGGREGATE_DOCS: dict[str, tuple[str, str]] = {
    "count": ("count() -> int  |  count(f) -> int", "rows; with a field, its non-null values (column `count` / `count_f`)"),
    "sum": ("sum(f: number) -> number", "sum of non-null values (column `sum_f`)"),
    "avg": ("avg(f: number) -> float", "mean of non-null values (column `avg_f`)"),
    "min": ("min(f) -> type of f", "smallest value (column `min_f`)"),
    "max": ("max(f) -> type of f", "largest value (column `max_f`)"),
    "std": ("std(f: number) -> float", "sample standard deviation, ddof 1 (column `std_f`)"),
    "percentile": ("percentile(f: number, q: literal 0..100) -> float", "linear interpolation (column `p95_f` for q = 95)"),
    "distinct": ("distinct(f) -> int", "count of distinct non-null values (column `distinct_f`)"),
}

# A function the checker learns before this table does still completes, with a plain
# signature (tests/lsp/test_vocabulary.py fails until it gets its own).
for _f in SCALAR_FUNCTIONS:
    FUNCTIONS.setdefault(_f, (f"{_f}(...)", "function"))
for _a in AGGREGATES:
    AGGREGATE_DOCS.setdefault(_a, (f"{_a}(...)", "aggregate"))

ANOMALY_METHODS: dict[str, str] = {
    "zscore": "zscore(field, threshold = 3.0)",
    "iqr": "iqr(field, multiplier = 1.5)",
    "ema": "ema(field, alpha = 0.3, threshold = 3.0)",
}

#: Clause keywords a rule may continue with (LANGUAGE.md §3.3, §9), as they are typed.
CLAUSES = tuple(ast.CLAUSE_KEYWORD.values())
#: Words that start a declaration.
DECLARATIONS = tuple(ast.DECL_KEYWORD.values())
WINDOW_KINDS = ("tumbling", "sliding", "session gap", "last")
FIELD_TYPES = ("int", "float", "str", "bool", "timestamp")
SEVERITY_LEVELS = tuple(SEVERITIES)
EXPRESSION_WORDS = ("and", "or", "not", "in", "is null", "is not null", "contains", "starts_with", "ends_with", "matches", "true", "false", "null")
