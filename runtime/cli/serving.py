"""`cep serve`: the HTTP API."""

from __future__ import annotations

import click

from runtime.cli.common import load_program
from runtime.cli.group import main


@main.command()
@click.argument("file", required=False)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option("--log-format", type=click.Choice(("text", "json")), default="text", show_default=True,
              help="Log lines (the server's included) as text or one JSON object per line.")
def serve(file: str | None, host: str, port: int, log_format: str) -> None:
    """Serve the HTTP API (health, rules, stats, check)."""
    import uvicorn

    from runtime import logs
    from runtime.api import create_app

    program = load_program(file) if file else None
    logs.configure(log_format)
    # log_config=None: uvicorn keeps the handlers `logs.configure` installed (text or JSON).
    uvicorn.run(create_app(program, file), host=host, port=port, log_level="warning", log_config=None)
