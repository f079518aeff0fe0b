"""Browser: the demo project of ``make run`` (``seed_demo``), every page of it in headless Chromium, then every
same-origin link found on those pages; none may answer 5xx. In the SQLite run of ``make test`` this is the
embedded default exactly as ``make run`` serves it (SQLite file, filesystem broker).

The worker's and beat's jobs run in-process: Celery tasks eagerly (scoring, SLI history, drift, as the worker would
run them from the queue), then the rollups and one SLO evaluation tick, as beat would schedule them."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit

import pytest
from django.core.management import call_command
from django.utils import timezone
from playwright.sync_api import Page, expect

from evals.models import DriftRun
from rollups.services import dirty_process
from slos.models import SLO, Incident
from slos.services import slos_evaluate
from sre4ai_web.celery import app
from tests import chromium
from tests.chromium import ARTIFACTS, CHROMIUM
from traces.models import Trace

# The browser tests' fixtures: one headless Chromium per module, a fresh context per test that fails on JS errors.
browser = chromium.browser
page = chromium.page

pytestmark = [
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed"),
    # The live server runs in another thread: the data must be committed for it to see it.
    pytest.mark.django_db(transaction=True),
]
DEMO_TRACES = 400  # make run loads 1,500; 400 give every page, chart and comparison of the demo its data
SCREENSHOTS = ARTIFACTS / "demo-walk"  # for a human to look at
MAX_LINKS = 250
PER_SHAPE = 3  # links that differ only by ids (50 trace rows) are one shape: follow a few of each
CANARY = [
    ("release", "v1.4.0", "v1.5.0"),
    ("model", "gpt-4o-mini", "claude-3-5-haiku-20241022"),
    ("prompt", "support-answer v3", "support-answer v4"),
    ("gen_ai.request.model", "gpt-4o-mini", "claude-3-5-haiku-20241022"),  # span attribute
    ("langfuse.observation.prompt.version", "3", "4"),  # span attribute holding a JSON number
    ("service.version", "v1.4.0", "v1.5.0"),  # resource attribute
]


@pytest.fixture
def demo(live_server: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """``seed_demo`` as ``make run`` calls it, with the worker's tasks run as they are queued."""
    monkeypatch.delenv("SRE4AI_DEMO_PASSWORD", raising=False)
    eager = {"task_always_eager": True, "task_eager_propagates": True}  # a failing task fails the test
    previous = {name: app.conf[name] for name in eager}
    app.conf.update(eager)
    # Work is queued by task name (send_task, which eager mode ignores): run the named task here, from the tasks
    # modules a worker loads.
    app.loader.import_default_modules()
    monkeypatch.setattr(app, "send_task", lambda name, args=(), kwargs=None, **options: app.tasks[name].apply(
        args=args, kwargs=kwargs))  # fmt: skip
    try:
        call_command("seed_demo", "--if-empty", "--traces", str(DEMO_TRACES), verbosity=0)
        while dirty_process():  # beat's rollup job
            pass
    finally:
        app.conf.update(previous)
    assert DriftRun.objects.filter(project__slug="demo").count() == 3
    assert SLO.objects.filter(history_ready_at__isnull=False).count() == 4
    slos_evaluate(now=timezone.now() - timedelta(minutes=1))  # beat's SLO tick: the demo opens an incident
    return "/p/demo/"


def shape(url: str) -> str:
    """A link with its ids blanked out: trace pages differ only by id, and so do their filter links."""
    parts = urlsplit(url)
    keys = sorted(k for k, _ in parse_qsl(parts.query))
    return re.sub(r"[0-9a-f]{16,32}|\d+", "N", parts.path) + "?" + "&".join(keys)


def same_origin_links(page: Page, base: str) -> list[str]:
    hrefs = page.eval_on_selector_all("a[href]", "links => links.map(a => a.getAttribute('href'))")
    urls = [urljoin(page.url, href).split("#")[0] for href in hrefs]
    return [url for url in urls if url.startswith(base)]


def visit(page: Page, url: str, screenshot: str = "") -> None:
    response = page.goto(url)
    assert response is not None and response.status == 200, f"{url} answered {response and response.status}"
    if screenshot:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{screenshot}.png"), full_page=True)


def assert_costs_shown_in_full(page: Page) -> None:
    """Sub-cent costs have three significant figures ("$0.000123") and the column is wide enough to show them:
    an ellipsis ("$0.0000…") hides exactly the digits that matter."""
    cells = page.locator("table.traces td.cost")
    assert cells.count() > 0
    costs = cells.evaluate_all("cells => cells.map(c => [c.textContent.trim(), c.scrollWidth > c.clientWidth])")
    assert any(re.fullmatch(r"\$0\.00\d+", text) for text, _ in costs), costs  # the demo has sub-cent traces
    for text, clipped in costs:
        assert re.fullmatch(r"(–|unpriced|\$0|\$0\.00*[1-9]\d{0,2}|\$[\d,]+(\.\d{1,4})?)(\+\?)?", text), text
        assert not clipped, f"cost {text!r} is cut off in the trace list"


def test_every_page_of_the_demo_answers_and_so_does_every_link_on_them(page: Page, live_server: Any,
                                                                       demo: str) -> None:  # fmt: skip
    base = live_server.url
    page.goto(base + "/login/")
    page.get_by_label("Username").fill("demo")
    page.get_by_label("Password").fill("sre4ai-demo")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("header.top")).to_contain_text("demo")

    project = base + demo
    trace = Trace.objects.filter(project__slug="demo", service="support-bot").order_by("-start_time").first()
    assert trace is not None
    slo = SLO.objects.get(project__slug="demo", name="Answers are grounded")
    incident = Incident.objects.filter(slo__project__slug="demo").first()
    assert incident is not None, "the demo's grounding SLO burns its budget: an incident is open"
    pages = {
        "services": project,
        "service": project + "service/?name=support-bot",
        "traces": project + "traces/",
        "trace": f"{project}traces/{trace.trace_id}/",
        "slos": project + "slos/",
        "slo": f"{project}slos/{slo.pk}/",
        "slo-new": project + "slos/new/",
        "incidents": project + "incidents/",
        "incident": f"{project}incidents/{incident.pk}/",
        "drift": project + "drift/",
        "probes": project + "probes/",
        "datasets": project + "datasets/",
        "canary": project + "canary/",
        "evaluators": project + "evaluators/",
        "eval-runs": project + "evaluators/runs/",
        "channels": project + "channels/",
        "settings": project + "settings/",
        "api-docs": base + "/api/docs/",
    }
    for attribute, baseline, canary in CANARY:
        query = {
            "service": "support-bot",
            "attribute": attribute,
            "baseline": baseline,
            "canary": canary,
            "since": "3d",
        }
        pages[f"canary-{attribute}"] = f"{project}canary/?{urlencode(query)}"
    shots = {"services", "service", "traces", "trace", "slo", "incident", "drift", "canary-model",
             "canary-service.version"}  # fmt: skip
    links: dict[str, None] = {}
    for name, url in pages.items():
        visit(page, url, name if name in shots else "")
        if name == "traces":
            assert_costs_shown_in_full(page)
        if name.startswith("canary-"):
            # Each comparison finds both cohorts and reaches a verdict on SQLite and PostgreSQL alike.
            expect(page.locator("#canary-verdict")).to_have_text(re.compile("pass|marginal|fail"))
        links.update(dict.fromkeys(same_origin_links(page, base)))

    per_shape: dict[str, int] = {}
    followed = 0
    for url in links:
        key = shape(url)
        if url in pages.values() or per_shape.get(key, 0) >= PER_SHAPE:
            continue
        per_shape[key] = per_shape.get(key, 0) + 1
        response = page.request.get(url, max_redirects=5)
        assert response.status < 500, f"{url} (linked from the demo's pages) answered {response.status}"
        followed += 1
        if followed >= MAX_LINKS:
            break
    assert followed > 20, f"only {followed} links followed: the pages link less than they should"
