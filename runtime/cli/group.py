"""The `cep` command group; each command lives in a module of this package named for it."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cep")
def main() -> None:
    """cep — complex-event processing with checked, compiled rules."""
