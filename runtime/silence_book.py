"""Silences created at run time (LANGUAGE.md §9.4: `/cep/silences`, with a matcher and an
expiry): they apply to matches the engine emits from their creation to their expiry,
by the engine's clock; replay never sees them.

A matcher is the `match` of a file silence (`rule == "disk_full" and host starts_with
"db-"`), checked against the running program's record fields like one, or a list of
Alertmanager-style matchers (`{"name": "host", "value": "db-1", "op": "="}`, ops
`=`, `!=`, `=~`, `!~`) turned into that expression.  A match already silenced by a
file silence keeps that name; otherwise the first active run-time silence by name
sets `silenced`.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from cepdsl.diagnostics import Diagnostic
from cepdsl.plan import Program, SilencePlan

#: Alertmanager matcher operators → the `.cep` expression for `name OP value`.
_OPS = {"=": "{n} == {v}", "==": "{n} == {v}", "!=": "{n} != {v}", "=~": "{n} matches {v}", "!~": "not ({n} matches {v})"}


class SilenceRefused(ValueError):
    """A matcher that does not check: the diagnostics say why (and where, in the text)."""

    def __init__(self, message: str, diagnostics: list[Diagnostic] | None = None, text: str = ""):
        super().__init__(message)
        self.diagnostics = diagnostics or []
        self.text = text


def matcher_text(matchers: Iterable[Mapping[str, Any]]) -> str:
    """Alertmanager-style matchers → a `match` expression (and-ed)."""
    parts = []
    for i, m in enumerate(matchers):
        name, value = m.get("name"), m.get("value")
        op = m.get("op") or ("=~" if m.get("isRegex") else "=") if m.get("isEqual", True) else ("!~" if m.get("isRegex") else "!=")
        if not isinstance(name, str) or not name.replace(".", "").replace("_", "").isalnum():
            raise SilenceRefused(f"matchers[{i}].name: a record field name, got {name!r}")
        if not isinstance(value, str):
            raise SilenceRefused(f"matchers[{i}].value: a string, got {value!r}")
        if op not in _OPS:
            raise SilenceRefused(f"matchers[{i}].op: one of {', '.join(_OPS)}, got {op!r}")
        field_ = name if name in ("rule", "severity") else ".".join(f"`{p}`" for p in name.split("."))
        parts.append(_OPS[op].format(n=field_, v=json.dumps(value)))
    if not parts:
        raise SilenceRefused("matchers: at least one")
    return " and ".join(parts)


def compile_matcher(program: Program, text: str, name: str = "api") -> SilencePlan:
    """The `match` text checked against `program`'s record fields, as a silence with no
    period (the run-time period is creation → expiry)."""
    from cepdsl import ast
    from cepdsl.checker import Checker
    from cepdsl.checker_decls import check_silence
    from cepdsl.parser import parse

    if "\n" in text or len(text) > 4000:
        raise SilenceRefused("the matcher is one line of at most 4000 characters")
    source = f'silence {name} match {text} from "1970-01-01T00:00:00Z" until "1970-01-01T00:00:01Z"'
    tree, diags = parse(source, "matcher")
    if tree is None or diags or len(tree.decls) != 1 or not isinstance(tree.decls[0], ast.SilenceDecl):
        raise SilenceRefused("the matcher is not an expression: " + ("; ".join(d.message for d in diags) or "syntax"), diags, source)
    checker = Checker([])
    checker.rules = list(program.rules)
    check_silence(checker, tree.decls[0], [None] * len(program.rules))  # type: ignore[list-item]
    if checker.diags or not checker.silences:
        raise SilenceRefused("; ".join(d.message for d in checker.diags) or "the matcher does not check", checker.diags, source)
    return checker.silences[0]


@dataclass
class RuntimeSilence:
    id: str
    match_text: str
    plan: SilencePlan
    created_at: float  # engine clock, seconds since the epoch
    expires_at: float
    comment: str = ""
    created_by: str = ""
    expired_at: float | None = None  # set when expired early over the API

    def active(self, now: float) -> bool:
        end = self.expires_at if self.expired_at is None else min(self.expires_at, self.expired_at)
        return self.created_at <= now < end

    def as_json(self, now: float) -> dict[str, Any]:
        state = "active" if self.active(now) else ("expired" if now >= self.created_at else "pending")
        return {
            "id": self.id,
            "match": self.match_text,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "expired_at": self.expired_at,
            "comment": self.comment,
            "created_by": self.created_by,
            "state": state,
        }


@dataclass
class SilenceBook:
    """The run-time silences of one engine; thread-safe (the API adds, the engine reads)."""

    clock: Callable[[], float]
    silences: dict[str, RuntimeSilence] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)  # per rule, matches silenced at run time
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def create(
        self,
        program: Program,
        match: str,
        expires_at: float,
        *,
        comment: str = "",
        created_by: str = "",
        starts_at: float | None = None,
    ) -> RuntimeSilence:
        now = self.clock()
        start = now if starts_at is None else max(float(starts_at), now)
        if not expires_at > start:
            raise SilenceRefused("expires_at must be later than the creation (the engine's clock now)")
        sid = uuid.uuid4().hex[:12]
        plan = compile_matcher(program, match, name=f"api_{sid}")
        s = RuntimeSilence(sid, match, plan, start, float(expires_at), comment, created_by)
        with self._lock:
            self.silences[sid] = s
        return s

    def expire(self, sid: str) -> RuntimeSilence | None:
        with self._lock:
            s = self.silences.get(sid)
            if s is not None and s.expired_at is None:
                s.expired_at = self.clock()
            return s

    def list(self) -> list[RuntimeSilence]:
        with self._lock:
            return sorted(self.silences.values(), key=lambda s: s.created_at)

    def apply(self, rule: Any, frame: pl.DataFrame) -> pl.DataFrame:
        """`frame` (matches `rule` emits now) with `silenced` set by the active run-time
        silences (a file silence's name already there is kept)."""
        from cepdsl.silences import apply_silences

        now = self.clock()
        with self._lock:
            active = [s for s in self.silences.values() if s.active(now)]
        if not active or frame.height == 0:
            # Once run-time silences exist, records keep one shape: `silenced` is always there.
            if "silenced" not in frame.columns:
                frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias("silenced"))
            return frame
        # The period is the engine clock's (checked above): within it, every match counts.
        plans = sorted((_always(s) for s in active), key=lambda p: p.name)
        before = frame["silenced"] if "silenced" in frame.columns else None
        out, _ = apply_silences(frame.drop("silenced") if before is not None else frame, plans, rule)
        if before is not None:
            out = out.with_columns(pl.coalesce(before, out["silenced"]).alias("silenced"))
        n = int(out["silenced"].is_not_null().sum()) - (int(before.is_not_null().sum()) if before is not None else 0)
        if n:
            with self._lock:
                self.counts[rule.id] = self.counts.get(rule.id, 0) + n
        return out


def _always(s: RuntimeSilence) -> SilencePlan:
    import dataclasses

    # An event-time period that holds every match: the engine's clock decided above.
    return dataclasses.replace(s.plan, name=s.id, cron=None, start_us=-(2**62), until_us=2**62)
