"""Content-Security-Policy: every page, with data, works under a policy that allows no inline script; no page
reports a violation, the Plotly charts draw, Swagger UI starts, and an injected inline script is refused.
Playwright drives Debian's headless Chromium against a live server."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Dialog, Page, expect

from evals.services import traces_score
from rollups.services import dirty_process
from slos import services as slo_services
from slos.models import Channel
from tests import browser_data, chromium
from tests.browser_data import Sent
from tests.chromium import CHROMIUM, log_in
from tests.conftest import Tenant
from tests.slo_data import create_slo
from traces.models import Trace

# Shared fixtures: pytest finds a fixture by its name in the test's module.
sent = browser_data.sent
browser = chromium.browser

pytestmark = [
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed"),
    pytest.mark.django_db(transaction=True),
]

# Runs before any page script: collects every violation the browser reports.
COLLECT_VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(e.violatedDirective + " " + (e.blockedURI || "inline") + " " + (e.sourceFile || ""));
});
"""


@pytest.fixture
def page(browser: Browser) -> Iterator[tuple[Page, list[str]]]:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    context.set_default_timeout(10_000)
    context.add_init_script(COLLECT_VIOLATIONS)
    tab = context.new_page()
    problems: list[str] = []
    tab.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    tab.on("console", lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None)
    yield tab, problems
    context.close()


def _violations(tab: Page, problems: list[str]) -> list[str]:
    return [*tab.evaluate("window.__csp"), *problems]


def test_every_page_works_under_the_policy(page: tuple[Page, list[str]], live_server: Any, tenant: Tenant,
                                           sent: Sent) -> None:  # fmt: skip
    tab, problems = page
    traces_score(project_id=tenant.project.pk, trace_pks=list(Trace.objects.values_list("pk", flat=True)))
    dirty_process()
    slo = create_slo(tenant.project)
    slo_services.sli_history_rebuild(slo_id=slo.pk)
    Channel.objects.create(project=tenant.project, name="hook", kind="webhook", config={"url": "https://x.test/"})
    log_in(tab, live_server, "alice")
    response = tab.goto(live_server.url + "/p/acme/")
    assert response is not None and "script-src 'self'" in response.headers["content-security-policy"]

    tab.get_by_role("link", name="24 h").click()
    tab.locator('tr[data-service="summariser"] a').first.click()
    for chart in ("traffic", "latency", "cost", "safety"):
        expect(tab.locator(f"#chart-{chart} .main-svg").first).to_be_visible()
    # The environment drop-down submits itself (formerly an inline onchange).
    tab.select_option("select[name=environment]", "production")
    expect(tab).to_have_url(re.compile(r"environment=production"))

    tab.goto(f"{live_server.url}/p/acme/traces/{sent.rag}/")
    tab.locator(".waterfall .wf-row").nth(2).click()  # the span panels are driven by trace.js
    expect(tab.locator(".span-panel:visible h2")).to_contain_text("chat gpt-4o-mini")

    tab.goto(f"{live_server.url}/p/acme/slos/{slo.pk}/?range=window")
    expect(tab.locator("#chart-sli .main-svg").first).to_be_visible()

    for path in ("traces/", "slos/", "incidents/", "channels/", "drift/", "canary/", "probes/", "datasets/",
                 "evaluators/", "evaluators/runs/", "settings/", "settings/secrets/", "settings/audit/"):  # fmt: skip
        response = tab.goto(f"{live_server.url}/p/acme/{path}")
        assert response is not None and response.status == 200, path
    # A confirmation (formerly an inline onsubmit) still asks, and cancelling keeps the key.
    tab.goto(f"{live_server.url}/p/acme/settings/")
    asked: list[str] = []

    def dismiss(dialog: Dialog) -> None:
        asked.append(dialog.message)
        dialog.dismiss()

    tab.once("dialog", dismiss)
    tab.locator("section.keys tbody tr").first.get_by_role("button", name="Revoke").click()
    assert asked == ["Revoke this key? Apps using it will get 403."]
    expect(tab.locator("section.keys tbody tr").first).to_contain_text("active")
    # The evaluator page's service drop-down and the project switcher work without inline handlers.
    tab.goto(f"{live_server.url}/p/acme/evaluators/")
    tab.select_option("select[name=service]", "support-bot")
    expect(tab).to_have_url(re.compile(r"service=support-bot"))
    tab.select_option("#project-switch", "acme")
    expect(tab).to_have_url(re.compile(r"/p/acme/$"))

    tab.goto(live_server.url + "/api/docs/")
    expect(tab.locator(".swagger-ui .info .title")).to_contain_text("sre4ai API")
    expect(tab.locator(".opblock-summary-path", has_text="/api/v1/traces").first).to_be_visible()

    assert _violations(tab, problems) == []


def test_an_injected_inline_script_is_refused_and_reported(page: tuple[Page, list[str]], live_server: Any,
                                                            tenant: Tenant) -> None:  # fmt: skip
    tab, problems = page
    log_in(tab, live_server, "alice")
    tab.evaluate("""() => { const s = document.createElement("script"); s.textContent = "window.__ran = 1";
                            document.body.appendChild(s); }""")  # fmt: skip
    assert tab.evaluate("typeof window.__ran") == "undefined"
    expect(tab.locator("body")).to_be_visible()
    tab.wait_for_function("window.__csp.length > 0")
    assert any("script-src" in v for v in _violations(tab, problems))
