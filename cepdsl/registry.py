"""The registry type behind each extension point (aggregates, scalar functions, channel
kinds, source kinds): entries by name, plus the parts other layers attach to them.

An entry is the language's half of an idea (a name, its typing, its docs); a *part*
is what another layer needs to run it (a Polars expression, an interpreter function,
a channel sender, a default template).  Parts register against the entry from the
module that owns them, so the language never imports the backends or the runtime.
`missing()` lists every entry without one of its required parts:
tests/test_registries.py walks every registry with it, so a half-added aggregate or
channel fails the tests, not a notification retry loop at 3 a.m.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, Protocol, TypeVar


class Named(Protocol):
    @property
    def name(self) -> str: ...


E = TypeVar("E", bound=Named)
F = TypeVar("F")


class RegistryError(LookupError):
    """A name the registry does not hold, or a part an entry lacks."""


class Registry(Generic[E]):
    """Entries in registration order (docs tables and completions list them so)."""

    def __init__(self, what: str, parts: tuple[str, ...] = (), optional: tuple[str, ...] = ()) -> None:
        self.what = what  # "aggregate", "function", "channel kind" — for messages
        self.required = parts
        self.optional = optional
        self._entries: dict[str, E] = {}
        self._parts: dict[str, dict[str, Any]] = {p: {} for p in (*parts, *optional)}

    # -- entries ------------------------------------------------------------------
    def add(self, entry: E) -> E:
        if entry.name in self._entries:
            raise RegistryError(f"{self.what} `{entry.name}` is already registered")
        self._entries[entry.name] = entry
        return entry

    def remove(self, name: str) -> None:
        """Drop an entry and its parts (tests add toy entries and take them away again)."""
        self._entries.pop(name, None)
        for parts in self._parts.values():
            parts.pop(name, None)

    def __getitem__(self, name: str) -> E:
        try:
            return self._entries[name]
        except KeyError:
            raise RegistryError(f"unknown {self.what} `{name}`") from None

    def get(self, name: str) -> E | None:
        return self._entries.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[E]:
        return iter(list(self._entries.values()))

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    # -- parts --------------------------------------------------------------------
    def implement(self, part: str, name: str) -> Callable[[F], F]:
        """Decorator: `value` is `name`'s `part` (e.g. its Polars expression builder)."""
        if part not in self._parts:
            raise RegistryError(f"{self.what}s have no part `{part}` (parts: {', '.join(self._parts)})")

        def attach(value: F) -> F:
            self._parts[part][name] = value
            return value

        return attach

    def set_part(self, part: str, name: str, value: Any) -> None:
        self.implement(part, name)(value)

    def part(self, part: str, name: str) -> Any:
        """`name`'s `part`; RegistryError (naming both) when it was never given."""
        try:
            return self._parts[part][name]
        except KeyError:
            raise RegistryError(f"{self.what} `{name}` has no {part} part") from None

    def has_part(self, part: str, name: str) -> bool:
        return name in self._parts.get(part, {})

    def missing(self) -> list[str]:
        """Every required part an entry lacks, and every part given for no entry."""
        out = [f"{self.what} `{n}` has no {p} part" for n in self._entries for p in self.required if n not in self._parts[p]]
        out += [
            f"{p} part given for unknown {self.what} `{n}`" for p, given in self._parts.items() for n in given
            if n not in self._entries
        ]  # fmt: skip
        return out
