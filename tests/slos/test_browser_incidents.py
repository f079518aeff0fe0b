"""Browser: the incident flow as the on-call engineer does it. From the incident list (filtered to their own), open
the incident, assign it to a teammate (a non-member is refused beside the field), take it back with "Assign to me",
acknowledge it, and read who did what, in order, with the channel's delivery status; then follow the link to the
SLO's burn rates zoomed to the incident. Playwright drives Debian's headless Chromium against a live server."""

from __future__ import annotations

import os
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from accounts.models import Role
from accounts.services import membership_set, user_create
from slos.dispatch import deliveries_dispatch
from slos.models import Incident
from slos.services import channel_save
from tests import chromium
from tests.chromium import ARTIFACTS, CHROMIUM
from tests.conftest import PASSWORD, Tenant
from tests.receiver import Receiver
from tests.slo_data import at, fire_score_slo

# Shared fixtures: pytest finds a fixture by its name in the test's module.
browser = chromium.browser
page = chromium.page

pytestmark = [
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed"),
    pytest.mark.django_db(transaction=True),
]


def test_assign_acknowledge_and_read_the_timeline(
    page: Page, live_server: Any, tenant: Tenant, receiver: Receiver
) -> None:
    user_create(username="mallory", password=PASSWORD)  # a user of the instance, not of the project
    membership_set(project=tenant.project, user=user_create(username="bob", password=PASSWORD), role=Role.EDITOR)
    receiver.statuses = [503]
    hook = channel_save(project=tenant.project, name="oncall-hook", kind="webhook", config={"url": receiver.url})
    incident: Incident = fire_score_slo(tenant, [hook], name="Grounded <i>answers</i>")
    deliveries_dispatch(now=at(12))  # the receiver is down: the notification is retrying

    page.goto(live_server.url + "/login/")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.goto(live_server.url + "/p/acme/incidents/")
    row = page.locator("table.incident-list tbody tr").first
    expect(row).to_contain_text("Grounded <i>answers</i>")  # as text
    expect(row).to_contain_text("Open")
    expect(row.locator("td.assignee")).to_have_text("–")
    page.click("text=Mine")
    expect(page.locator("table.incident-list")).to_contain_text("No open incidents assigned to you.")
    page.click("text=Anyone")
    page.click(f"table.incident-list >> text=#{incident.pk}")
    expect(page).to_have_url(f"{live_server.url}/p/acme/incidents/{incident.pk}/")
    expect(page.locator(".channel-status")).to_contain_text("retrying")
    expect(page.locator(".channel-status")).to_contain_text("answered 503 Service Unavailable")

    # The select lists members only; a forged name is refused beside the field, without a 500.
    options = page.locator("select[name=assignee] option").all_text_contents()
    assert options == ["nobody", "alice", "bob"]
    page.evaluate("document.querySelector('select[name=assignee]').add(new Option('mallory', 'mallory', true, true))")
    page.click("form.assign button[type=submit]")
    expect(page.locator("form.assign [role=alert]")).to_contain_text("“mallory” is not a member of this project")
    page.select_option("select[name=assignee]", "bob")
    page.click("form.assign button[type=submit]")
    expect(page.locator("dd.assignee")).to_have_text("bob")
    page.click("button.assign-me")
    expect(page.locator("dd.assignee")).to_have_text("alice")
    page.fill("textarea[name=note]", "Retriever index is stale; reindexing.")
    page.click("button[value=acknowledge]")
    expect(page.locator("h1 .status")).to_have_text("Acknowledged")
    expect(page.locator("dd.acknowledged")).to_contain_text("alice")

    steps = page.locator(".timeline tr").all_inner_texts()
    words = [" ".join(s.split()[2:]) for s in steps]  # without the date and time
    assert words[0].startswith("Opened by rule page when the burn rate exceeds 2")
    assert words[1].startswith("retrying notified oncall-hook of “rule fired” · 1 attempt")
    assert words[2:5] == ["Assigned to bob by alice", "Assigned to alice by alice", "Acknowledged by alice"]
    assert words[5].startswith("queued notified oncall-hook of “acknowledged”")  # waits for the retry before it
    assert words[6] == "Note by alice Retriever index is stale; reindexing."
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "incident-flow.png"), full_page=True)

    page.goto(live_server.url + "/p/acme/incidents/?assignee=mine")
    expect(page.locator("table.incident-list tbody tr")).to_have_count(1)
    expect(page.locator("table.incident-list tbody tr td.assignee")).to_have_text("alice")
    page.screenshot(path=str(ARTIFACTS / "incident-list.png"), full_page=True)

    # Back to the SLO's burn rates, zoomed to the incident's window.
    page.goto(f"{live_server.url}/p/acme/incidents/{incident.pk}/")
    page.click("text=Burn rates over this window")
    expect(page.locator("#chart-burn0 .main-svg").first).to_be_visible()
    shown = page.evaluate("document.getElementById('chart-burn0').layout.xaxis.range")
    box = page.locator("#burn-rates")
    since = str(box.get_attribute("data-since"))
    assert str(shown[0]).replace(" ", "T")[:16] == since[:16]
    page.screenshot(path=str(ARTIFACTS / "incident-burn-rates.png"), full_page=True)
