"""The runtime around the language: the `cep` command, sources, state stores, notifications, the HTTP API and console, and Bytewax workers (docs/architecture.md)."""
