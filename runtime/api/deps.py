"""What every router takes from the request: the control plane, and bodies read safely."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

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


def ops(request: Request) -> ControlPlane:
    return request.app.state.ops


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
