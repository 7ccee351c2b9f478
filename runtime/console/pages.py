"""Page routes of the console and the static files they load.

A page route renders a shell and never reads engine state itself: the data comes from
the browser calling the operations API, which keeps one place (the API) for access
checks, limits and shapes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape

HERE = Path(__file__).parent
STATIC_PREFIX = "/console/static"

#: The navigation, in order: (path, label, access key).
NAV = (
    ("/", "Overview", "o"),
    ("/rules", "Rules", "r"),
    ("/alerts", "Alerts", "a"),
    ("/streams", "Streams", "s"),
    ("/editor", "Editor", "e"),
    ("/channels", "Channels", "c"),
)

# Same shape the API accepts for ids; a page for anything else is a 404, not a template
# rendered with a hostile string (the template escapes anyway).
_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_ALERT_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")

_env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _asset_version() -> str:
    """Changes when a static file changes, so a browser never runs a stale script."""
    newest = max((p.stat().st_mtime_ns for p in (HERE / "static").iterdir()), default=0)
    return format(newest, "x")[-8:]


def _token_required(request: Request) -> bool:
    """Whether the API behind this app wants a bearer token on state-changing calls (the
    API sets the flag, never the token itself, on `app.state`), so the page can ask for
    the token once, up front, instead of after a refused click."""
    return bool(getattr(request.app.state, "token_required", False))


def _page(request: Request, template: str, title: str, active: str, **extra: Any) -> HTMLResponse:
    html = _env.get_template(template).render(
        title=title,
        nav=NAV,
        active=active,
        static=STATIC_PREFIX,
        version=_asset_version(),
        token_required=_token_required(request),
        **extra,
    )
    # Shells are cheap to render and must not be cached past a reload of the console.
    return HTMLResponse(
        html, headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
    )


def _checked_id(value: str, pattern: re.Pattern[str] = _ID) -> str:
    if not pattern.match(value):
        raise HTTPException(status_code=404, detail="no such page")
    return value


router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def overview(request: Request) -> HTMLResponse:
    return _page(request, "overview.html", "Overview", "/")


@router.get("/rules", response_class=HTMLResponse)
def rules(request: Request) -> HTMLResponse:
    return _page(request, "rules.html", "Rules", "/rules")


@router.get("/rules/{rule_id}", response_class=HTMLResponse)
def rule(request: Request, rule_id: str) -> HTMLResponse:
    return _page(request, "rule.html", f"Rule {rule_id}", "/rules", rule_id=_checked_id(rule_id))


@router.get("/alerts", response_class=HTMLResponse)
def alerts(request: Request) -> HTMLResponse:
    return _page(request, "alerts.html", "Alerts", "/alerts")


@router.get("/alerts/{alert_id}", response_class=HTMLResponse)
def alert(request: Request, alert_id: str) -> HTMLResponse:
    return _page(request, "alert.html", f"Alert {alert_id}", "/alerts", alert_id=_checked_id(alert_id, _ALERT_ID))


@router.get("/streams", response_class=HTMLResponse)
def streams(request: Request) -> HTMLResponse:
    return _page(request, "streams.html", "Streams", "/streams")


@router.get("/editor", response_class=HTMLResponse)
def editor_new(request: Request) -> HTMLResponse:
    return _page(request, "editor.html", "New rule", "/editor", rule_id=None)


@router.get("/editor/{rule_id}", response_class=HTMLResponse)
def editor(request: Request, rule_id: str) -> HTMLResponse:
    return _page(request, "editor.html", f"Edit {rule_id}", "/editor", rule_id=_checked_id(rule_id))


@router.get("/channels", response_class=HTMLResponse)
def channels(request: Request) -> HTMLResponse:
    return _page(request, "channels.html", "Channels", "/channels")


@router.get("/favicon.ico", include_in_schema=False)
def favicon() -> Response:
    return Response((HERE / "static" / "favicon.svg").read_bytes(), media_type="image/svg+xml")


def mount(app: FastAPI) -> FastAPI:
    """Add the console's pages and static files to an API app (the same process and port)."""
    app.include_router(router)
    app.mount(STATIC_PREFIX, StaticFiles(directory=HERE / "static"), name="console-static")
    return app
