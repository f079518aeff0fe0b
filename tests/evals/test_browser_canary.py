"""Browser: run a canary comparison the way a release manager does, in headless Chromium (Debian's, through
Playwright): open Canary from the navigation, fill the form, read the verdict, the worse signal and the charts,
then correct a bad input. A release name with markup must render as text."""

from __future__ import annotations

import os
import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests import chromium
from tests.canary_data import Version, seed
from tests.chromium import ARTIFACTS, CHROMIUM, log_in
from tests.conftest import Tenant

# Shared fixtures: pytest finds a fixture by its name in the test's module.
browser = chromium.browser
page = chromium.page

pytestmark = [
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed"),
    # The live server runs in another thread: the data must be committed for it to see it.
    pytest.mark.django_db(transaction=True),
]
XSS_RELEASE = '<img src=x onerror="window.__xss=1">'


def test_canary_comparison_in_the_browser(page: Page, live_server: Any, tenant: Tenant) -> None:
    seed(tenant.project, Version(XSS_RELEASE), 200, rng_seed=31)
    seed(tenant.project, Version("v2", latency_mu=7.1), 200, rng_seed=32)
    log_in(page, live_server, "alice")
    page.get_by_role("link", name="Canary").click()
    expect(page).to_have_url(re.compile(r"/p/acme/canary/$"))
    expect(page.get_by_role("link", name="Canary")).to_have_class("active")

    page.get_by_label("Service").fill("bot")
    page.get_by_label("Baseline").fill(XSS_RELEASE)
    page.get_by_label("Canary", exact=True).fill("v2")
    page.get_by_label("Since").fill("1d")
    page.get_by_role("button", name="Compare").click()

    # Latency alone is not critical by default: one worse signal of five is marginal, not fail.
    expect(page.locator("#canary-verdict")).to_have_text("marginal")
    expect(page.locator("#canary-result")).to_contain_text("score 80 / 100")
    latency = page.locator('#canary-signals tr[data-signal="latency"]')
    expect(latency).to_contain_text("worse")
    expect(latency).not_to_contain_text("critical")
    expect(page.locator('#canary-signals tr[data-signal="error"]')).to_contain_text("critical")
    expect(page.locator('#canary-signals tr[data-signal="grounding"]')).to_contain_text("critical")
    # The baseline's release is shown as text, never run as HTML.
    expect(page.locator("#canary-result")).to_contain_text(XSS_RELEASE)
    assert page.evaluate("window.__xss") is None
    # One chart per signal, each with both cohorts.
    expect(page.locator(".drift-chart .main-svg").first).to_be_visible()
    assert page.locator(".drift-chart").count() == 5
    assert page.locator(".drift-chart .legendtext").all_text_contents()[:2] == ["baseline", "canary"]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "canary.png"), full_page=True)

    # A mistake keeps the form filled and says what to fix.
    page.get_by_label("Until").fill("2h")
    page.get_by_label("Since").fill("1h")
    page.get_by_role("button", name="Compare").click()
    expect(page.locator("#canary-errors")).to_contain_text("must be before")
    expect(page.get_by_label("Baseline")).to_have_value(XSS_RELEASE)
    expect(page.locator("#canary-result")).to_have_count(0)
