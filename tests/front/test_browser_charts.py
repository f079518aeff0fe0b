"""Browser: the charts an on-call engineer reads at 3 a.m. Drag a time range on the service page's latency chart and
the page and its trace links follow; hover a percentile and see how many traces it stands on; read the drift
summary and open a signal's statistics; zoom the SLO page's charts together. Playwright drives Debian's headless
Chromium against a live server; screenshots go to test-artifacts/charts-*.png to be looked at."""

from __future__ import annotations

import os
import random
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client
from django.utils import timezone
from playwright.sync_api import Locator, Page, expect

from evals.drift.runs import drift_run_create, drift_run_execute
from slos import services
from tests import chromium
from tests.chromium import ARTIFACTS, CHROMIUM
from tests.conftest import PASSWORD, Tenant
from tests.drift_data import batch, send
from tests.slo_data import T0, create_slo, ingest, make_trace, recompute

# Shared fixtures: pytest finds a fixture by its name in the test's module.
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


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"charts-{name}.png"), full_page=True)


def drag(chart: Locator, start: float, end: float) -> None:
    """Drag across a Plotly chart's plot area from one share of its width to another, at mid height."""
    box = chart.locator(".nsewdrag").first.bounding_box()
    assert box
    y = box["y"] + box["height"] / 2
    page = chart.page
    page.mouse.move(box["x"] + box["width"] * start, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * (start + end) / 2, y, steps=5)
    page.mouse.move(box["x"] + box["width"] * end, y, steps=5)
    page.mouse.up()


def utc(text: str) -> datetime:
    """A time from a URL or a Plotly axis range ("2026-12-06 13:45:12.3", no zone, is UTC wall time)."""
    moment = datetime.fromisoformat(text.replace(" ", "T").replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


def test_drag_a_time_range_on_the_service_page_and_read_sample_counts(
    page: Page, live_server: Any, tenant: Tenant
) -> None:
    rng = random.Random(4)
    ingest(tenant, [make_trace(m, duration_ms=rng.lognormvariate(6, 0.5)) for m in range(60) for _ in range(m % 4 + 1)])
    recompute()
    login(page, live_server)
    since, until = T0, T0 + timedelta(hours=1)
    page.goto(f"{live_server.url}/p/acme/service/?name=support-bot&range=custom&since={since.isoformat()}"
              f"&until={until.isoformat()}".replace("+", "%2B"))  # fmt: skip
    latency = page.locator("#chart-latency")
    expect(latency.locator(".main-svg").first).to_be_visible()
    expect(latency).to_contain_text("Latency of 150 traces")
    # Hovering the chart names each percentile's sample count.
    box = latency.locator(".nsewdrag").first.bounding_box()
    assert box
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
    expect(latency.locator(".hoverlayer")).to_contain_text("n=")
    screenshot(page, "service")

    drag(latency, 0.25, 0.6)
    page.wait_for_url(lambda url: "range=custom" in url and query(url)["since"] != [since.isoformat()])
    picked = query(page.url)
    start, end = (utc(picked[k][0]) for k in ("since", "until"))
    assert since + timedelta(minutes=10) < start < end < until - timedelta(minutes=15), (start, end)
    expect(page.locator(".range-bar")).to_contain_text(f"{start:%m-%d %H:%M} → {end:%m-%d %H:%M}")
    # The trace links carry the picked range, and the chart's total now counts only it.
    traces = page.locator("a[data-range-link]")
    linked = query(traces.get_attribute("href") or "")
    assert [datetime.fromisoformat(linked["since"][0]), datetime.fromisoformat(linked["until"][0])] == [start, end]
    expect(latency).not_to_contain_text("Latency of 150 traces")
    traces.click()
    expect(page.locator("body")).not_to_contain_text("Enter a valid date/time")
    screenshot(page, "service-zoomed-traces")


def test_drift_page_reads_as_a_sentence_with_statistics_one_click_away(
    page: Page, live_server: Any, tenant: Tenant
) -> None:
    rng = random.Random(5)
    now = timezone.now()
    send(Client(), tenant, batch(rng, 300, now - timedelta(days=8), timedelta(days=6), False, "gpt-4o-mini")
         + batch(rng, 150, now - timedelta(hours=20), timedelta(hours=18), True, "claude-3-5-haiku"))  # fmt: skip
    drift_run_execute(run_id=drift_run_create(project=tenant.project, service="bot", now=now).pk)
    login(page, live_server)
    page.goto(f"{live_server.url}/p/acme/drift/?service=bot")
    headline = page.locator(".drift-headline")
    expect(headline).to_contain_text("slower")
    expect(headline).to_contain_text("model changed to claude-3-5-haiku")
    # Statistics are closed until asked for; opening one draws its chart.
    first = page.locator(".drift-change").first
    expect(first.locator(".drift-card")).to_be_hidden()
    first.locator("summary").click()
    expect(first.locator(".drift-chart .main-svg").first).to_be_visible()
    page.locator(".drift-stats > summary").click()
    expect(page.locator(".drift-stats .drift-chart .main-svg").first).to_be_visible()
    screenshot(page, "drift")


def test_slo_page_charts_zoom_together_and_the_traces_link_follows(
    page: Page, live_server: Any, tenant: Tenant
) -> None:
    # Two hours of traffic two days ago with a burst of errors, and a few minutes just now, 3 of 12 failing: the
    # budget is partly spent and burning at 2.5× over the page rule's 10 minutes, so the forecast shows.
    recent = int((timezone.now() - T0).total_seconds() // 60) - 6
    ingest(tenant, [make_trace(m) for m in range(0, 120) for _ in range(3)]
           + [make_trace(m, status="error") for m in range(60, 75)]
           + [make_trace(recent + i % 4, status="error" if i < 3 else "ok") for i in range(12)])  # fmt: skip
    recompute()
    slo = create_slo(tenant.project)
    services.sli_history_rebuild(slo_id=slo.pk, now=timezone.now())
    services.slos_evaluate(now=timezone.now())
    login(page, live_server)
    page.goto(f"{live_server.url}/p/acme/slos/{slo.pk}/?range=7d")
    for figure in ("sli", "budget", "burn0"):
        expect(page.locator(f"#chart-{figure} .main-svg").first).to_be_visible()
    expect(page.locator("#chart-burn0")).to_contain_text("both above: fires")
    expect(page.locator("#chart-budget")).to_contain_text("forecast at the last 10m's burn rate")
    expect(page.locator("#chart-budget")).to_contain_text("empty in")
    link = page.locator("a[data-range-link]")
    expect(link).to_contain_text("Failing traces in the shown range")
    before = query(link.get_attribute("href") or "")
    screenshot(page, "slo")

    drag(page.locator("#chart-sli"), 0.5, 0.9)
    ranges = page.evaluate(
        "['sli', 'budget', 'burn0'].map((f) => document.getElementById('chart-' + f).layout.xaxis.range)"
    )
    (start, end), *others = [[utc(x) for x in r] for r in ranges]
    assert timedelta(days=2) < end - start < timedelta(days=3.5)  # 40 % of the 7 days shown
    assert all(abs(o[0] - start) < timedelta(minutes=1) and abs(o[1] - end) < timedelta(minutes=1) for o in others)
    after = query(link.get_attribute("href") or "")
    assert after["status"] == ["error"] and after["since"] != before["since"]
    zoomed = [utc(after[k][0]) for k in ("since", "until")]
    shown = [datetime.fromisoformat(before[k][0]) for k in ("since", "until")]
    assert shown[0] < zoomed[0] < zoomed[1] <= shown[1] + timedelta(minutes=10)
    screenshot(page, "slo-zoomed")
