"""`python -m runtime.cli` runs the `cep` command."""

from runtime.cli import main

main(prog_name="cep")
