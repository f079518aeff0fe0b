"""Browser: a new project's overview shows "send your first trace"; an admin creates a key there, copies the
environment variables, runs the curl command the page shows, and the page turns into the services overview by
itself once the trace is counted. Playwright drives Debian's headless Chromium against a live server."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from accounts.models import ApiKey
from rollups.services import dirty_process
from tests import chromium
from tests.chromium import ARTIFACTS, CHROMIUM
from tests.conftest import PASSWORD, Tenant
from traces.models import Trace

# Shared fixtures: pytest finds a fixture by its name in the test's module.
browser = chromium.browser
page = chromium.page

pytestmark = [
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed"),
    pytest.mark.django_db(transaction=True),
]


def test_first_trace_panel_key_curl_and_the_overview_without_a_reload(
    page: Page, live_server: Any, tenant: Tenant
) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    page.goto(live_server.url + "/login/")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(live_server.url + "/p/acme/")
    panel = page.locator(".first-trace")
    expect(panel).to_contain_text("Send your first trace")
    expect(panel.locator(".first-trace-state")).to_contain_text("Waiting for the first trace")
    expect(page.locator("#otlp-traces-url")).to_have_text(live_server.url + "/v1/traces")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "first-trace-empty.png"), full_page=True)

    page.click("text=Create an ingest key")
    secret = page.locator("#new-secret-key").text_content() or ""
    key = ApiKey.objects.get(name="first trace")
    assert secret.startswith("sk-sre-") and key.scopes == ["ingest"] and key.created_by == tenant.user
    env = page.locator("#first-trace-env")
    expect(env).to_contain_text(f"OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20{secret}")
    page.locator("button[data-copy=first-trace-env]").click()
    expect(page.locator("button[data-copy=first-trace-env]")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == env.text_content()
    page.screenshot(path=str(ARTIFACTS / "first-trace-key.png"), full_page=True)

    # Paste the curl command into a shell: the trace is stored; the page notices without being reloaded by hand.
    page.evaluate("window.__notReloaded = true")
    curl = page.locator("#first-trace-curl").text_content() or ""
    result = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=30, check=True)
    assert json.loads(result.stdout)["accepted_traces"] == 1
    assert Trace.objects.filter(project=tenant.project, service="my-app").exists()
    expect(panel.locator(".first-trace-state")).to_contain_text("A trace from my-app arrived", timeout=15_000)
    assert page.evaluate("window.__notReloaded") is True  # told in place, while the trace is being counted
    while dirty_process():  # what the worker does every 10 seconds
        pass
    row = page.locator("table.overview tr[data-service=my-app]")
    expect(row).to_be_visible(timeout=15_000)
    expect(row.locator(".sig-traffic .v")).to_have_text("1")
    expect(page.locator(".first-trace")).to_have_count(0)
    expect(page).to_have_url(live_server.url + "/p/acme/")
    page.screenshot(path=str(ARTIFACTS / "first-trace-overview.png"), full_page=True)
