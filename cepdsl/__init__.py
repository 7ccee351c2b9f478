"""cep — complex-event processing with a checked rule language.

The embedding API (docs/embedding.md):

    import cepdsl
    rules = cepdsl.compile("ops.cep")            # a path, or the rule text itself
    session = rules.session()
    matches = session.push("metrics", frame)     # Polars, Arrow or pandas frame
    matches = session.flush()                    # end of input: close windows
    matches = rules.replay({"metrics": "metrics.parquet"})

This module stays import-light (Polars, Numba and the parser load on first
use) so `cep check` starts fast.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl

    from cepdsl.engine import Session
    from cepdsl.plan import Program, RulePlan

__all__ = ["CheckError", "Rules", "compile"]


def __getattr__(name: str) -> Any:
    if name == "CheckError":
        from cepdsl.diagnostics import CheckError

        return CheckError
    raise AttributeError(f"module 'cepdsl' has no attribute {name!r}")


def _is_path(source: str | os.PathLike[str]) -> bool:
    if isinstance(source, os.PathLike):
        return True
    if "\n" in source or len(source) > 4096:
        return False
    return source.endswith(".cep") or Path(source).is_file()


def compile(source: str | os.PathLike[str] | list[str | os.PathLike[str]]) -> Rules:  # noqa: A001 - the API's name on purpose
    """Check a rule file (a path if it names an existing file or ends in `.cep`, else the
    rule text itself), a directory or a list of paths (one program, LANGUAGE.md §9.1),
    and return its rules.  Raises `cepdsl.CheckError` (with `.diagnostics`) when the
    program does not check."""
    from cepdsl.frontend import compile_path, compile_source

    if isinstance(source, (list, tuple)) or (
        isinstance(source, (str, os.PathLike)) and "\n" not in str(source) and len(str(source)) < 4096 and Path(source).is_dir()
    ):
        return Rules(compile_path(source))
    if _is_path(source):
        return Rules(compile_path(source))
    return Rules(compile_source(str(source)))


class Rules:
    """A checked rule file: sessions for streaming, `replay` for history."""

    def __init__(self, program: Program) -> None:
        self.program = program

    def __repr__(self) -> str:
        return f"<Rules {', '.join(self.ids)}>"

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(r.id for r in self.program.rules)

    def __iter__(self) -> Iterator[RulePlan]:
        return iter(self.program.rules)

    def __len__(self) -> int:
        return len(self.program.rules)

    def __getitem__(self, rule_id: str) -> RulePlan:
        return self.program.rule(rule_id)

    def session(self, tables: Mapping[str, Any] | None = None) -> Session:
        """A streaming session: `push(stream, frame)`, `advance(stream, watermark_us)`,
        `flush()`, `dead_letters()`, `stats()`, `snapshot()` / `restore()`.
        `tables`: lookup-table rows by name (default: read from the table files)."""
        from cepdsl.engine import Session

        return Session(self.program, tables=tables)

    def replay(self, data: Mapping[str, Any], tables: Mapping[str, Any] | None = None) -> dict[str, pl.DataFrame]:
        """Run finished history: `{stream: frame | path | [frames or paths]}` → every rule's
        matches (an empty frame with the right columns when nothing matched).  Rows are
        ordered by event time (ties keep input order); a stream left out has no rows.
        Lookup tables are read from their files as they are at the start (§9.2), unless
        given in `tables` (name → frame)."""
        return self.replay_with_dead_letters(data, tables)[0]

    def replay_with_dead_letters(
        self, data: Mapping[str, Any], tables: Mapping[str, Any] | None = None
    ) -> tuple[dict[str, pl.DataFrame], pl.DataFrame]:
        """`replay`, plus the rows that could not be used (no event time, ...)."""
        import polars as pl

        from cepdsl.engine import Session, conform

        session = Session(self.program, replay=True, tables=tables)
        parts: dict[str, list[pl.DataFrame]] = {r.id: [] for r in self.program.rules}
        for name, value in data.items():
            plan = self.program.stream(name) if any(s.name == name for s in self.program.streams) else None
            if plan is None:
                raise KeyError(f"unknown stream {name!r} (declared: {', '.join(s.name for s in self.program.streams)})")
            for source, frame in _frames(value):
                out = session.push(name, conform(plan, frame, source=source))
                for rid, f in out.items():
                    if f.height:
                        parts[rid].append(f)
        for rid, f in session.flush().items():
            if f.height:
                parts[rid].append(f)
        matches = {r.id: pl.concat(parts[r.id]) if parts[r.id] else r.empty_output() for r in self.program.rules}
        return matches, session.take_dead_letters()


def _frames(value: Any) -> Iterable[tuple[str, Any]]:
    """(description, frame) for a frame, a Parquet path/dir/glob, or a list of them."""
    if isinstance(value, (list, tuple)):
        for item in value:
            yield from _frames(item)
        return
    if isinstance(value, (str, os.PathLike)):
        import polars as pl

        path = Path(value)
        files = sorted(path.rglob("*.parquet")) if path.is_dir() else [path]
        for f in files:
            yield str(f), pl.read_parquet(f if f.exists() else str(f))  # a glob: Polars expands it
        return
    yield "input", value
