"""Rules, channels and templates created over HTTP, kept with every version (see docs/api.md)."""

from runtime.catalogue.store import KINDS, Catalogue, SqlCatalogue, Version


def open_catalogue(spec: str) -> Catalogue:
    """`sqlite:PATH` | `memory` | `postgresql://...` | `redis://HOST:PORT/DB[?prefix=cep:]`."""
    if spec.startswith(("redis://", "rediss://", "unix://")):
        from urllib.parse import parse_qsl, urlsplit, urlunsplit

        import redis

        from runtime.catalogue.redis_store import RedisCatalogue

        parts = urlsplit(spec)
        query = dict(parse_qsl(parts.query))
        url = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        return RedisCatalogue(redis.Redis.from_url(url, socket_timeout=5), prefix=query.get("prefix", "cep:"))
    if spec == "memory" or spec.startswith(("sqlite:", "postgresql://", "postgres://")):
        from runtime.sqldb import SqlDb

        return SqlCatalogue(SqlDb(spec))
    raise ValueError(f"unknown catalogue store {spec!r} (sqlite:PATH, memory, postgresql://..., redis://...)")


__all__ = ["KINDS", "Catalogue", "SqlCatalogue", "Version", "open_catalogue"]
