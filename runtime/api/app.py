"""HTTP API: check rule text, list the loaded rules and their plans, health and stats.

Routes live under `/cep/` as in the original design.  The app only reads what
it is given (a Program, and optionally a running engine exposing `stats()` and
`health()`); it never starts work of its own.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import Body, FastAPI, HTTPException
from fastapi.responses import PlainTextResponse

from cepdsl.diagnostics import render
from cepdsl.frontend import check_source
from cepdsl.plan import Program


def _diagnostic_json(d: Any, source: str) -> dict[str, Any]:
    return {
        "file": d.span.file,
        "line": d.span.line,
        "col": d.span.col,
        "end_line": d.span.end_line,
        "end_col": d.span.end_col,
        "severity": d.severity,
        "message": d.message,
        "hints": list(d.hints),
        "code": d.code,
        "rendered": render(d, source),
    }


def _rule_json(r: Any) -> dict[str, Any]:
    return {
        "id": r.id,
        "title": r.title,
        "kind": r.kind.value,
        "stream": r.stream.name,
        "severity": r.severity,
        "group_by": list(r.group_keys),
        "notify": list(r.notify),
        "fallback": r.fallback,
        "throttle_us": r.throttle_us,
        "output": {f.name: f.type.value for f in r.output},
        "source": f"{r.file}:{r.line}",
    }


def create_app(program: Program | None = None, file: str | None = None, engine: Any = None) -> FastAPI:
    app = FastAPI(title="cep", version="0.1.0")
    started = time.time()

    def loaded() -> Program | None:
        # A running engine's program changes with hot reloads; the one given at start does not.
        return getattr(engine, "program", None) or program

    @app.get("/cep/health")
    def health() -> dict[str, Any]:
        body: dict[str, Any] = {
            "status": "ok",
            "uptime_s": round(time.time() - started, 3),
            "rules": len(loaded().rules) if loaded() else 0,
            "file": file,
        }
        if engine is not None and hasattr(engine, "health"):
            extra = engine.health()
            body.update(extra)
            if extra.get("degraded"):
                body["status"] = "degraded"
        return body

    @app.get("/cep/rules")
    def rules() -> list[dict[str, Any]]:
        prog = loaded()
        return [_rule_json(r) for r in (prog.rules if prog else ())]

    @app.get("/cep/rules/{rule_id}")
    def rule(rule_id: str) -> dict[str, Any]:
        prog = loaded()
        for r in prog.rules if prog else ():
            if r.id == rule_id:
                return _rule_json(r)
        raise HTTPException(status_code=404, detail=f"no rule `{rule_id}`")

    @app.get("/cep/explain", response_class=PlainTextResponse)
    def explain() -> str:
        prog = loaded()
        if prog is None:
            raise HTTPException(status_code=404, detail="no rule file loaded")
        from cepdsl.explain import explain as explain_program

        return explain_program(prog)

    @app.post("/cep/check")
    def check(text: str = Body(..., media_type="text/plain"), filename: str = "<request>") -> dict[str, Any]:
        prog, diags = check_source(text, filename)
        return {
            "ok": not diags,
            "rules": [r.id for r in prog.rules] if prog else [],
            "diagnostics": [_diagnostic_json(d, text) for d in diags],
        }

    @app.get("/cep/stats")
    def stats() -> dict[str, Any]:
        if engine is None or not hasattr(engine, "stats"):
            return {"running": False, "rules": {}}
        got = engine.stats()
        if "rules" in got:  # a StreamingEngine: {engine, streams, rules, health}
            return {"running": True, **got}
        return {"running": True, "rules": got}

    from runtime.console import mount

    return mount(app)
