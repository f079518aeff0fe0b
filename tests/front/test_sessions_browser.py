"""Sessions and users in the browser: from a trace to its conversation, turn by turn, to the user's page and the
lists of sessions and users. Screenshots go to test-artifacts/ (sessions-*.png)."""

from __future__ import annotations

import os
import re
import time
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from evals.services import ExternalScore, score_record
from rollups.services import dirty_process
from tests import chromium
from tests.browser_data import IMG_XSS, SECOND_NS, send, turn
from tests.chromium import CHROMIUM, artifact, assert_no_xss, log_in
from tests.conftest import Tenant
from traces.models import Trace

# Shared fixtures: pytest finds a fixture by its name in the test's module.
browser = chromium.browser
page = chromium.page

pytestmark = [
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed"),
    pytest.mark.django_db(transaction=True),
]


def test_trace_to_conversation_to_user_and_the_lists(page: Page, live_server: Any, tenant: Tenant) -> None:
    now = time.time_ns() - 900 * SECOND_NS
    first = turn(now, "Can I return shoes I wore once?", "Yes, within 30 days if they are clean.", 800, "chat-7", "ana")
    second = turn(now + 40 * SECOND_NS, "And the refund?", "Refunds take 3 days.", 1500, "chat-7", "ana")
    third = turn(now + 90 * SECOND_NS, f"Thanks {IMG_XSS}", "You're welcome!", 300, "chat-7", "ana")
    other = turn(now + 20 * SECOND_NS, "Track my order", "It ships tomorrow.", 500, "chat-9", "ben")
    send(live_server, tenant.secret, third + first + other, "support-bot")  # arrival order is not turn order
    send(live_server, tenant.secret, second, "support-bot")
    wrong = Trace.objects.get(trace_id=second[0].trace_id.hex())
    score_record(score=ExternalScore(trace=wrong, span=None, name="grounding", value=0.1, label="unsupported",
                                     passed=False, comment="", external_id=""))  # fmt: skip
    dirty_process()

    log_in(page, live_server, "alice", f"/p/acme/traces/{wrong.trace_id}/")
    page.locator(".facts a", has_text="chat-7").click()
    expect(page).to_have_url(re.compile(r"/p/acme/session/\?id=chat-7$"))
    turns = page.locator("ol.conversation li.turn")
    expect(turns).to_have_count(3)
    expect(turns.nth(0).locator(".question")).to_contain_text("Can I return shoes")
    expect(turns.nth(1).locator(".answer")).to_contain_text("Refunds take 3 days.")
    expect(turns.nth(1).locator(".score-chip.fail")).to_contain_text("grounding")
    expect(turns.nth(2).locator(".question")).to_contain_text("<img src=x")  # shown as text
    expect(page.locator(".facts")).to_contain_text("grounding ×1")
    assert_no_xss(page)
    page.screenshot(path=artifact("sessions-conversation.png"), full_page=True)

    page.locator(".facts a", has_text="ana").click()
    expect(page).to_have_url(re.compile(r"/p/acme/user/\?id=ana$"))
    expect(page.locator("#user-sessions tbody tr")).to_have_count(1)
    expect(page.locator("#user-traces tbody tr")).to_have_count(3)
    expect(page.locator(".facts")).to_contain_text("grounding ×1")
    page.screenshot(path=artifact("sessions-user.png"), full_page=True)

    page.get_by_role("link", name="Sessions", exact=True).click()
    expect(page.locator("#session-table td.key")).to_have_text(["chat-7", "chat-9"])
    page.locator("select[name=sort]").select_option("failing")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#session-table td.key").first).to_have_text("chat-7")
    expect(page.locator("#session-table tbody tr").first.locator(".check-fail")).to_have_text("1")
    page.screenshot(path=artifact("sessions-list.png"))

    page.get_by_role("link", name="Users", exact=True).click()
    expect(page.locator("#user-table td.key")).to_have_text(["ana", "ben"])
    page.locator("select[name=sort]").select_option("traces")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#user-table tbody tr").first.locator("td.num").first).to_have_text("3")
    page.screenshot(path=artifact("sessions-users.png"))
