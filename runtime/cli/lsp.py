"""`cep lsp`: the language server for editors (diagnostics, completion, hover, ...)."""

from __future__ import annotations

import click

from runtime.cli.common import fail
from runtime.cli.group import main


@main.command()
@click.option("--stdio", is_flag=True, help="Talk LSP over stdin/stdout (the default and only transport).")
def lsp(stdio: bool) -> None:
    """Run the language server over stdio (see docs/editors.md)."""
    try:
        from runtime.lsp.server import serve
    except ImportError as e:  # pygls is an optional extra
        fail(f"the language server needs the `lsp` extra: pip install 'cep[lsp]' ({e.name} is missing)", 2)
    serve()
