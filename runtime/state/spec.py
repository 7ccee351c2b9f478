"""`--state` strings → a store.

    memory                       in this process only
    PATH or sqlite:PATH          a local SQLite file (the embedded default); `sqlite:///abs` works too
    redis://HOST:PORT/DB[?prefix=cep:&backoff=500ms&backoff_max=30s]
                                 Redis, wrapped in ResilientStore (retry backoff while it is down)
    rediss://...                 the same over TLS

`--outbox` takes the same file spellings (`sqlite_path`), so `--outbox sqlite:x.sqlite`
is the file `x.sqlite`, not a directory named `sqlite:`.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from cepdsl import durations
from cepdsl.diagnostics import nearest
from runtime.state.store import MemoryStore, StateStore

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
REDIS_OPTIONS = ("prefix", "backoff", "backoff_max")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


class StateSpecError(ValueError):
    """A `--state`/`--outbox` string that cannot be understood; `hints` say what was probably meant."""

    def __init__(self, message: str, hints: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.hints = tuple(hints)


def sqlite_path(spec: str) -> str | None:
    """The file a spec names (`x.sqlite`, `sqlite:x.sqlite`, `sqlite:///abs/x.sqlite`), or
    None when it names something else (`memory`, `redis://...`). An unknown URL scheme
    (`reddis://`) is an error, not a file name."""
    if spec == "memory" or spec.startswith(REDIS_SCHEMES):
        return None
    if spec.startswith("sqlite:"):
        path = spec[len("sqlite:") :]
        path = path[2:] if path.startswith("//") else path  # sqlite:///abs → /abs (SQLAlchemy's spelling)
        if not path:
            raise StateSpecError(f"{spec!r} needs a path", ("e.g. sqlite:.cep-state.sqlite, or just the path",))
        return path
    m = _SCHEME.match(spec)
    if m:
        best = nearest(m.group(1).lower(), ("redis", "rediss", "unix", "sqlite"))
        raise StateSpecError(
            f"unknown store {spec!r} (memory, PATH, sqlite:PATH, redis://HOST:PORT/DB)",
            (f"did you mean `{best}://`?",) if best else (),
        )
    if not spec:
        raise StateSpecError("empty store spec (memory, PATH, sqlite:PATH, redis://HOST:PORT/DB)")
    return spec


def _duration_s(text: str, spec: str) -> float:
    try:
        return durations.parse_duration_s(text)
    except durations.DurationError as e:
        raise StateSpecError(f"{spec}: {e}") from None


def redis_options(spec: str) -> tuple[str, dict[str, str]]:
    """`redis://h:p/db?prefix=x` → (URL without the query, the options); unknown options are errors."""
    parts = urlsplit(spec)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(k for k in query if k not in REDIS_OPTIONS)
    if unknown:
        hints = tuple(f"did you mean `{best}`?" for k in unknown if (best := nearest(k, REDIS_OPTIONS)))
        raise StateSpecError(f"{spec}: unknown option(s) {', '.join(unknown)} ({', '.join(REDIS_OPTIONS)})", hints)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")), query


def open_store(spec: str, **opts: Any) -> StateStore:
    if spec == "memory":
        return MemoryStore(**opts)
    path = sqlite_path(spec)
    if path is not None:
        from pathlib import Path

        from runtime.state.sqlite import SqliteStore

        Path(path).parent.mkdir(parents=True, exist_ok=True)  # as the outbox does: `--state out/x.sqlite` just works
        return SqliteStore(path, **opts)
    from runtime.state.redis_store import RedisStore, connect
    from runtime.state.resilient import ResilientStore

    url, query = redis_options(spec)
    prefix = query.pop("prefix", "cep:")
    resilience = {k: opts.pop(k) for k in ("clock", "backoff_initial_s", "backoff_max_s") if k in opts}
    for name, key in (("backoff", "backoff_initial_s"), ("backoff_max", "backoff_max_s")):
        if name in query:
            resilience.setdefault(key, _duration_s(query.pop(name), spec))
    return ResilientStore(RedisStore(connect(url), prefix=prefix, **opts), **resilience)
