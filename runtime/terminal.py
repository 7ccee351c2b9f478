"""What cep prints for people: one place that decides about colour and style.

`NO_COLOR` (https://no-color.org) turns off colour *and* bold/dim/underline: rich alone
keeps the styles when it honours NO_COLOR, which still puts escape codes in a log.
"""

from __future__ import annotations

import os
import sys
from typing import IO, Any


def no_color() -> bool:
    return bool(os.environ.get("NO_COLOR"))


def console(file: IO[str] | None = None, **kw: Any) -> Any:
    """A rich Console on `file` (stderr by default) that honours NO_COLOR fully."""
    from rich.console import Console

    if no_color():
        kw["color_system"] = None
    return Console(file=file if file is not None else sys.stderr, **kw)


def style(text: str, code: str = "1") -> str:
    """`text` in an ANSI style (bold by default) when stdout is a terminal and NO_COLOR is unset."""
    if no_color() or not sys.stdout.isatty():
        return text
    return f"\033[{code}m{text}\033[0m"
