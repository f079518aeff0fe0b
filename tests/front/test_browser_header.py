"""Browser: the header fits a laptop screen in one row (every menu entry visible, nothing scrolled off to the
right) and the signed-in person's menu opens to log out; at a narrow width the header wraps instead of making
the page scroll sideways."""

from __future__ import annotations

import os
import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests import chromium
from tests.chromium import ARTIFACTS, CHROMIUM, log_in
from tests.conftest import Tenant

browser = chromium.browser
page = chromium.page
pytestmark = [
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed"),
    pytest.mark.django_db(transaction=True),
]
ENTRIES = ["Services", "Traces", "Sessions", "Users", "SLOs", "Incidents", "Channels", "Budgets", "Drift",
           "Probes", "Datasets", "Canary", "Evaluators", "Settings & keys"]  # fmt: skip


def page_width(tab: Page) -> int:
    return int(tab.evaluate("document.documentElement.scrollWidth"))


def test_the_header_is_one_row_on_a_laptop_and_the_user_menu_logs_out(
    page: Page,
    live_server: Any,
    tenant: Tenant,
) -> None:
    log_in(page, live_server, "alice")
    header = page.locator("header.top")
    tops = {round(page.get_by_role("link", name=name, exact=True).bounding_box()["y"]) for name in ENTRIES}  # type: ignore[index]
    assert len(tops) == 1, f"the menu entries sit on more than one row: {tops}"
    assert page_width(page) <= 1440, "the header makes the page scroll sideways"
    assert (header.bounding_box() or {"height": 99})["height"] < 60
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "header.png"))

    page.set_viewport_size({"width": 900, "height": 900})
    assert page_width(page) <= 900, "a narrow window must wrap the header, not scroll"
    page.set_viewport_size({"width": 1440, "height": 900})

    logout = page.get_by_role("button", name="Log out", exact=True)
    expect(logout).to_be_hidden()
    header.locator(".user-menu summary").click()
    expect(header.locator(".user-menu")).to_contain_text("Log out everywhere")
    logout.click()
    expect(page).to_have_url(re.compile(r"/login/"))
