"""`cep serve`: the HTTP API."""

from __future__ import annotations

import click

from runtime.cli.common import load_program
from runtime.cli.group import main


@main.command()
@click.argument("file", required=False)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True)
def serve(file: str | None, host: str, port: int) -> None:
    """Serve the HTTP API (health, rules, stats, check)."""
    import uvicorn

    from runtime.api import create_app

    program = load_program(file) if file else None
    uvicorn.run(create_app(program, file), host=host, port=port, log_level="warning")
