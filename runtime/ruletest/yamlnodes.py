"""YAML read node by node, so every value of a test file knows its line.

`yaml.safe_load` gives plain values and forgets where they were written; a test
file's errors must name their line (LANGUAGE.md §9.6), so the file is *composed*
(nodes with marks) and values are taken from the nodes as they are needed.
A plain (unquoted) scalar also keeps its text: YAML 1.1 reads `no` as false and
`1.10` as 1.1, but for a `str` field the author meant the text.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NoReturn

import yaml

from cepdsl.ast import Span
from cepdsl.diagnostics import Diagnostic, did_you_mean


class MalformedTestFile(Exception):
    """A test file that cannot be run as written: carries a diagnostic naming its line."""

    def __init__(self, diagnostic: Diagnostic, source: str | None = None) -> None:
        super().__init__(str(diagnostic))
        self.diagnostic = diagnostic
        self.source = source


@dataclass(frozen=True)
class Where:
    """A place in a test file, for messages."""

    file: str
    line: int  # 1-based
    col: int  # 1-based

    def span(self, width: int = 1) -> Span:
        return Span(self.file, self.line, self.col, self.line, self.col + max(1, width))

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


class Node:
    """A composed YAML node with its file, and typed accessors that fail with the node's line."""

    __slots__ = ("file", "raw")

    def __init__(self, raw: yaml.Node, file: str) -> None:
        self.raw = raw
        self.file = file

    @property
    def where(self) -> Where:
        m = self.raw.start_mark
        return Where(self.file, m.line + 1, m.column + 1)

    @property
    def width(self) -> int:
        s, e = self.raw.start_mark, self.raw.end_mark
        return e.column - s.column if e.line == s.line else 1

    def fail(self, message: str, *hints: str) -> NoReturn:
        raise MalformedTestFile(Diagnostic(self.where.span(self.width), message, tuple(h for h in hints if h)))

    # -------------------------------------------------------------- shapes
    @property
    def is_mapping(self) -> bool:
        return isinstance(self.raw, yaml.MappingNode)

    @property
    def is_sequence(self) -> bool:
        return isinstance(self.raw, yaml.SequenceNode)

    @property
    def is_scalar(self) -> bool:
        return isinstance(self.raw, yaml.ScalarNode)

    @property
    def is_plain(self) -> bool:
        """An unquoted scalar (its text may have been read as a number, bool or null)."""
        return self.is_scalar and self.raw.style in (None, "")

    @property
    def text(self) -> str:
        """A scalar's text as written (without quotes)."""
        return self.raw.value if self.is_scalar else ""

    def items(self, what: str) -> list[tuple[str, Node, Node]]:
        """(key, key node, value node) of a mapping; keys must be distinct scalars."""
        if not self.is_mapping:
            self.fail(f"{what} must be a mapping (`key: value` lines), got {self.kind}")
        out: list[tuple[str, Node, Node]] = []
        seen: dict[str, Where] = {}
        for k, v in self.raw.value:
            key = Node(k, self.file)
            if not key.is_scalar:
                key.fail(f"a key in {what} must be a plain name")
            name = str(key.value())
            if name in seen:
                key.fail(f"`{name}` is given twice in {what} (first at line {seen[name].line})")
            seen[name] = key.where
            out.append((name, key, Node(v, self.file)))
        return out

    def fields(self, what: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> dict[str, Node]:
        """A mapping with known keys: an unknown key is an error with a "did you mean" hint."""
        out: dict[str, Node] = {}
        for name, key, value in self.items(what):
            if name not in allowed:
                hint = did_you_mean(name, allowed)
                key.fail(f"unknown key `{name}` in {what}", *(hint or (f"expected one of: {', '.join(allowed)}",)))
            out[name] = value
        for name in required:
            if name not in out:
                self.fail(f"{what} needs `{name}`")
        return out

    def sequence(self, what: str) -> list[Node]:
        if not self.is_sequence:
            self.fail(f"{what} must be a list (`- item` lines or `[...]`), got {self.kind}")
        return [Node(n, self.file) for n in self.raw.value]

    def value(self) -> Any:
        """The node as plain Python values (YAML's own typing: numbers, bools, null, dates)."""
        return _CONSTRUCTOR.construct_object(self.raw, deep=True)

    def string(self, what: str) -> str:
        if not self.is_scalar or self.value() is None:
            self.fail(f"{what} must be text, got {self.kind}")
        return self.text if self.is_plain else str(self.value())

    def boolean(self, what: str) -> bool:
        v = self.value() if self.is_scalar else None
        if not isinstance(v, bool):
            self.fail(f"{what} must be true or false")
        return v

    @property
    def kind(self) -> str:
        if self.is_mapping:
            return "a mapping"
        if self.is_sequence:
            return "a list"
        v = self.value()
        return "nothing (null)" if v is None else f"{type(v).__name__} {self.text!r}"

    def __iter__(self) -> Iterator[Node]:  # pragma: no cover - guard against misuse
        raise TypeError("use .sequence() or .items()")


class _Constructor(yaml.SafeLoader):
    """A SafeLoader used only for its constructors (never reads a stream)."""

    def __init__(self) -> None:
        super().__init__("")


_CONSTRUCTOR = _Constructor()


def compose(text: str, file: str) -> Node:
    """The document's root node; a YAML syntax error is a MalformedTestFile naming its line."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        problem = e.problem or e.context or "not valid YAML"
        raise MalformedTestFile(Diagnostic(Span(file, line, col, line, col + 1), f"not valid YAML: {problem}"), text) from None
    except yaml.YAMLError as e:  # e.g. more than one document
        raise MalformedTestFile(Diagnostic(Span(file, 1, 1, 1, 2), f"not valid YAML: {e}"), text) from None
    if root is None:
        raise MalformedTestFile(Diagnostic(Span(file, 1, 1, 1, 2), "the test file is empty"), text)
    return Node(root, file)
