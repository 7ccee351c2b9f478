"""What the editor offers by name: functions and aggregates with their signatures,
clause keywords, severities, window kinds.  The names come from the checker's own
tables (the registries of `cepdsl.functions`, `cepdsl.channels`), signatures and docs
lines included.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from cepdsl import ast
from cepdsl.functions import AGGREGATES
from cepdsl.functions import FUNCTIONS as _FUNCTIONS
from cepdsl.plan import SEVERITIES
from cepdsl.registry import Registry


class _Signatures(Mapping[str, tuple[str, str]]):
    """name -> (signature, what it returns / does), read live from a registry, so an
    entry registered after import (an extension) is offered too."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    def __getitem__(self, name: str) -> tuple[str, str]:
        entry = self._registry.get(name)
        if entry is None:
            raise KeyError(name)
        return entry.signature, entry.doc

    def __iter__(self) -> Iterator[str]:
        return iter(self._registry.names())

    def __len__(self) -> int:
        return len(self._registry)


FUNCTIONS: Mapping[str, tuple[str, str]] = _Signatures(_FUNCTIONS)
AGGREGATE_DOCS: Mapping[str, tuple[str, str]] = _Signatures(AGGREGATES)

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
EXPRESSION_WORDS = (
    "and",
    "or",
    "not",
    "in",
    "is null",
    "is not null",
    "contains",
    "starts_with",
    "ends_with",
    "matches",
    "true",
    "false",
    "null",
)
