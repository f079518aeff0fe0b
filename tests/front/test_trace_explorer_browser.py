"""Trace explorer in the browser: count, sorting by a header click, the column picker (remembered), a preview
unfolded, several traces selected and added to a dataset, a saved view created and used. Screenshots go to
test-artifacts/ (explorer-*.png)."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from evals.models import Dataset, DatasetItem
from rollups.services import dirty_process
from tests import chromium
from tests.browser_data import IMG_XSS, SCRIPT_XSS, SECOND_NS, send, turn
from tests.chromium import CHROMIUM, artifact, assert_no_xss, log_in, rows
from tests.conftest import Tenant

# Shared fixtures: pytest finds a fixture by its name in the test's module.
browser = chromium.browser
page = chromium.page

pytestmark = [
    pytest.mark.skipif(not __import__("os").path.exists(CHROMIUM), reason="Debian's chromium is not installed"),
    pytest.mark.django_db(transaction=True),
]


LONG_ANSWER = "Refunds are issued within 14 days of receiving the returned item. " * 6 + "THE-END-OF-THE-ANSWER"


@pytest.fixture
def explorer_data(live_server: Any, tenant: Tenant) -> dict[str, str]:
    now = time.time_ns() - 600 * SECOND_NS
    slow = turn(now, "Why is my invoice wrong?", "Let me check the invoice lines.", 4200, "chat-7", "ana")
    long_one = turn(now + 5 * SECOND_NS, "How long do refunds take?", LONG_ANSWER, 900, "chat-7", "ana")
    quick = turn(now + 9 * SECOND_NS, "Hi", "Hello! How can I help?", 120, "chat-8", "ben")
    evil = turn(now + 12 * SECOND_NS, f"question {SCRIPT_XSS}", f"answer {IMG_XSS}", 300, f"s {IMG_XSS}", "eve")
    send(live_server, tenant.secret, slow + long_one + quick, "support-bot")
    send(live_server, tenant.secret, evil, "billing")
    Dataset.objects.create(project=tenant.project, name="golden-refunds")
    dirty_process()  # the beat task's job: the filter drop-downs read the rollups
    return {"slow": slow[0].trace_id.hex(), "long": long_one[0].trace_id.hex(), "quick": quick[0].trace_id.hex()}


def test_sort_columns_expand_select_to_dataset_and_saved_view(
    page: Page,
    live_server: Any,
    tenant: Tenant,
    explorer_data: dict[str, str],
) -> None:
    log_in(page, live_server, "alice", "/p/acme/traces/")
    expect(page.locator("#trace-count")).to_have_text("4 traces")
    assert_no_xss(page)

    # Sort by latency with a header click: slowest first, then a second click flips it.
    page.locator("th a.sort", has_text="Duration").click()
    expect(page).to_have_url(re.compile(r"sort=-latency"))
    expect(rows(page).first).to_have_attribute("data-trace", explorer_data["slow"])
    expect(page.locator("th a.sort.active")).to_contain_text("▼")
    page.screenshot(path=artifact("explorer-sorted.png"))
    page.locator("th a.sort", has_text="Duration").click()
    expect(page).to_have_url(re.compile(r"sort=latency"))
    expect(rows(page).first).to_have_attribute("data-trace", explorer_data["quick"])

    # The preview unfolds to its whole text on click.
    cell = page.locator(f'tr[data-trace="{explorer_data["long"]}"] td.io')
    assert not cell.locator(".out").evaluate("e => e.scrollWidth <= e.clientWidth")  # cut at first
    cell.click()
    expect(cell).to_have_class(re.compile("expanded"))
    assert cell.locator(".out").evaluate("e => e.scrollWidth <= e.clientWidth && e.offsetHeight > 30")
    page.screenshot(path=artifact("explorer-expanded.png"))

    # Column picker: adding "Session" saves at once and the list shows session links, after a reload too.
    page.get_by_text("Columns", exact=True).click()
    page.get_by_label("Session").check()
    expect(page.locator("th", has_text="Session")).to_have_count(1)
    page.reload()
    expect(page.locator("td.session a", has_text="chat-7")).to_have_count(2)
    page.screenshot(path=artifact("explorer-columns.png"))

    # Select two traces and add them to a dataset.
    buttons = page.locator("#bulk button")
    expect(buttons.first).to_be_disabled()
    page.locator(f'tr[data-trace="{explorer_data["slow"]}"] td.pick input').check()
    page.locator(f'tr[data-trace="{explorer_data["long"]}"] td.pick input').check()
    expect(page.locator("#selected-count")).to_have_text("2")
    page.locator("#bulk select[name=dataset]").select_option(label="golden-refunds")
    page.screenshot(path=artifact("explorer-selected.png"))
    page.get_by_role("button", name="Add to dataset").click()
    expect(page.locator(".messages")).to_contain_text("Added 2 of 2 traces to golden-refunds")
    expect(page).to_have_url(re.compile(r"sort=latency"))  # back on the same list
    items = DatasetItem.objects.filter(dataset__name="golden-refunds")
    assert sorted(i.source_trace_id for i in items) == sorted([explorer_data["slow"], explorer_data["long"]])

    # Save the current filters as a view; it is listed above the list and opens those filters.
    page.locator("select[name=service]").select_option("support-bot")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#trace-count")).to_have_text("3 traces")
    page.get_by_label("View name").fill("Support, fastest first")
    page.get_by_role("button", name="Save view").click()
    expect(page.locator(".messages")).to_contain_text("Saved the view Support, fastest first")
    page.get_by_role("link", name="All traces").click()
    expect(page.locator("#trace-count")).to_have_text("4 traces")
    page.locator(".saved-view a", has_text="Support, fastest first").click()
    expect(page.locator("#trace-count")).to_have_text("3 traces")
    expect(rows(page).first).to_have_attribute("data-trace", explorer_data["quick"])
    expect(page.locator(".saved-view.on")).to_have_count(1)
    page.screenshot(path=artifact("explorer-saved-view.png"))
    assert_no_xss(page)
