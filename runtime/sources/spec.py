"""`--source` strings → live sources.

    jsonl:-                                  JSON lines on stdin
    jsonl:/path/events.jsonl[?follow=false&eager=false]
                                             a file, tailed (follow) by default; a batch is
                                             cut as soon as nothing more is waiting unless
                                             eager=false (then: max_rows or max_delay)
    parquet-dir:/path/dir[?poll=1s&settle=5s]
    redis://HOST:PORT/DB?stream=KEY[&group=cep&consumer=c1&start=0&claim_idle=60s]
    rediss://...                             the same over TLS
    http://HOST:PORT/PATH?interval=5s[&timeout=5s&map.FIELD=PATH]
    https://...

Common query options for every kind: `max_rows=N`, `max_delay=DURATION`,
`max_event=SIZE` (largest event accepted, default 1MB; bigger ones are dead letters).
Durations are `500ms`, `5s`, `1m`, `1h` or plain seconds. In HTTP specs the
options above are taken out of the query; the rest of it is sent to the server.
Keyword arguments to `open_source` override the spec (and pass what a string
cannot hold: `clock`, `start_offsets`, `mapping`, `client`).
"""

from __future__ import annotations

import difflib
import importlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from cepdsl import durations
from cepdsl.diagnostics import nearest
from cepdsl.plan import StreamPlan
from cepdsl.registry import Registry
from runtime.sources.batch import Source
from runtime.sources.errors import SourceSpecError


def parse_duration_s(text: str) -> float:
    """Seconds from `500ms`, `5s`, `1m`, `1h` or plain seconds (cepdsl.durations, shared with the language)."""
    try:
        return durations.parse_duration_s(text)
    except durations.DurationError as e:
        raise SourceSpecError(str(e)) from None


_SIZE = re.compile(r"^\s*(\d+)\s*(b|kb|mb|gb)?\s*$", re.IGNORECASE)
_UNIT_B = {"b": 1, "kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30, None: 1}


def parse_size_bytes(text: str) -> int:
    m = _SIZE.match(text)
    if not m or int(m.group(1)) < 1:
        raise SourceSpecError(f"not a size: {text!r} (use e.g. 65536, 512KB, 1MB)")
    return int(m.group(1)) * _UNIT_B[m.group(2).lower() if m.group(2) else None]


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise SourceSpecError(f"not a boolean: {text!r}")


def _common(query: dict[str, str], spec: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "max_rows" in query:
        try:
            out["max_rows"] = int(query.pop("max_rows"))
        except ValueError as e:
            raise SourceSpecError(f"{spec}: max_rows must be an integer") from e
    if "max_delay" in query:
        out["max_delay_s"] = parse_duration_s(query.pop("max_delay"))
    if "max_event" in query:
        out["max_event_bytes"] = parse_size_bytes(query.pop("max_event"))
    return out


def _split_query(rest: str) -> tuple[str, dict[str, str]]:
    if "?" not in rest:
        return rest, {}
    path, _, q = rest.partition("?")
    return path, dict(parse_qsl(q, keep_blank_values=True))


_COMMON = ("max_rows", "max_delay")


@dataclass(frozen=True)
class SourceKind:
    """One `--source` kind: its spec prefixes, the options it reads (for the error that
    names an unknown one), and how a spec string of it becomes a source."""

    name: str
    schemes: tuple[str, ...]  # what may stand before the first `:` (`rediss` is redis too)
    options: tuple[str, ...]
    #: (the spec, what follows `scheme:`, the stream, keyword overrides) → a Source
    open: Callable[[str, str, StreamPlan, dict[str, Any]], Source]


#: The source kinds, in the order messages list them (docs/sources-and-state.md).
SOURCE_KINDS: Registry[SourceKind] = Registry("source kind")


def source_kind(name: str, schemes: tuple[str, ...], options: tuple[str, ...]) -> Callable[[Callable], Callable]:
    """Decorator: register an opener as the source kind `name`."""

    def register(fn: Callable[[str, str, StreamPlan, dict[str, Any]], Source]) -> Callable:
        SOURCE_KINDS.add(SourceKind(name, schemes, options, fn))
        return fn

    return register


def _reject_unknown(query: dict[str, str], spec: str, kind: str) -> None:
    if query:
        known = SOURCE_KINDS[kind].options
        hints = tuple(f"did you mean `{best}`?" for k in sorted(query) if (best := nearest(k, known)))
        raise SourceSpecError(
            f"{spec}: unknown option(s) {', '.join(sorted(query))} (a {kind} source takes {', '.join(known)})", hints
        )


def open_source(spec: str, stream: StreamPlan, **opts: Any) -> Source:
    """A live source for `stream` from a spec string (see the module docstring)."""
    kind, sep, rest = spec.partition(":")
    if not sep:
        guess = "parquet-dir" if os.path.isdir(spec) else "jsonl"
        raise SourceSpecError(
            f"source spec {spec!r} has no kind (jsonl:-, jsonl:PATH, parquet-dir:DIR, redis://, http://)",
            (f"did you mean `{guess}:{spec}`?",),
        )
    kind = kind.lower()
    for k in SOURCE_KINDS:
        if kind in k.schemes:
            return k.open(spec, rest, stream, opts)
    best = nearest(kind, [s for k in SOURCE_KINDS for s in k.schemes])
    raise SourceSpecError(
        f"unknown source kind {kind!r} in {spec!r} ({', '.join(SOURCE_KINDS.names())})", (f"did you mean `{best}:`?",) if best else ()
    )


def _path_kind(name: str, source: str, missing: str, readers: dict[str, tuple[str, Callable[[str], Any]]]) -> None:
    """Register a `NAME:PATH?options` kind: `source` (`module:Class`, imported when first
    opened) takes the path and keyword arguments from the options `readers` knows
    (option → (keyword, parser)) and the common ones; any other option is refused."""

    def open_path(spec: str, rest: str, stream: StreamPlan, opts: dict[str, Any]) -> Source:
        path, query = _split_query(rest)
        if not path:
            raise SourceSpecError(f"{spec}: {missing}")
        kw = _common(query, spec)
        for option, (keyword, parse) in readers.items():
            if option in query:
                kw[keyword] = parse(query.pop(option))
        _reject_unknown(query, spec, name)
        module, _, cls = source.partition(":")
        return getattr(importlib.import_module(module), cls)(stream, path, **{**kw, **opts})

    SOURCE_KINDS.add(SourceKind(name, (name,), (*readers, *_COMMON), open_path))


_path_kind(
    "jsonl",
    "runtime.sources.jsonl:JsonlSource",
    "missing path (use jsonl:- for stdin)",
    {"follow": ("follow", _bool), "poll": ("poll_s", parse_duration_s), "eager": ("flush_when_caught_up", _bool)},
)
_path_kind(
    "parquet-dir",
    "runtime.sources.parquet_dir:ParquetDirSource",
    "missing directory",
    {"poll": ("poll_s", parse_duration_s), "settle": ("settle_s", parse_duration_s)},
)


@source_kind("redis", ("redis", "rediss"), ("stream", "group", "consumer", "start", "claim_idle", *_COMMON))
def _redis(spec: str, rest: str, stream: StreamPlan, opts: dict[str, Any]) -> Source:
    from runtime.sources.redis_streams import RedisStreamSource

    parts = urlsplit(spec)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    kw = _common(query, spec)
    key = query.pop("stream", None) or opts.pop("key", None)
    for name in ("group", "consumer"):
        if name in query:
            kw[name] = query.pop(name)
    if "start" in query:
        kw["start_id"] = query.pop("start")
    if "claim_idle" in query:
        kw["claim_idle_ms"] = int(parse_duration_s(query.pop("claim_idle")) * 1000)
    _reject_unknown(query, spec, "redis")  # first: `strem=` is a typo before it is a missing stream
    if not key:
        raise SourceSpecError(f"{spec}: missing ?stream=KEY")
    url = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    return RedisStreamSource(stream, opts.pop("client", url), key=key, **{**kw, **opts})


@source_kind("http", ("http", "https"), ("interval", "timeout", "map.FIELD", *_COMMON))
def _http(spec: str, rest: str, stream: StreamPlan, opts: dict[str, Any]) -> Source:
    from runtime.sources.http_poll import HttpPollSource

    parts = urlsplit(spec)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    ours = {k: v for k, v in pairs if k in ("interval", "timeout", "max_rows", "max_delay", "max_event") or k.startswith("map.")}
    theirs = [(k, v) for k, v in pairs if k not in ours]
    # The rest goes to the server, so a misspelt option would vanish there silently: a
    # name this close to one of ours (`intervl`) is taken for a typo.
    for k, _ in theirs:
        best = difflib.get_close_matches(k, ("interval", "timeout", "max_rows", "max_delay"), n=1, cutoff=0.8)
        if best and not k.startswith("map"):
            raise SourceSpecError(
                f"{spec}: unknown option {k} (an http source takes {', '.join(SOURCE_KINDS['http'].options)}; "
                "other query parameters go to the server)",
                (f"did you mean `{best[0]}`?",),
            )
    kw = _common(ours, spec)
    if "interval" in ours:
        kw["interval_s"] = parse_duration_s(ours.pop("interval"))
    if "timeout" in ours:
        kw["timeout_s"] = parse_duration_s(ours.pop("timeout"))
    mapping = {k[4:]: v for k, v in ours.items() if k.startswith("map.")}
    if mapping:
        kw["mapping"] = {**mapping, **opts.pop("mapping", {})}
    url = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(theirs), parts.fragment))
    return HttpPollSource(stream, url, **{**kw, **opts})
