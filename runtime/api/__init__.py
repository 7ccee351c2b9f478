"""The HTTP API behind `cep serve`: routers by topic (see `runtime.api.app.ROUTERS`)."""

from runtime.api.app import ROUTERS, create_app

__all__ = ["ROUTERS", "create_app"]
