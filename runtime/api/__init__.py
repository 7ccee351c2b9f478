"""The HTTP API behind `cep serve`."""

from runtime.api.app import create_app

__all__ = ["create_app"]
