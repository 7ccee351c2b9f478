"""Page routes of the console and the static files they load.

A page route renders a shell and never reads engine state itself: the data comes from
the browser calling the operations API, which keeps one place (the API) for access
checks, limits and shapes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

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
_ID_PATTERNS = {"rule_id": re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"), "alert_id": re.compile(r"^[A-Za-z0-9_-]{1,128}$")}

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


@dataclass(frozen=True)
class Page:
    path: str
    name: str  # its template NAME.html, and `data-page` of its body
    title: str  # may name the path's ids: "Rule {rule_id}"
    nav: str  # the navigation entry marked current


#: Every page shell, in no particular order (no two paths overlap).
PAGES = (
    Page("/", "overview", "Overview", "/"),
    Page("/rules", "rules", "Rules", "/rules"),
    Page("/rules/{rule_id}", "rule", "Rule {rule_id}", "/rules"),
    Page("/alerts", "alerts", "Alerts", "/alerts"),
    Page("/alerts/{alert_id}", "alert", "Alert {alert_id}", "/alerts"),
    Page("/streams", "streams", "Streams", "/streams"),
    Page("/editor", "editor", "New rule", "/editor"),
    Page("/editor/{rule_id}", "editor", "Edit {rule_id}", "/editor"),
    Page("/channels", "channels", "Channels", "/channels"),
)


def _render(request: Request, page: Page) -> HTMLResponse:
    ids = {name: _checked_id(value, _ID_PATTERNS[name]) for name, value in request.path_params.items()}
    html = _env.get_template(f"{page.name}.html").render(
        title=page.title.format(**ids),
        page=page.name,
        nav=NAV,
        active=page.nav,
        static=STATIC_PREFIX,
        version=_asset_version(),
        token_required=_token_required(request),
        **ids,
    )
    # Shells are cheap to render and must not be cached past a reload of the console.
    return HTMLResponse(
        html, headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
    )


def _checked_id(value: str, pattern: re.Pattern[str]) -> str:
    if not pattern.match(value):
        raise HTTPException(status_code=404, detail="no such page")
    return value


def _route(page: Page) -> Callable[[Request], HTMLResponse]:
    def show(request: Request) -> HTMLResponse:
        return _render(request, page)

    return show


router = APIRouter(include_in_schema=False)
for _p in PAGES:
    router.add_api_route(_p.path, _route(_p), methods=["GET"], response_class=HTMLResponse)


@router.get("/favicon.ico", include_in_schema=False)
def favicon() -> Response:
    return Response((HERE / "static" / "favicon.svg").read_bytes(), media_type="image/svg+xml")


def mount(app: FastAPI) -> FastAPI:
    """Add the console's pages and static files to an API app (the same process and port)."""
    app.include_router(router)
    app.mount(STATIC_PREFIX, StaticFiles(directory=HERE / "static"), name="console-static")
    return app
