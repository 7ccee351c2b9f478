"""The operations API: one FastAPI app of routers by topic, over a `ControlPlane`.

Routes live under `/cep/` as in the original design (cep-blueprint-v2 §7), plus
`/metrics` (Prometheus) and `/docs` (Swagger UI, served locally).  A router is
a module of this package with a `router`; `ROUTERS` lists them in the order
their paths must be tried (`/cep/rules/performance` before `/cep/rules/{id}`).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI

from cepdsl.plan import Program
from runtime.api import errors
from runtime.api.guard import LOOPBACK_HOSTS, Guard
from runtime.control import ControlPlane

#: Router modules of this package, in order (a new topic = a new module + its name here).
ROUTERS = ("rules", "simulate", "anomaly", "events", "stats", "streams", "channels", "templates", "silences", "health", "docs")


def create_app(
    program: Program | None = None,
    file: str | None = None,
    engine: Any = None,
    *,
    ops: ControlPlane | None = None,
    token: str | None = None,
    hosts: Iterable[str] = LOOPBACK_HOSTS,
) -> FastAPI:
    """The API over `ops` (or, for a bare program, a read-only view of it)."""
    from runtime.api.docs import mount_assets
    from runtime.api.numbers import Rates, Today
    from runtime.api.prometheus import registry_for

    if ops is None:
        ops = _view_of(program, file, engine)
    app = FastAPI(
        title="cep",
        version="0.1.0",
        docs_url=None,
        redoc_url=None,
        description="Operations API of the cep engine: rules, alert history, simulation, numbers, "
        "health. State-changing routes need `Authorization: Bearer TOKEN` when the server "
        "has a token, else the header `X-CEP-Request: 1`. See docs/api.md.",
    )
    app.state.ops = ops
    app.state.today = Today()
    app.state.rates = Rates()
    app.state.registry = registry_for(ops)
    errors.install(app)
    for name in ROUTERS:
        app.include_router(importlib.import_module(f"runtime.api.{name}").router)
    mount_assets(app)
    from runtime.console import mount as mount_console

    app.state.token_required = bool(token)  # the console asks for the token up front when set
    mount_console(app)

    app.add_middleware(Guard, token=token, hosts=hosts)  # type: ignore[arg-type]
    app.openapi = lambda: _openapi_with_security(app)  # type: ignore[method-assign]
    return app


def _openapi_with_security(app: FastAPI) -> dict[str, Any]:
    """State-changing operations declare what the guard asks for, so /docs' "Authorize" button can
    send it (the bearer token, or `X-CEP-Request: 1` on a server without one)."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    from fastapi.openapi.utils import get_openapi

    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    doc.setdefault("components", {})["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "description": "when the server has --token / CEP_API_TOKEN"},
        "cepRequest": {
            "type": "apiKey",
            "in": "header",
            "name": "X-CEP-Request",
            "description": "`1`, on a server without a token (a header HTML forms cannot send)",
        },
    }
    for item in doc.get("paths", {}).values():
        for method, op in item.items():
            if method.upper() not in ("GET", "HEAD", "OPTIONS") and isinstance(op, dict):
                op["security"] = [{"bearer": []}, {"cepRequest": []}]
    app.openapi_schema = doc
    return doc


def _view_of(program: Program | None, file: str | None, engine: Any) -> ControlPlane:
    """A control plane over a program given in memory (no files read, catalogue in memory)."""
    from runtime.catalogue import open_catalogue
    from runtime.catalogue.program import Assembly, Declared

    ops = ControlPlane([file] if file else [], open_catalogue("memory"))
    if program is not None:
        declared = [Declared("rule", r.id, r.file or file or "<program>", r.line, "") for r in program.rules]
        declared += [Declared("channel", c.name, file or "<program>", 0, "") for c in program.channels]
        ops.assembly = Assembly(program, [], {}, declared)
        ops._file_texts = {d.file: "" for d in declared}
    if engine is not None:
        ops.attach(engine)
    return ops
