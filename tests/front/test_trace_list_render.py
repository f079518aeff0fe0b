"""The trace list's Python time stays flat in the number of rows and checks it shows.

Most of the HTML page's Python time at one million spans was template work per row: a chip template included
for each of ~8 checks of 50 traces, each reversing a URL (docs/benchmarks.md §13). The chips are now built by one
tag per trace (``trace_format.score_chips``); this holds the page to a fixed set of templates however many rows
and checks it shows, and the tag to the escaping and links the chip template had."""

from __future__ import annotations

import re
from html import escape as html_escape

import pytest
from django.test import Client
from django.urls import reverse

from tests.conftest import Tenant
from tests.explorer_data import login, make_trace, score
from traces.explorer_services import list_columns_set
from traces.models import LIST_COLUMN_CHOICES, Trace
from traces.templatetags.trace_format import trace_rows


def templates_rendered(client: Client, path: str) -> list[str]:
    response = client.get(path)
    assert response.status_code == 200
    return [t.name for t in response.templates if t.name]


@pytest.mark.django_db
def test_templates_per_page_do_not_grow_with_rows_or_checks(client: Client, tenant: Tenant) -> None:
    login(client, tenant)
    first = make_trace(tenant.project, 1, name="first")
    score(first, "grounding", passed=False, value=0.2)
    once = templates_rendered(client, "/p/acme/traces/")
    for n in range(2, 8):
        t = make_trace(tenant.project, n, name=f"trace-{n}")
        for name, passed in (("grounding", False), ("toxicity", True), ("tone", None), ("pii", True)):
            score(t, name, passed=passed, value=0.5)
    html = client.get("/p/acme/traces/").content.decode()
    assert html.count("score-chip fail") == 7 and html.count('<details class="passed-checks">') == 6
    assert templates_rendered(client, "/p/acme/traces/") == once


@pytest.mark.django_db
def test_score_chips_escape_names_and_link_to_their_filters(client: Client, tenant: Tenant) -> None:
    evil = '<b onmouseover="x()">&q=1'
    t = make_trace(tenant.project, 1, name="chips")
    score(t, evil, passed=True, value=0.123456)
    score(t, "grounding", passed=None)
    login(client, tenant)
    html = client.get("/p/acme/traces/").content.decode()
    row = html[html.index(f'data-trace="{t.trace_id}"') :]
    row = row[: row.index("</tr>")]
    assert "<b onmouseover" not in row
    # Passing: folded, with its value and a link that filters by it (the name URL-encoded, then HTML-escaped).
    chip = re.search(r'<a class="score-chip pass" href="([^"]+)" title="([^"]+)">(.*?)</a>', row)
    assert chip is not None
    assert chip.group(1) == "/p/acme/traces/?score=%3Cb%20onmouseover%3D%22x%28%29%22%3E%26q%3D1"
    assert chip.group(2) == "&lt;b onmouseover=&quot;x()&quot;&gt;&amp;q=1: passed · 0.123"
    assert chip.group(3) == "&lt;b onmouseover=&quot;x()&quot;&gt;&amp;q=1 <b>0.123</b>"
    assert 'title="1 passed: &lt;b onmouseover=&quot;x()&quot;&gt;&amp;q=1">✓ 1</summary>' in row
    # No verdict: in view, neutral, no value.
    assert (
        '<a class="score-chip neutral" href="/p/acme/traces/?score=grounding" title="grounding: no verdict">grounding</a>'
        in row
    )


@pytest.mark.django_db
def test_every_cell_of_a_row_escapes_what_the_app_sent(client: Client, tenant: Tenant) -> None:
    # The rows are built in Python (trace_format.trace_rows): each app-sent text in each column, as text.
    evil = '<img src=x onerror="alert(1)">&'
    shown = "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;"
    list_columns_set(user=tenant.user, project=tenant.project, columns=[key for key, _ in LIST_COLUMN_CHOICES])
    t = make_trace(
        tenant.project, 1, name=evil, session=evil, user=evil, question=evil, answer=evil, service=evil,
        environment=evil, status="error", cost="0.0000042", tokens=12345, duration_ms=1500,
    )  # fmt: skip
    Trace.objects.filter(pk=t.pk).update(release=evil, model_names=[evil, "gpt-4o"], has_unpriced=True, error_count=3)
    login(client, tenant)
    html = client.get("/p/acme/traces/").content.decode()
    row = html[html.index(f'<tr class="is-error" data-trace="{t.trace_id}">') :]
    row = row[: row.index("</tr>")]
    assert "<img" not in row and 'onerror="' not in row
    detail = f"/p/acme/traces/{t.trace_id}/"
    for cell in (
        f'<td class="pick"><input type="checkbox" name="trace" value="{t.trace_id}" form="bulk"',
        f'<td class="start"><a href="{detail}" title="2026-',
        f'<td class="service" title="{shown}">{shown}</td>',
        f'<td class="name"><a href="{detail}" title="{shown}">{shown}</a></td>',
        '<td class="num dur">1.50 s</td>',
        '<span class="status error">error</span> <span class="muted" title="3 spans failed">×3</span>',
        f'<td class="models" title="{shown}, gpt-4o"><span class="chip">{shown}</span><span class="chip">gpt-4o</span>',
        '<td class="num tokens">12,345</td>',
        '$0.0000042<sup class="muted">+?</sup></td>',
        '<a href="/p/acme/session/?id=%3Cimg%20src%3Dx%20onerror%3D%22alert%281%29%22%3E%26" '
        f'title="Conversation {shown}">{shown}</a>',
        f'<a href="/p/acme/user/?id=%3Cimg%20src%3Dx%20onerror%3D%22alert%281%29%22%3E%26" title="User {shown}">',
        f'<td class="release muted" title="{shown}">{shown}</td>',
        f'<span class="in" title="{shown}">{shown}</span><span class="arrow">→</span><span class="out" title="{shown}">',
    ):
        assert cell in row, cell
    # The environment column shows when the project has two environments; its cell escapes the same way.
    t.refresh_from_db()
    assert f'<td class="env muted" title="{shown}">{shown}</td>' in trace_rows("acme", [t], {"environment"}, False, "")
    # The rows' links are reversed once per page; each is the one reverse() gives, whatever the id holds.
    t.trace_id = "ab cd&é:@~'<x%"
    odd = trace_rows("acme", [t], set(), False, "")
    assert odd.count(f'href="{html_escape(reverse("trace_detail", args=["acme", t.trace_id]))}"') == 2
