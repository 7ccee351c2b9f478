"""`cep` — the command line (LANGUAGE.md §8).

Each command is a module of this package, named for what it does; importing
the module registers the command on `main`.  Commands import what they need
when they run, so `cep check` does not pay for Numba, Redis or HTTP clients.
User mistakes end with a message and exit code 1 or 2; tracebacks are for bugs.
"""

from __future__ import annotations

# Registration by import: one line per command module.
from runtime.cli import authoring, importing, lsp, notifying, replaying, running, serving, state, testing  # noqa: E402,F401
from runtime.cli.group import main

__all__ = ["main"]
