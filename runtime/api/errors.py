"""Every error is JSON `{"error": {"code", "message"[, "diagnostics"]}}`, never a traceback."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from runtime.api.guard import BodyTooLarge
from runtime.api.models import ErrorBody
from runtime.control import Refused

log = logging.getLogger("cep.api")

_CODES = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    413: "too-large",
    415: "unsupported-media-type",
    421: "host-not-allowed",
    422: "invalid-request",
    503: "unavailable",
}

#: What error responses look like, for every route's OpenAPI entry.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": desc}
    for code, desc in (
        (400, "malformed body"),
        (401, "token required"),
        (403, "X-CEP-Request header required"),
        (404, "unknown id"),
        (409, "conflict (e.g. a file rule is read-only)"),
        (413, "body over the size limit"),
        (421, "Host not allowed"),
        (422, "invalid request, or rule text that does not check"),
        (503, "the engine is busy; the change is queued"),
    )
}


def error_json(
    status: int, code: str, message: str, diagnostics: list[dict[str, Any]] | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if diagnostics is not None:
        body["diagnostics"] = diagnostics
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def store_unavailable(e: BaseException) -> bool:
    """Connection trouble with Redis, PostgreSQL or a locked SQLite file: a 503, not a bug."""
    mod = type(e).__module__
    name = type(e).__name__
    return (
        (mod.startswith("redis") and name in ("ConnectionError", "TimeoutError", "BusyLoadingError"))
        or (mod.startswith("psycopg") and name in ("OperationalError", "InterfaceError"))
        or (mod == "sqlite3" and name == "OperationalError")
    )


def install(app: FastAPI) -> None:
    @app.exception_handler(Refused)
    async def refused(_: Request, e: Refused) -> JSONResponse:
        return error_json(e.status, e.code, e.message, e.diagnostics)

    @app.exception_handler(BodyTooLarge)
    async def too_large(request: Request, _: BodyTooLarge) -> JSONResponse:
        from runtime.api.guard import body_limit

        return error_json(413, "too-large", f"the body is over {body_limit(request.url.path)} bytes")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, e: StarletteHTTPException) -> JSONResponse:
        message = e.detail if isinstance(e.detail, str) else "request refused"
        return error_json(e.status_code, _CODES.get(e.status_code, "error"), message, headers=e.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, e: RequestValidationError) -> JSONResponse:
        parts = []
        for err in e.errors()[:10]:
            where = ".".join(str(p) for p in err.get("loc", ()))
            parts.append(f"{where}: {err.get('msg')}")
        return error_json(422, "invalid-request", "; ".join(parts) or "invalid request")

    @app.exception_handler(Exception)
    async def bug(request: Request, e: Exception) -> JSONResponse:
        if store_unavailable(e):
            log.warning("%s %s: a store is unavailable: %s", request.method, request.url.path, e)
            return error_json(503, "store-unavailable", f"a store is unavailable ({type(e).__name__}); try again")
        log.exception("%s %s failed", request.method, request.url.path)
        return error_json(500, "internal", f"internal error ({type(e).__name__}); the server log has the details")
