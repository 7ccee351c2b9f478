"""`--state` strings → a store.

    memory                       in this process only
    sqlite:PATH                  a local SQLite file (the embedded default)
    redis://HOST:PORT/DB[?prefix=cep:&backoff=500ms&backoff_max=30s]
                                 Redis, wrapped in ResilientStore (retry backoff while it is down)
    rediss://...                 the same over TLS
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from runtime.state.store import MemoryStore, StateStore


def _duration_s(text: str, spec: str) -> float:
    from runtime.sources.spec import parse_duration_s

    try:
        return parse_duration_s(text)
    except ValueError as e:
        raise ValueError(f"{spec}: {e}") from None


def open_store(spec: str, **opts: Any) -> StateStore:
    if spec == "memory":
        return MemoryStore(**opts)
    if spec.startswith("sqlite:"):
        from runtime.state.sqlite import SqliteStore

        path = spec[len("sqlite:") :]
        if not path:
            raise ValueError("sqlite: needs a path, e.g. sqlite:cep-state.sqlite")
        return SqliteStore(path, **opts)
    if spec.startswith(("redis://", "rediss://", "unix://")):
        from runtime.state.redis_store import RedisStore, connect
        from runtime.state.resilient import ResilientStore

        parts = urlsplit(spec)
        query = dict(parse_qsl(parts.query))
        prefix = query.pop("prefix", "cep:")
        url = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        resilience = {k: opts.pop(k) for k in ("clock", "backoff_initial_s", "backoff_max_s") if k in opts}
        for name, key in (("backoff", "backoff_initial_s"), ("backoff_max", "backoff_max_s")):
            if name in query:
                resilience.setdefault(key, _duration_s(query.pop(name), spec))
        if query:
            raise ValueError(f"{spec}: unknown option(s) {', '.join(sorted(query))} (prefix, backoff, backoff_max)")
        return ResilientStore(RedisStore(connect(url), prefix=prefix, **opts), **resilience)
    raise ValueError(f"unknown state store {spec!r} (memory, sqlite:PATH, redis://HOST:PORT/DB)")
