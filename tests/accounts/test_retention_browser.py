"""In the browser: an admin shortens the project's retention in Settings, sees the error for impossible values and
what the sweep removed; a page read from a lagging replica says "data as of". Screenshots go to test-artifacts/."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from accounts.retention import retention_sweep
from sre4ai_web import replica
from tests import chromium
from tests.chromium import ARTIFACTS
from tests.conftest import PASSWORD, Tenant
from tests.replica_db import REPLICA
from traces.models import Trace

# Shared fixtures: pytest finds a fixture by its name in the test's module.
browser = chromium.browser

pytestmark = [pytest.mark.django_db(transaction=True, databases=["default", REPLICA])]


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    context.set_default_timeout(10_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def send(live_server: Any, tenant: Tenant, start: datetime, n: int = 3) -> None:
    traces = [{"trace_id": f"{i + 1:032x}", "service": "support-bot",
               "spans": [{"name": f"answer {i}", "kind": "chain", "start_time": (start + timedelta(seconds=i)).isoformat(),
                          "end_time": (start + timedelta(seconds=i + 1)).isoformat(), "input": "How long do refunds take?",
                          "output": "14 days."}]} for i in range(n)]  # fmt: skip
    response = httpx.post(f"{live_server.url}/api/v1/traces", content=json.dumps({"traces": traces}), timeout=10,
                          headers={**tenant.bearer, "Content-Type": "application/json"})  # fmt: skip
    assert response.status_code == 200, response.text


def log_in(page: Page, live_server: Any) -> None:
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")


def test_admin_sets_retention_and_sees_what_was_removed(page: Page, live_server: Any, tenant: Tenant) -> None:
    send(live_server, tenant, datetime.now(UTC) - timedelta(days=2))
    Trace.objects.update(start_time=datetime.now(UTC) - timedelta(days=12))  # as if sent before a shorter retention
    log_in(page, live_server)
    page.goto(f"{live_server.url}/p/acme/settings/")
    page.click("text=Data retention")
    section = page.locator("#retention")
    expect(section).to_contain_text("Raw data (traces, spans")
    expect(section).to_contain_text("Nothing removed yet")

    section.locator("input[name=retention-raw_retention_days]").fill("90")
    section.locator("input[name=retention-aggregate_retention_days]").fill("60")
    section.locator("button", has_text="Save retention").click()
    expect(page.locator(".error")).to_contain_text("Keep aggregates at least as long as raw data (90 days)")
    page.screenshot(path=str(ARTIFACTS / "retention-error.png"), full_page=True)

    page.locator("input[name=retention-raw_retention_days]").fill("7")
    page.locator("input[name=retention-aggregate_retention_days]").fill("365")
    page.locator("button", has_text="Save retention").click()
    expect(page.locator(".messages")).to_contain_text("Raw data is kept 7 days and aggregates 365 days")
    retention_sweep()
    page.reload()
    removed = page.locator("#retention table.removals")
    expect(removed).to_contain_text("span rows")
    expect(removed).to_contain_text("trace rows")
    page.locator("#retention").screenshot(path=str(ARTIFACTS / "retention-settings.png"))


@pytest.fixture
def lagging_replica(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    settings.SRE4AI_REPLICA_ALIAS = REPLICA
    settings.DATABASE_ROUTERS = ["sre4ai_web.replica.ReplicaRouter"]
    monkeypatch.setattr(replica, "measure_lag", lambda connection: 95.0)
    replica.status_forget()
    yield
    replica.status_forget()


def test_pages_read_from_a_lagging_replica_say_data_as_of(
    page: Page, live_server: Any, tenant: Tenant, lagging_replica: None
) -> None:
    send(live_server, tenant, datetime.now(UTC) - timedelta(minutes=20))
    log_in(page, live_server)
    page.goto(f"{live_server.url}/p/acme/traces/")
    banner = page.locator(".stale-data")
    expect(banner).to_contain_text("Data as of")
    expect(banner).to_contain_text("replica that is behind")
    expect(page.locator("table")).to_contain_text("answer 2")
    page.screenshot(path=str(ARTIFACTS / "replica-lag-banner.png"))
