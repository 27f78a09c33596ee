"""/docs (Swagger UI) and /redoc (ReDoc) in a real headless Chromium against `hub run`, as on a
network without internet: every request that leaves the hub is refused and recorded, the pages
still render every operation of /openapi.json, and they asked for nothing outside the hub.

Chromium and its arguments are those of the admin page's browser test (skipped loudly without
/usr/bin/chromium on a developer's machine, failing under CI=true).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Hub
from tests.e2e.test_admin_browser import ARGS, CHROMIUM, WAIT_MS, _need_chromium

pytestmark = pytest.mark.e2e
METHODS = ("get", "put", "post", "delete", "patch")


@pytest.fixture(scope="module")
def offline_page(hub: Hub) -> Iterator[tuple[Any, list[str], list[str]]]:
    """A page that may reach only the hub: (page, every URL it loaded, the URLs the network refused).

    A request the page's own Content-Security-Policy stops never reaches the network (nor the route
    below); it is not loaded, so it is not in the first list."""
    _need_chromium()
    from playwright.sync_api import Route, sync_playwright

    requested: list[str] = []
    refused: list[str] = []

    def only_the_hub(route: Route) -> None:
        url = route.request.url
        if url.startswith(hub.url + "/") or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            refused.append(url)
            route.abort("internetdisconnected")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.route("**/*", only_the_hub)
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        page.on("requestfinished", lambda request: requested.append(request.url))
        try:
            yield page, requested, refused
        finally:
            context.close()
            browser.close()


def operations(hub: Hub) -> set[tuple[str, str]]:
    """(METHOD, path) of every operation the OpenAPI document lists."""
    document = httpx.get(f"{hub.url}/openapi.json", timeout=30).json()
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in METHODS
    }


def test_swagger_ui_renders_every_operation_from_the_hub_alone(
    hub: Hub, offline_page: tuple[Any, list[str], list[str]]
) -> None:
    page, requested, refused = offline_page
    wanted = operations(hub)
    assert ("POST", "/api/v1/messages") in wanted
    page.goto(f"{hub.url}/docs")
    page.wait_for_selector(".opblock-summary")
    page.wait_for_function("n => document.querySelectorAll('.opblock-summary').length >= n", arg=len(wanted))
    shown = set()
    for block in page.query_selector_all(".opblock-summary"):
        method = block.query_selector(".opblock-summary-method")
        path = block.query_selector(".opblock-summary-path")
        assert method is not None and path is not None
        shown.add(
            (method.inner_text().strip(), (path.get_attribute("data-path") or path.inner_text()).strip())
        )
    assert shown == wanted
    assert page.title() == "psop-hub - Swagger UI"
    assert refused == [], refused
    assert requested and all(url.startswith(hub.url + "/") for url in requested), requested
    assert any(url.endswith("/swagger-ui-bundle.js") for url in requested)


def test_redoc_renders_the_operations_from_the_hub_alone(
    hub: Hub, offline_page: tuple[Any, list[str], list[str]]
) -> None:
    page, requested, refused = offline_page
    requested.clear()
    page.goto(f"{hub.url}/redoc")
    page.wait_for_selector("[data-section-id^='operation/']")
    rendered = page.query_selector_all("[data-section-id^='operation/']")
    assert len(rendered) >= len(operations(hub))
    assert "/api/v1/messages" in page.inner_text("body")
    assert refused == [], refused
    assert requested and all(url.startswith(hub.url + "/") for url in requested), requested
    assert any(url.endswith("/redoc.standalone.js") for url in requested)
