"""The trace list's Python time stays flat in the number of rows and checks it shows.

Most of the HTML page's Python time at one million spans was template work per row: a chip template included
for each of ~8 checks of 50 traces, each reversing a URL (docs/benchmarks.md §13). The chips are now built by one
tag per trace (``trace_format.score_chips``); this holds the page to a fixed set of templates however many rows
and checks it shows, and the tag to the escaping and links the chip template had."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from tests.conftest import Tenant
from tests.explorer_data import login, make_trace, score


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
