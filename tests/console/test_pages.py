"""The console's page routes and assets, without a browser: every page renders, every
asset it names is served by the app itself, and nothing points off the machine."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from runtime.console import mount
from runtime.console.pages import HERE, NAV

PAGES = ["/", "/rules", "/rules/high_cpu", "/alerts", "/alerts/17", "/streams", "/editor", "/editor/high_cpu", "/channels"]


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(mount(FastAPI()))


@pytest.mark.parametrize("path", PAGES)
def test_page_renders_with_its_assets_served_locally(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    html = r.text
    assert "<main" in html and 'data-page="' in html
    assets = re.findall(r'(?:src|href)="(/console/static/[^"?]+)', html)
    assert any(a.endswith("console.js") for a in assets) and any(a.endswith(".css") for a in assets)
    for asset in assets:
        assert client.get(asset).status_code == 200, asset
    # Every link of the navigation is there, the current page marked.
    for href, label, _key in NAV:
        assert f'href="{href}"' in html and label in html
    assert html.count('aria-current="page"') == 1


def test_no_asset_or_page_refers_off_the_machine() -> None:
    offsite = re.compile(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//|url\(\s*["']?(?:https?:)?//|@import|fetch\(\s*["']https?:""")
    files = list((HERE / "templates").glob("*.html")) + list((HERE / "static").iterdir())
    assert len(files) > 10
    for f in files:
        assert not offsite.search(f.read_text()), f


def test_ids_are_validated_before_rendering(client: TestClient) -> None:
    assert client.get("/rules/%3Cscript%3E").status_code == 404
    assert client.get("/editor/a%20b").status_code == 404
    r = client.get("/rules/cpu_rule")
    assert 'data-rule-id="cpu_rule"' in r.text


def test_token_flag_follows_the_app_setting() -> None:
    app = mount(FastAPI())
    assert 'data-token-required="0"' in TestClient(app).get("/").text
    app.state.token_required = True
    assert 'data-token-required="1"' in TestClient(app).get("/").text


def test_every_page_script_exists_and_is_referenced() -> None:
    scripts = {p.name for p in (HERE / "static").glob("*.js")}
    referenced = set()
    for t in (HERE / "templates").glob("*.html"):
        referenced |= set(re.findall(r"/([a-z_]+\.js)\?", t.read_text()))
    assert referenced == scripts
    assert Path(HERE / "static" / "console.css").stat().st_size > 1000
