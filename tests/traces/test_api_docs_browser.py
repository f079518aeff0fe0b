"""Browser: the API docs render in the app's theme, list the OTLP endpoints and /metrics, load nothing from another
host, and lead back to the app. Playwright drives Debian's headless Chromium against a live server."""

from __future__ import annotations

import os
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests import chromium
from tests.chromium import ARTIFACTS, CHROMIUM
from tests.conftest import PASSWORD, Tenant

# Shared fixtures: pytest finds a fixture by its name in the test's module.
browser = chromium.browser
page = chromium.page

pytestmark = [
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed"),
    pytest.mark.django_db(transaction=True),
]


def test_api_docs_in_the_app_theme_with_otlp_and_metrics(page: Page, live_server: Any, tenant: Tenant) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(live_server.url + "/login/")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.click("header >> text=API docs")
    expect(page).to_have_url(live_server.url + "/api/docs/")
    for path in ("/v1/traces", "/v1/logs", "/metrics", "/api/v1/traces"):
        expect(page.locator(f".opblock-summary-path[data-path='{path}']").first).to_be_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "api-docs-top.png"))
    # The app's colours and fonts: its page background and text colour, its sans-serif stack.
    body = page.evaluate("getComputedStyle(document.body).backgroundColor")
    title = page.locator(".swagger-ui .info .title")
    assert body == "rgb(15, 18, 22)"
    assert title.evaluate("e => getComputedStyle(e).color") == "rgb(216, 222, 230)"
    assert "system-ui" in title.evaluate("e => getComputedStyle(e).fontFamily")
    page.locator(".opblock-summary-path[data-path='/v1/traces']").click()
    expect(page.locator("#operations-OTLP_ingest-otlp_traces")).to_contain_text("after decompression")
    page.screenshot(path=str(ARTIFACTS / "api-docs.png"))
    page.locator("#operations-OTLP_ingest-otlp_traces").screenshot(path=str(ARTIFACTS / "api-docs-otlp.png"))
    icon = page.evaluate("document.querySelector('link[rel=icon]').href")
    assert icon.startswith(live_server.url + "/static/favicon.")
    assert requested and all(url.startswith((live_server.url, "data:", "blob:")) for url in requested), requested

    page.click("text=← Back to the app")
    expect(page).to_have_url(live_server.url + "/p/acme/")
