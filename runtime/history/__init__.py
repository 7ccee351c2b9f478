"""Alert history: every emitted match, queryable over HTTP (see docs/api.md)."""

from runtime.history.store import DEFAULT_RETENTION_S, Alert, AlertRow, SqlHistory, to_us
from runtime.history.writer import HistoryWriter


def open_history(spec: str, retention_s: float = DEFAULT_RETENTION_S) -> SqlHistory:
    """`sqlite:PATH` | `memory` | `postgresql://...`."""
    if spec == "memory" or spec.startswith(("sqlite:", "postgresql://", "postgres://")):
        from runtime.sqldb import SqlDb

        return SqlHistory(SqlDb(spec), retention_s)
    raise ValueError(f"unknown alert history store {spec!r} (sqlite:PATH, memory, postgresql://...)")


__all__ = ["DEFAULT_RETENTION_S", "Alert", "AlertRow", "HistoryWriter", "SqlHistory", "open_history", "to_us"]
