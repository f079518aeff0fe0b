"""Browser tests: Playwright drives Debian's headless Chromium against a live server.

Traces arrive through the real OTLP/HTTP endpoint (protobuf, Bearer key), then the tests log in through the
form and use the pages the way an on-call engineer does: list, filter, page, open a trace, click spans,
manage API keys. User-supplied text must render as text: the XSS payloads below must never execute.
"""

from __future__ import annotations

import json
import os
import re
import time
from typing import Any
from urllib.parse import quote

import pytest
from playwright.sync_api import Page, expect

from evals.services import traces_score
from rollups.services import dirty_process
from tests import browser_data, chromium
from tests.browser_data import (
    FILLER_TRACES,
    IMG_XSS,
    MINUTE_NS,
    SCRIPT_XSS,
    Sent,
    agent_trace,
    filler_trace,
    messages,
    post_otlp,
    rag_trace,
    send,
    trace_id_of,
)
from tests.chromium import CHROMIUM, artifact, assert_no_xss, log_in, row_of, rows
from tests.conftest import Tenant
from tests.otlp_build import span
from traces.models import Trace

# Shared fixtures: pytest finds a fixture by its name in the test's module.
browser = chromium.browser
page = chromium.page
sent = browser_data.sent

pytestmark = [
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed"),
    # The live server runs in another thread: the data must be committed for it to see it.
    pytest.mark.django_db(transaction=True),
]


# --- fixtures ------------------------------------------------------------------------------------------


# --- tests ---------------------------------------------------------------------------------------------


def test_login_list_filter_and_paging(page: Page, live_server: Any, tenant: Tenant, sent: Sent) -> None:
    # Login through the form; the home page redirects to the user's project.
    log_in(page, live_server, "alice")
    expect(page).to_have_url(re.compile(r"/p/acme/$"))
    page.get_by_role("link", name="Traces", exact=True).click()
    expect(page).to_have_url(re.compile(r"/p/acme/traces/$"))
    # The stylesheet loaded (dark theme), so the screenshots and layout checks mean something.
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(15, 18, 22)"

    # Newest first, 50 per page.
    expect(rows(page)).to_have_count(50)
    expect(rows(page).first).to_have_attribute("data-trace", sent.xss)
    page.screenshot(path=artifact("browser-list.png"))

    rag = row_of(page, sent.rag)
    expect(rag.locator("td.service")).to_have_text("support-bot")
    expect(rag.locator("td.models")).to_contain_text("gpt-4o-mini")
    expect(rag.locator("td.tokens")).to_have_text("1,545")
    expect(rag.locator("td.cost")).to_have_text(re.compile(r"^\$0\.0\d+$"))
    expect(rag.locator("td.io .in")).to_have_text("How long do refunds take?")
    expect(rag.locator("td.io .out")).to_have_text("Refunds are issued within 14 days.")
    expect(rag.locator("td.col-status")).to_contain_text("ok")
    failed = row_of(page, sent.failed)
    expect(failed.locator("td.service")).to_have_text("travel-agent")
    expect(failed.locator("td.col-status")).to_contain_text("error")
    expect(failed.locator("td.models")).to_contain_text("gpt-4.1-mini")
    expect(row_of(page, sent.fillers[0]).locator("td.models")).to_contain_text("claude-3-5-haiku-20241022")

    # Filter through the form: the filters end up in the URL (shareable) and the rows follow.
    page.locator("#filters select[name=service]").select_option("travel-agent")
    page.locator("#filters select[name=status]").select_option("error")
    page.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(re.compile(r"[?&]service=travel-agent(&|$)"))
    expect(page).to_have_url(re.compile(r"[?&]status=error(&|$)"))
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_have_attribute("data-trace", sent.failed)
    expect(page.locator("#filters select[name=service]")).to_have_value("travel-agent")

    # The shared link reproduces the same view in a new tab.
    shared = page.context.new_page()
    shared.goto(page.url)
    expect(rows(shared)).to_have_count(1)
    shared.close()

    # Only the service filter: both agent runs.
    page.locator("#filters select[name=status]").select_option("")
    page.get_by_role("button", name="Apply").click()
    expect(page).not_to_have_url(re.compile(r"status=error"))
    expect(rows(page)).to_have_count(2)

    # Text search in input/output.
    page.get_by_role("link", name="Reset").click()
    page.locator("#filters input[name=q]").fill("refunds take")
    page.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(re.compile(r"[?&]q=refunds\+take"))
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_have_attribute("data-trace", sent.rag)

    # Paging: 59 traces, 50 on the first page, the rest behind "Older →"; keyset cursor in the URL.
    page.get_by_role("link", name="Reset").click()
    expect(rows(page)).to_have_count(50)
    first_page = set(rows(page).evaluate_all("rs => rs.map(r => r.dataset.trace)"))
    page.get_by_role("link", name="Older →").click()
    expect(page).to_have_url(re.compile(r"[?&]cursor="))
    expect(rows(page)).to_have_count(FILLER_TRACES + 4 - 50)
    second_page = set(rows(page).evaluate_all("rs => rs.map(r => r.dataset.trace)"))
    assert not first_page & second_page
    assert first_page | second_page == {sent.rag, sent.agent, sent.failed, sent.xss, *sent.fillers}
    expect(page.get_by_role("link", name="Older →")).to_have_count(0)
    page.get_by_role("link", name="⇤ Newest").click()
    expect(rows(page)).to_have_count(50)


def test_trace_detail_waterfall_and_span_panels(page: Page, live_server: Any, tenant: Tenant, sent: Sent) -> None:
    log_in(page, live_server, "alice", "/p/acme/traces/")
    # Open the RAG answer from the list.
    row_of(page, sent.rag).locator("td.name a").click()
    expect(page).to_have_url(re.compile(rf"/p/acme/traces/{sent.rag}/"))
    expect(page.locator("h1")).to_contain_text("answer_question")

    waterfall = page.locator(".waterfall .wf-row")
    expect(waterfall).to_have_count(3)
    expect(waterfall.nth(0)).to_contain_text("answer_question")
    expect(waterfall.nth(0).locator(".kind")).to_have_text("Chain")
    expect(waterfall.nth(1).locator(".kind")).to_have_text("Retrieval")
    expect(waterfall.nth(2).locator(".kind")).to_have_text("LLM")
    # The root span's panel is shown first, the others hidden.
    expect(page.locator(".span-panel:visible")).to_have_count(1)
    expect(page.locator(".span-panel:visible")).to_contain_text("How long do refunds take?")

    # Retrieval span: documents with ids and scores.
    waterfall.nth(1).click()
    panel = page.locator(".span-panel:visible")
    expect(panel).to_have_count(1)
    expect(panel.locator("h2")).to_contain_text("retrieve_kb")
    docs = panel.locator("ol.docs > li")
    expect(docs).to_have_count(2)
    expect(docs.nth(0)).to_contain_text("kb-101")
    expect(docs.nth(0)).to_contain_text("0.912")
    expect(docs.nth(0)).to_contain_text("Refunds are issued within 14 days.")
    expect(docs.nth(1)).to_contain_text("kb-105")
    expect(waterfall.nth(1)).to_have_class(re.compile(r"\bselected\b"))
    expect(page).to_have_url(re.compile(r"#span-[0-9a-f]{16}$"))

    # LLM span: model, provider, tokens, cost, chat messages by role.
    waterfall.nth(2).click()
    panel = page.locator(".span-panel:visible")
    expect(panel.locator("h2")).to_contain_text("chat gpt-4o-mini")
    expect(panel.locator("dl.facts")).to_contain_text("gpt-4o-mini")
    expect(panel.locator("dl.facts")).to_contain_text("openai")
    expect(panel.locator("dl.facts")).to_contain_text("1,200 in / 345 out")
    expect(panel.locator("dl.facts")).to_contain_text("$0.")
    expect(panel.locator(".chat .msg.role-system")).to_contain_text("Answer only from the context.")
    expect(panel.locator(".chat .msg.role-user")).to_have_count(1)
    expect(panel.locator(".chat .msg.role-user .content")).to_have_text("How long do refunds take?")
    expect(panel.locator(".chat .msg.role-assistant .content")).to_have_text("Refunds are issued within 14 days.")
    page.screenshot(path=artifact("browser-detail-llm.png"))

    # Reloading with the span in the URL shows that span again (links to a span can be shared).
    page.reload()
    expect(page.locator(".span-panel:visible h2")).to_contain_text("chat gpt-4o-mini")

    # The agent run: tool arguments and result, and the LLM's tool call.
    page.goto(f"{live_server.url}/p/acme/traces/{sent.agent}/")
    waterfall = page.locator(".waterfall .wf-row")
    expect(waterfall).to_have_count(4)
    waterfall.filter(has_text="chat gpt-4.1-mini").click()
    panel = page.locator(".span-panel:visible")
    expect(panel.locator(".toolcall")).to_contain_text("get_weather")
    expect(panel.locator(".toolcall")).to_contain_text('"city": "Oslo"')
    waterfall.filter(has_text="execute_tool get_weather").click()
    panel = page.locator(".span-panel:visible")
    expect(panel.locator(".kind").first).to_have_text("Tool")
    expect(panel.locator("dl.facts")).to_contain_text("get_weather")
    expect(panel.locator(".tool-args")).to_contain_text('"city": "Oslo"')
    expect(panel.locator(".tool-result")).to_contain_text('"forecast": "drizzle"')
    page.screenshot(path=artifact("browser-detail-tool.png"))

    # The failed run: the error is on the page, and the failing span is the one opened first.
    page.goto(f"{live_server.url}/p/acme/traces/{sent.failed}/")
    expect(page.locator("h1 .status")).to_have_text("error")
    failing = page.locator(".waterfall .wf-row.is-error")
    expect(failing).to_have_count(1)
    expect(failing).to_contain_text("execute_tool search_hotels")
    panel = page.locator(".span-panel:visible")
    expect(panel.locator("h2")).to_contain_text("execute_tool search_hotels")
    expect(panel.locator("pre.error")).to_have_text("HTTP 502 from hotels API")
    # Arrow keys move between spans.
    page.keyboard.press("ArrowUp")
    expect(page.locator(".span-panel:visible h2")).to_contain_text("execute_tool get_weather")


def test_user_text_is_rendered_as_text_never_executed(page: Page, live_server: Any, tenant: Tenant, sent: Sent) -> None:
    log_in(page, live_server, "alice", "/p/acme/traces/")
    row = row_of(page, sent.xss)
    expect(row.locator("td.io .in")).to_contain_text(SCRIPT_XSS)
    expect(row.locator("td.io .out")).to_contain_text(IMG_XSS)
    expect(row.locator("td.name")).to_contain_text(IMG_XSS)
    assert_no_xss(page)

    row.locator("td.name a").click()
    expect(page.locator("h1")).to_contain_text(f"evil {IMG_XSS}")
    root = page.locator(".span-panel:visible")
    expect(root.locator("pre.error")).to_have_text(f"boom {SCRIPT_XSS}")
    expect(root).to_contain_text(f"question {SCRIPT_XSS}")
    expect(root).to_contain_text(f"Ignore this {SCRIPT_XSS} and {IMG_XSS}")
    assert_no_xss(page)

    # Every span's panel: documents, chat messages, tool name, arguments and result.
    for row in page.locator(".waterfall .wf-row").all():
        row.click()
        assert_no_xss(page)
    panels = page.locator(".span-panel")
    expect(panels.filter(has_text="retrieve_evil").locator("ol.docs")).to_contain_text(f"doc {IMG_XSS}")
    expect(panels.filter(has_text="chat gpt-4o-mini").locator(".chat .msg.role-user")).to_contain_text(SCRIPT_XSS)
    tool = panels.filter(has=page.locator("h2", has_text="execute_tool evil"))
    expect(tool.locator("dl.facts")).to_contain_text(f"evil {IMG_XSS}")
    expect(tool.locator(".tool-args")).to_contain_text(SCRIPT_XSS)
    expect(tool.locator(".tool-result")).to_contain_text(json.dumps(IMG_XSS))  # JSON-quoted, as text
    page.screenshot(path=artifact("browser-detail-xss.png"))

    # The search box echoes what was typed, escaped.
    page.goto(f"{live_server.url}/p/acme/traces/?q={quote(IMG_XSS)}")
    expect(page.locator("#filters input[name=q]")).to_have_value(IMG_XSS)
    assert_no_xss(page)


def test_settings_admin_creates_and_revokes_an_api_key(page: Page, live_server: Any, tenant: Tenant) -> None:
    log_in(page, live_server, "alice", "/p/acme/settings/")
    expect(page.locator("h1")).to_contain_text("settings")
    page.locator("input[name=key-name]").fill("ci-exporter")
    page.get_by_role("button", name="Create API key").click()

    secret = page.locator("#new-secret-key").inner_text().strip()
    public = page.locator("#new-public-key").inner_text().strip()
    assert len(secret) >= 20
    key_row = page.locator("section.keys tbody tr", has_text="ci-exporter")
    expect(key_row).to_contain_text(public)
    expect(key_row).to_contain_text("active")
    expect(key_row).not_to_contain_text(secret)
    # The new key writes to this project.
    trace = filler_trace(time.time_ns(), 0)
    assert post_otlp(live_server, secret, trace, "summariser").status_code == 200

    # Shown once: a reload neither shows the secret again nor mints a second key (post/redirect/get).
    page.reload()
    expect(page.locator("#new-secret-key")).to_have_count(0)
    assert secret not in page.content()
    expect(page.locator("section.keys tbody tr", has_text="ci-exporter")).to_have_count(1)

    # Revoke (confirming the dialog): the key is marked revoked and no longer accepted.
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("section.keys tbody tr", has_text="ci-exporter").get_by_role("button", name="Revoke").click()
    expect(page.locator(".messages")).to_contain_text(f"Key {public} revoked")
    expect(page.locator("section.keys tbody tr", has_text="ci-exporter")).to_contain_text("revoked")
    expect(page.locator("section.keys tbody tr", has_text="ci-exporter").get_by_role("button")).to_have_count(0)
    assert post_otlp(live_server, secret, trace, "summariser").status_code in (401, 403)
    # The tenant's other key still works.
    assert post_otlp(live_server, tenant.secret, trace, "summariser").status_code == 200


def test_member_of_a_gets_404_on_project_b(
    page: Page, live_server: Any, tenant: Tenant, other_tenant: Tenant, sent: Sent
) -> None:
    theirs = rag_trace(time.time_ns(), "What is globex's secret plan?", "Globex private answer.")
    send(live_server, other_tenant.secret, theirs, "globex-bot")
    their_id = trace_id_of(theirs)

    log_in(page, live_server, "alice")
    # The project switcher lists only alice's projects.
    expect(page.locator("#project-switch option")).to_have_count(1)
    for path in (
        "/p/globex/traces/",
        f"/p/globex/traces/{their_id}/",
        "/p/globex/settings/",
        f"/p/acme/traces/{their_id}/",  # B's trace id under A's slug
    ):
        response = page.goto(live_server.url + path)
        assert response is not None
        assert response.status == 404, path
        assert "Globex private answer" not in page.content()
    # A filter naming B's service shows nothing of B's in A's list.
    page.goto(live_server.url + "/p/acme/traces/?service=globex-bot")
    expect(rows(page)).to_have_count(0)


def test_overview_and_service_charts_click_through_to_traces(
    page: Page, live_server: Any, tenant: Tenant, sent: Sent
) -> None:
    traces_score(project_id=tenant.project.pk, trace_pks=list(Trace.objects.values_list("pk", flat=True)))
    dirty_process()  # the scores' minutes
    log_in(page, live_server, "alice")
    expect(page).to_have_url(re.compile(r"/p/acme/$"))
    page.get_by_role("link", name="24 h").click()
    overview = page.locator("table.overview tbody tr")
    expect(overview).to_have_count(3)
    expect(page.locator('tr[data-service="summariser"] td.sig-traffic .v')).to_have_text(str(FILLER_TRACES))
    # Sparklines are drawn for services with traffic in several buckets.
    expect(page.locator('tr[data-service="summariser"] svg.spark polyline').first).to_be_attached()
    page.screenshot(path=artifact("browser-overview.png"))

    page.locator('tr[data-service="summariser"] a').first.click()
    expect(page).to_have_url(re.compile(r"/p/acme/service/\?name=summariser"))
    for chart in ("traffic", "latency", "cost", "safety"):
        expect(page.locator(f"#chart-{chart} .main-svg").first).to_be_visible()
    page.screenshot(path=artifact("browser-service.png"), full_page=True)

    # Clicking a traffic bar opens the trace list filtered to that service and minute.
    # The tallest bar: the bucket with the most traces.
    boxes = [b for b in (bar.bounding_box() for bar in page.locator("#chart-traffic .bars .point path").all()) if b]
    box = max(boxes, key=lambda b: b["height"])
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)  # Plotly reports a click on the point it is hovering
    expect(
        page.locator("#chart-traffic .hoverlayer .hovertext, #chart-traffic .hoverlayer .legend").first
    ).to_be_attached()
    page.mouse.click(x, y)
    expect(page).to_have_url(re.compile(r"/p/acme/traces/\?.*service=summariser"))
    expect(page).to_have_url(re.compile(r"since="))
    assert rows(page).count() >= 1
    for service in page.locator("table.traces tbody td.service").all_inner_texts():
        assert service.strip() == "summariser"


def answered_agent_trace(start: int) -> list[Any]:
    """An agent that called a weather tool and answered from its result."""
    spans = agent_trace(start)[:3]  # the agent, its tool-calling LLM step, the weather tool
    trace_id, root_id = spans[0].trace_id.hex(), spans[0].span_id.hex()
    answer = "Oslo will have drizzle this weekend, around 11°C. Bring an umbrella!"
    spans.append(
        span(
            trace_id,
            parent=root_id,
            name="chat gpt-4.1-mini",
            start_ns=start + 1_500_000_000,
            duration_ms=600,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4.1-mini",
                "gen_ai.input.messages": messages(("user", "Plan a weekend in Oslo.")),
                "gen_ai.output.messages": messages(("assistant", answer)),
                "gen_ai.usage.input_tokens": 520,
                "gen_ai.usage.output_tokens": 40,
            },
        )
    )
    return spans


def test_grounding_claim_shows_the_tool_result_it_rests_on(page: Page, live_server: Any, tenant: Tenant) -> None:
    """The trace page's context-span column quotes the tool result a claim was checked against (it said "no
    matching passage" for tool-result context), in the agents' 'specifics' mode as in the default one."""
    from evals.services import evaluator_config_set

    evaluator_config_set(project=tenant.project, service="travel-agent", evaluator="grounding", enabled=True,
                         params={"claims": "specifics"}, sampling_rate=1.0, user=None)  # fmt: skip
    spans = answered_agent_trace(time.time_ns() - MINUTE_NS)
    send(live_server, tenant.secret, spans, "travel-agent")
    traces_score(project_id=tenant.project.pk, trace_pks=list(Trace.objects.values_list("pk", flat=True)))
    log_in(page, live_server, "alice", f"/p/acme/traces/{trace_id_of(spans)}/")
    claims = page.locator("table.grounding-evidence tbody tr")
    expect(claims).to_have_count(1)  # "Bring an umbrella!" states no specific
    expect(claims.first.locator("td").nth(0)).to_contain_text("Oslo will have drizzle this weekend, around 11°C.")
    expect(claims.first.locator("td").nth(1)).to_contain_text("supported")
    span_cell = claims.first.locator("td").nth(2)
    expect(span_cell).to_contain_text("tool:get_weather [")
    expect(span_cell.locator("blockquote")).to_contain_text("drizzle")
    expect(span_cell.locator("blockquote")).to_contain_text("11")
    expect(page.locator("table.grounding-evidence")).not_to_contain_text("no matching passage")
    page.locator("table.grounding-evidence").screenshot(path=artifact("browser-grounding-tool-span.png"))
    page.screenshot(path=artifact("browser-grounding-tool-trace.png"), full_page=True)
