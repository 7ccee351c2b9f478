"""What every router shares: how it is made, what its routes take from the request (the
control plane, IDs from the path) and bodies read safely.

Routes that block (checking rule text, waiting for the engine thread to apply a change
between batches, typing events) are plain `def`s: FastAPI runs them in its thread pool,
off the event loop.  A body FastAPI does not parse is read first, by an async dependency
marked `raw_body`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Path, Request
from fastapi.routing import APIRoute

from runtime.api.errors import ERROR_RESPONSES
from runtime.api.models import ID_PATTERN
from runtime.control import ControlPlane, Refused

#: OpenAPI for routes that take `.cep` text as text/plain (or JSON `{"text": ...}`).
CEP_TEXT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "text/plain": {"schema": {"type": "string", "maxLength": 1_000_000}},
            "application/json": {
                "schema": {
                    "type": "object",
                    "description": "{\"text\": \".cep text\"} or a rule "
                    "in the original design's JSON shape (converted as `cep import` does)",
                }
            },
        },
    }
}

F = TypeVar("F", bound=Callable[..., Any])
#: Dependencies that read the raw body themselves → the OpenAPI of that body (FastAPI sees
#: only bodies it parses); see `raw_body`.
_RAW_BODIES: dict[Callable[..., Any], dict[str, Any]] = {}


def raw_body(openapi: dict[str, Any]) -> Callable[[F], F]:
    """Mark a dependency as the reader of the request's body (`.cep` text, events): a route
    that takes it lists `openapi` as its request body, so the two cannot drift apart."""

    def mark(fn: F) -> F:
        _RAW_BODIES[fn] = openapi
        return fn

    return mark


class _Route(APIRoute):
    """A route that documents the body its `raw_body` dependency reads."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        for dep in self.dependant.dependencies:
            if dep.call in _RAW_BODIES:
                self.openapi_extra = {**_RAW_BODIES[dep.call], **(self.openapi_extra or {})}


def topic_router(tag: str, *, error_responses: bool = True) -> APIRouter:
    """The router of one topic (module): its OpenAPI tag, and what its error responses look like."""
    return APIRouter(tags=[tag], responses=ERROR_RESPONSES if error_responses else None, route_class=_Route)


def ops(request: Request) -> ControlPlane:
    return request.app.state.ops


Ops = Annotated[ControlPlane, Depends(ops)]
RuleId = Annotated[str, Path(pattern=ID_PATTERN, description="a rule ID")]


async def body_bytes(request: Request) -> bytes:
    return await request.body()  # capped while read by runtime.api.guard


def decode_text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Refused(400, "encoding", f"the body is not valid UTF-8 (byte {e.start})") from None


def parse_json(data: bytes) -> Any:
    text = decode_text(data)
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        where = f" at line {e.lineno} column {e.colno}" if isinstance(e, json.JSONDecodeError) else ""
        raise Refused(400, "invalid-json", f"the body is not valid JSON{where}") from None


def is_json(request: Request) -> bool:
    return request.headers.get("content-type", "").split(";")[0].strip().lower() in ("application/json", "application/x-ndjson")
