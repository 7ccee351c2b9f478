"""Errors raised at the input edge.

User mistakes in the data (a declared field the file lacks, a column of the
wrong type) are `SchemaError`s with messages meant to be shown as they are;
`SourceSpecError` is a `--source` string we cannot parse.
"""

from __future__ import annotations


class SourceError(Exception):
    """Base of everything the sources raise on purpose."""


class SchemaError(SourceError):
    """The data does not fit the declared stream (missing field, incompatible type)."""


class UnreadableInputError(SourceError):
    """An input file that is not what it should be (a truncated or non-Parquet file)."""


class NoInputError(SourceError, FileNotFoundError):
    """A path, directory or glob matched no Parquet file."""


class SourceSpecError(SourceError, ValueError):
    """A source spec (`jsonl:-`, `redis://...`) that cannot be understood; `hints`
    say what was probably meant (the CLI prints them as `hint:` lines)."""

    def __init__(self, message: str, hints: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.hints = tuple(hints)
