"""Browser: define an SLO through the form (an invalid one first, whose errors are explained beside the fields),
then open its page and see the SLI, the budget burn-down and one burn-rate panel per rule drawn by Plotly, and the
incident's triage page. Playwright drives Debian's headless Chromium against a live server."""

from __future__ import annotations

import os
from decimal import Decimal
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from slos import services
from slos.models import SLO, Incident
from tests import chromium
from tests.chromium import ARTIFACTS, CHROMIUM
from tests.conftest import PASSWORD, Tenant
from tests.slo_data import at, ingest, make_trace, recompute

# The browser tests' fixtures: one headless Chromium per module, a fresh context per test that fails on JS errors.
browser = chromium.browser
page = chromium.page

pytestmark = [
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed"),
    pytest.mark.django_db(transaction=True),
]


def login(page: Page, live_server: Any) -> None:
    page.goto(live_server.url + "/login/")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")


def test_define_an_slo_in_the_form_and_read_its_panels(page: Page, live_server: Any, tenant: Tenant) -> None:
    ingest(tenant, [make_trace(m) for m in range(10)] + [make_trace(m, status="error") for m in (10, 11, 12)])
    recompute()
    login(page, live_server)
    page.goto(live_server.url + "/p/acme/slos/")
    page.click("text=New SLO")
    page.fill("input[name=name]", "Answers <b>without</b> errors")
    page.fill("input[name=service]", "support-bot")
    page.select_option("select[name=sli_kind]", "error")
    expect(page.locator("input[name=evaluator]")).to_be_hidden()  # only score SLIs name a score
    page.fill("input[name=objective]", "99.9%")
    page.select_option("select[name=policy_mode]", "custom")
    page.fill("input[name=rule-0-burn_rate_threshold]", "1000")  # the highest possible burn rate at 99.9%
    page.fill("input[name=rule-1-short_window]", "12h")  # longer than its long window (6h)
    page.click("text=Save SLO")

    expect(page.locator("[role=alert]")).to_contain_text("Some alert rules cannot work")
    expect(page.locator(".rules-table")).to_contain_text("the highest possible burn rate (every event bad) is 1000")
    expect(page.locator(".rules-table")).to_contain_text("must be shorter than the long window (6h)")
    assert not SLO.objects.exists()
    # The form kept what was typed: fix the two rules and save.
    expect(page.locator("input[name=name]")).to_have_value("Answers <b>without</b> errors")
    page.fill("input[name=objective]", "90%")
    page.fill("input[name=rule-0-burn_rate_threshold]", "2")
    page.fill("input[name=rule-0-long_window]", "10m")
    page.fill("input[name=rule-0-short_window]", "2m")
    for row in (1, 2, 3):
        page.select_option(f"select[name=rule-{row}-severity]", "")
        for field in ("burn_rate_threshold", "long_window", "short_window"):
            page.fill(f"input[name=rule-{row}-{field}]", "")
    page.fill("textarea[name=runbook]", "## First\nRoll back with `deploy rollback`.")
    page.click("text=Save SLO")

    slo = SLO.objects.get()
    expect(page).to_have_url(f"{live_server.url}/p/acme/slos/{slo.pk}/")
    expect(page.locator("h1")).to_contain_text("Answers <b>without</b> errors")  # shown as text
    assert [r["burn_rate_threshold"] for r in slo.policy] == ["2"]

    # Its history is computed (by the worker in production, here directly) and the tick fires the rule.
    services.sli_history_rebuild(slo_id=slo.pk, now=at(12))
    services.slos_evaluate(now=at(12))
    page.goto(f"{live_server.url}/p/acme/slos/{slo.pk}/?range=window")
    for figure in ("sli", "budget", "burn0"):
        expect(page.locator(f"#chart-{figure} .main-svg").first).to_be_visible()
    expect(page.locator("#chart-burn0")).to_contain_text("threshold 2")
    expect(page.locator(".rule-states")).to_contain_text("firing")
    expect(page.locator(".runbook h2").nth(1)).to_have_text("First")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "slo-page.png"), full_page=True)

    incident = Incident.objects.get()
    page.click("text=open the triage page")
    expect(page).to_have_url(f"{live_server.url}/p/acme/incidents/{incident.pk}/")
    expect(page.locator(".bad-events tbody tr")).to_have_count(3)
    page.fill("textarea[name=note]", "Looking at it.")
    page.click("button[value=acknowledge]")
    expect(page.locator("h1 .status")).to_have_text("Acknowledged")
    expect(page.locator(".timeline")).to_contain_text("Looking at it.")
    page.screenshot(path=str(ARTIFACTS / "incident-page.png"), full_page=True)


def test_one_submit_shows_every_error_and_the_comparator_shows_only_for_a_threshold(
    page: Page, live_server: Any, tenant: Tenant
) -> None:
    ingest(tenant, [make_trace(0)])
    recompute()
    login(page, live_server)
    page.goto(live_server.url + "/p/acme/slos/new/")
    kind, evaluator = page.locator("select[name=sli_kind]"), page.locator("input[name=evaluator]")
    comparator, threshold = page.locator("select[name=comparator]"), page.locator("input[name=threshold]")
    expect(kind).to_have_value("score")  # "a score passes": its evaluator's verdict, nothing to compare
    expect(evaluator).to_be_visible()
    expect(comparator).to_be_hidden()
    expect(threshold).to_be_hidden()
    kind.select_option("score_threshold")
    expect(comparator).to_be_visible()
    expect(threshold).to_be_visible()
    kind.select_option("latency")
    expect(comparator).to_be_hidden()
    expect(evaluator).to_be_hidden()
    expect(threshold).to_be_visible()

    # Everything wrong at once: one submit lists it all, rules included although the objective is wrong too.
    kind.select_option("score_threshold")
    page.fill("input[name=name]", "Grounded")
    page.fill("input[name=service]", "support-bot")
    page.fill("input[name=evaluator]", "grounding")
    page.fill("input[name=objective]", "150%")
    page.select_option("select[name=policy_mode]", "custom")
    page.fill("input[name=rule-0-burn_rate_threshold]", "x")
    page.fill("input[name=rule-1-short_window]", "12h")  # longer than its long window (6h)
    page.click("text=Save SLO")
    expect(page.locator("[role=alert]")).to_contain_text("Some alert rules cannot work")
    expect(page.locator("label:has(input[name=objective]) .error")).to_contain_text("150% is not below 100%")
    expect(page.locator("label:has(select[name=comparator]) .error")).to_contain_text("compared with the threshold")
    expect(page.locator("label:has(input[name=threshold]) .error")).to_contain_text("Give the threshold")
    expect(page.locator(".rules-table")).to_contain_text("'x' is not a number")
    expect(page.locator(".rules-table")).to_contain_text("must be shorter than the long window (6h)")
    expect(comparator).to_be_visible()  # the kind chosen before the submit is kept, with its fields
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "slo-form-errors.png"), full_page=True)
    assert not SLO.objects.exists()

    # Back to "a score passes": the threshold typed meanwhile is not sent, the comparator not asked for.
    page.fill("input[name=threshold]", "0.7")
    kind.select_option("score")
    page.fill("input[name=objective]", "99.5%")
    page.select_option("select[name=policy_mode]", "default")
    page.click("text=Save SLO")
    slo = SLO.objects.get()
    expect(page).to_have_url(f"{live_server.url}/p/acme/slos/{slo.pk}/")
    assert (slo.comparator, slo.threshold, slo.objective) == ("pass", None, Decimal("0.995"))
