"""Alert history: every emitted match, queryable over HTTP (see docs/api.md)."""

from typing import Any

from runtime.history.store import DEFAULT_RETENTION_S, Alert, AlertRow, SqlHistory, to_us
from runtime.history.writer import HistoryWriter


def open_history(spec: str, retention_s: float = DEFAULT_RETENTION_S) -> Any:
    """`sqlite:PATH` | `memory` | `postgresql://...` | `redis://HOST:PORT/DB[?prefix=cep:]`."""
    if spec.startswith(("redis://", "rediss://", "unix://")):
        from urllib.parse import parse_qsl, urlsplit, urlunsplit

        import redis

        from runtime.history.redis_store import RedisHistory

        parts = urlsplit(spec)
        query = dict(parse_qsl(parts.query))
        url = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        history: Any = RedisHistory(redis.Redis.from_url(url, socket_timeout=5), query.get("prefix", "cep:"), retention_s)
    elif spec == "memory" or spec.startswith(("sqlite:", "postgresql://", "postgres://")):
        from runtime.sqldb import SqlDb

        history = SqlHistory(SqlDb(spec), retention_s)
    else:
        raise ValueError(f"unknown alert history store {spec!r} (sqlite:PATH, memory, postgresql://..., redis://...)")
    history.spec = spec  # the history writer's process opens the same store
    return history


__all__ = ["DEFAULT_RETENTION_S", "Alert", "AlertRow", "HistoryWriter", "SqlHistory", "open_history", "to_us"]
