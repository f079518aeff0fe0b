"""Browser: create a golden dataset by importing a file, create a probe against a fake LLM app, run it, switch the
app's answer and run it again, and see the flipped answer with its side-by-side diff. Playwright drives Debian's
headless Chromium against a live server; the test process plays the Celery worker for the runs the page starts."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from evals.models import ProbeRun
from evals.probes.runs import probe_run_execute
from tests import chromium
from tests.chromium import ARTIFACTS, CHROMIUM
from tests.conftest import PASSWORD, Tenant, broker_purge
from tests.fake_llm_app import FakeLlmApp

# The browser tests' fixtures: one headless Chromium per module, a fresh context per test that fails on JS errors.
browser = chromium.browser
page = chromium.page

pytestmark = [
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed"),
    pytest.mark.django_db(transaction=True),
]

GOLDEN: list[dict[str, Any]] = [
    {"input": "How long is the refund window?", "expected": "30 days", "tags": ["refunds"]},
    {"input": "What is six times seven?", "expected": "42"},
]


@pytest.fixture
def app() -> Iterator[FakeLlmApp]:
    fake = FakeLlmApp(answers={g["input"]: g["expected"] for g in GOLDEN}).start()
    yield fake
    fake.stop()


def run_started_by_the_page(page: Page) -> None:
    """Play the worker for the run the page just queued; the page follows its progress and reloads when done."""
    run = ProbeRun.objects.order_by("-pk").first()
    assert run is not None
    probe_run_execute(run_id=run.pk)
    broker_purge()  # the queued message is served already
    expect(page.locator(f'tr[data-run="{run.pk}"] .status-cell')).to_have_text("done", timeout=15_000)


def test_import_a_dataset_run_a_probe_and_see_a_flipped_answer(
    page: Page, live_server: Any, tenant: Tenant, app: FakeLlmApp
) -> None:
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Username").fill(tenant.user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()

    page.goto(f"{live_server.url}/p/acme/datasets/")
    page.locator("#new-dataset input[name=name]").fill("faq")
    page.get_by_role("button", name="Create dataset").click()
    jsonl = "".join(json.dumps(g) + "\n" for g in GOLDEN).encode()
    page.locator("#import input[type=file]").set_input_files(
        {"name": "faq.jsonl", "mimeType": "application/jsonl", "buffer": jsonl}
    )
    page.get_by_role("button", name="Import", exact=True).click()
    expect(page.locator(".messages")).to_contain_text("Imported 2 items")
    expect(page.locator("table.items tbody tr")).to_have_count(2)

    page.get_by_role("link", name="Probes").click()
    form = page.locator("#new-probe")
    form.locator("input[name=name]").fill("faq probe")
    form.locator("select[name=dataset]").select_option(label="faq")
    form.locator("input[name=service]").fill("support-bot")
    expect(form.locator("fieldset[data-target=openai_chat]")).to_be_hidden()
    form.locator("input[name=url]").fill(f"{app.url}/ask")
    form.get_by_role("button", name="Create probe").click()
    expect(page.locator("h1")).to_contain_text("faq probe")

    page.get_by_role("button", name="Run now").click()
    run_started_by_the_page(page)
    expect(page.locator("table.probe-results .status.ok")).to_have_count(2)

    app.answers["How long is the refund window?"] = "Refunds take 14 days."
    page.get_by_role("button", name="Run now").click()
    run_started_by_the_page(page)
    flipped = page.locator("table.probe-results tr.flipped")
    expect(flipped).to_have_count(1)
    expect(flipped).to_contain_text("flipped from pass")
    expect(flipped.locator(".diff ins")).to_contain_text(["14"])
    expect(flipped.locator(".diff del").first).to_contain_text("30")
    expect(page.locator(".chart .main-svg").first).to_be_visible()  # the run history chart is drawn
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "probe-flipped.png"), full_page=True)
