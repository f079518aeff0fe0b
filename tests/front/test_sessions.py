"""Session and user pages and their lists: a conversation turn by turn, a user's traces, sessions, cost and
failing checks; filters, sorting, bounded queries and project isolation."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client

from evals.models import Score, ScoreSource
from evals.services import scores_upsert
from tests.conftest import PASSWORD, Tenant
from tests.explorer_data import make_trace, score
from traces.models import Trace

pytestmark = pytest.mark.django_db


def login(client: Client, tenant: Tenant) -> Client:
    assert client.login(username=tenant.user.username, password=PASSWORD)
    return client


def conversation(tenant: Tenant) -> list[Trace]:
    """Three turns of session s-1 written out of order, with a failing check on the second."""
    third = make_trace(
        tenant.project,
        3,
        seconds=120,
        session="s-1",
        user="u-1",
        cost="0.03",
        tokens=300,
        question="And for gift cards?",
        answer="Gift cards cannot be refunded.",
    )
    first = make_trace(
        tenant.project,
        1,
        seconds=0,
        session="s-1",
        user="u-1",
        cost="0.01",
        tokens=100,
        question="How long do refunds take?",
        answer="Refunds take 14 days.",
    )
    second = make_trace(tenant.project, 2, seconds=60, session="s-1", user="u-1", cost=None, tokens=200,
                        question="Even abroad?", answer="Abroad they take 3 days.", status="error")  # fmt: skip
    score(second, "grounding", passed=False, value=0.1)
    score(first, "grounding", passed=True, value=0.95)
    return [first, second, third]


def test_session_page_shows_the_conversation_turn_by_turn_with_totals(
    client: Client, tenant: Tenant, django_assert_max_num_queries: Any
) -> None:
    first, second, third = conversation(tenant)
    make_trace(tenant.project, 9, session="s-2", question="unrelated question")
    login(client, tenant)
    with django_assert_max_num_queries(14):
        response = client.get("/p/acme/session/", {"id": "s-1"})
    assert response.status_code == 200
    html = response.content.decode()
    turns = re.findall(r'<li class="turn[^"]*" data-trace="([0-9a-f]+)"', html)
    assert turns == [first.trace_id, second.trace_id, third.trace_id]  # time order, not arrival order
    assert html.index("How long do refunds take?") < html.index("Refunds take 14 days.") < html.index("Even abroad?")
    assert "unrelated question" not in html
    assert "<dt>Turns</dt><dd>3" in html and "1 error" in html
    assert "<dt>Cost</dt><dd>$0.04" in html and "<dt>Tokens</dt><dd>600" in html
    assert "grounding ×1" in html
    turn_two = html[html.index(f'data-trace="{second.trace_id}"') :]
    turn_two = turn_two[: turn_two.index("</li>")]
    assert "score-chip fail" in turn_two and "$0" not in turn_two.split("turn-facts")[0]
    assert 'href="/p/acme/user/?id=u-1"' in html


def test_user_page_shows_their_traces_sessions_cost_and_failing_checks(
    client: Client, tenant: Tenant, django_assert_max_num_queries: Any
) -> None:
    conversation(tenant)
    make_trace(tenant.project, 4, seconds=300, session="s-9", user="u-1", cost="0.5", name="later-turn")
    make_trace(tenant.project, 5, seconds=400, user="u-1", name="no-session")
    make_trace(tenant.project, 6, seconds=500, session="s-9", user="u-2", name="someone-else")
    login(client, tenant)
    with django_assert_max_num_queries(14):
        html = client.get("/p/acme/user/", {"id": "u-1"}).content.decode()
    assert "<dt>Traces</dt><dd>5" in html and "<dt>Sessions</dt><dd>2" in html
    assert "<dt>Cost</dt><dd>$0.54" in html
    assert "grounding ×1" in html
    sessions = re.findall(
        r'href="/p/acme/session/\?id=([^"]+)"', html.split('id="user-sessions"')[1].split("</table>")[0]
    )
    assert sessions == ["s-9", "s-1"]  # newest first
    recent = html.split('id="user-traces"')[1]
    assert recent.index("no-session") < recent.index("later-turn") and "someone-else" not in html
    # The users list counts the same sessions as the user's page (a trace without one is not a session).
    listed = client.get("/p/acme/users/", {"range": ""}).content.decode()
    row = listed[listed.index('title="u-1"') :].split("</tr>")[0]
    assert re.findall(r'<td class="num">([^<]*)<', row)[:2] == ["5", "2"]


def test_sessions_and_users_lists_filter_and_sort(
    client: Client, tenant: Tenant, django_assert_max_num_queries: Any
) -> None:
    conversation(tenant)  # s-1: 3 turns, $0.04, 1 failing; user u-1
    big = [
        make_trace(tenant.project, 10 + n, seconds=200 + n, session="s-big", user="u-2", cost="0.001", service="other")
        for n in range(4)
    ]
    # An older evaluator version failed one of u-2's traces; the current version passes it: no failing trace.
    passed_now = big[0]
    scores_upsert([
        Score(project=tenant.project, trace=passed_now, key=f"grounding:v{version}", service=passed_now.service,
              trace_start=passed_now.start_time, name="grounding", value=value, passed=value > 0.5,
              evaluator="grounding", evaluator_version=version, source=ScoreSource.EVALUATOR)
        for version, value in ((1, 0.1), (2, 0.9))
    ])  # fmt: skip
    make_trace(tenant.project, 20, seconds=10, session="s-dear", user="u-3", cost="2")
    old = make_trace(tenant.project, 21, session="s-old", user="u-old", cost="1")
    Trace.objects.filter(pk=old.pk).update(start_time=old.start_time - timedelta(days=3))
    make_trace(tenant.project, 22, seconds=5)  # no session, no user: in neither list
    login(client, tenant)

    def keys(path: str, **params: str) -> list[str]:
        # the page's own, the list's, the shown rows' traces and their failing scores, the choice by failing traces
        with django_assert_max_num_queries(15):
            html = client.get(path, params).content.decode()
        return re.findall(r'<td class="key"><a href="[^"]+" title="([^"]+)"', html)

    assert keys("/p/acme/sessions/") == ["s-big", "s-1", "s-dear"]  # last seen; the 3-day-old one is out of 24 h
    assert keys("/p/acme/sessions/", sort="traces") == ["s-big", "s-1", "s-dear"]
    assert keys("/p/acme/sessions/", sort="cost") == ["s-dear", "s-1", "s-big"]
    assert keys("/p/acme/sessions/", sort="failing") == ["s-1", "s-big", "s-dear"]  # then the others by id
    assert keys("/p/acme/users/", sort="failing", range="") == ["u-1", "u-2", "u-3", "u-old"]
    assert keys("/p/acme/sessions/", service="other") == ["s-big"]
    assert keys("/p/acme/sessions/", range="7d", sort="cost") == ["s-dear", "s-old", "s-1", "s-big"]
    assert keys("/p/acme/users/", sort="cost") == ["u-3", "u-1", "u-2"]
    assert keys("/p/acme/users/", range="", sort="traces") == ["u-2", "u-1", "u-3", "u-old"]
    html = client.get("/p/acme/users/", {"sort": "cost"}).content.decode()
    row = html[html.index('title="u-1"') :].split("</tr>")[0]
    assert re.findall(r'<td class="num">([^<]*)<', row)[:4] == ["3", "1", "600", "$0.04"]

    def failing(path: str, key: str, **params: str) -> str:
        html = client.get(path, params).content.decode()
        cells = html[html.index(f'title="{key}"') :].split("</tr>")[0].split("<td")
        return re.sub(r"<[^>]+>", "", "<td" + cells[-1]).strip()

    assert failing("/p/acme/users/", "u-1") == failing("/p/acme/sessions/", "s-1") == "1"
    assert failing("/p/acme/users/", "u-2") == failing("/p/acme/sessions/", "s-big") == "0"
    assert failing("/p/acme/users/", "u-1", range="") == "1"  # all time: no range to bound the scores by
    html = client.get("/p/acme/sessions/", {"sort": "loudest", "since": "yesterday"}).content.decode()
    assert "Select a valid choice" in html and "Enter a valid date/time" in html


def test_another_tenants_session_and_user_are_not_found(client: Client, tenant: Tenant, other_tenant: Tenant) -> None:
    theirs = make_trace(
        other_tenant.project, 1, session="shared-id", user="shared-user", question="their secret question"
    )
    score(theirs, "grounding", passed=False, value=0.0)
    login(client, tenant)
    assert client.get("/p/acme/session/", {"id": "shared-id"}).status_code == 404
    assert client.get("/p/acme/user/", {"id": "shared-user"}).status_code == 404
    assert client.get("/p/acme/session/").status_code == 404
    assert client.get("/p/globex/session/", {"id": "shared-id"}).status_code == 404
    for path in ("/p/acme/sessions/", "/p/acme/users/"):
        html = client.get(path, {"range": ""}).content.decode()
        assert "shared-" not in html
    make_trace(tenant.project, 2, session="shared-id", user="shared-user", question="our question")
    html = client.get("/p/acme/session/", {"id": "shared-id"}).content.decode()
    assert "our question" in html and "their secret question" not in html
    for page in (html, client.get("/p/acme/user/", {"id": "shared-user"}).content.decode()):
        failing = page.split("<dt>Failing checks</dt>")[1].split("</dd>")[0]
        assert "grounding" not in failing and "none" in failing  # their failing score is not ours


def test_session_and_user_text_is_escaped(client: Client, tenant: Tenant) -> None:
    evil = '<script>alert(1)</script><img src=x onerror="alert(2)">'
    trace = make_trace(tenant.project, 1, session=evil, user=evil, name=evil, question=evil, answer=evil)
    score(trace, "grounding", passed=False, value=0.0)
    login(client, tenant)
    pages = [("/p/acme/session/", {"id": evil}), ("/p/acme/user/", {"id": evil}),
             ("/p/acme/sessions/", {}), ("/p/acme/users/", {})]  # fmt: skip
    for path, params in pages:
        response = client.get(path, params)
        html = response.content.decode()
        assert response.status_code == 200, path
        assert "<script>alert(1)" not in html and "<img src=x" not in html, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, path


def test_trace_pages_link_sessions_and_users(client: Client, tenant: Tenant) -> None:
    trace = make_trace(tenant.project, 1, session="chat/42?x=1", user="ana@example.org")
    login(client, tenant)
    html = client.get(f"/p/acme/traces/{trace.trace_id}/").content.decode()
    assert 'href="/p/acme/session/?id=chat/42%3Fx%3D1"' in html and 'href="/p/acme/user/?id=ana%40example.org"' in html
    assert client.get("/p/acme/session/", {"id": "chat/42?x=1"}).status_code == 200
    nav = client.get("/p/acme/traces/").content.decode()
    assert 'href="/p/acme/sessions/"' in nav and 'href="/p/acme/users/"' in nav


@pytest.mark.postgres_only("the covering index (traces.0016) is PostgreSQL's")
@pytest.mark.parametrize("by", ["session_id", "user_id"])
def test_the_lists_group_only_columns_the_covering_index_holds(tenant: Tenant, by: str) -> None:
    """The grouping reads only what traces.0016's index holds, so PostgreSQL can answer it from the index alone (a
    week at 10M spans: 620 ms from the rows, 220 from the index). A column added to the grouping (or a filter) that
    the index lacks breaks this."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from front.selectors import GroupFilters, group_list

    conversation(tenant)
    since = Trace.objects.order_by("start_time").values_list("start_time", flat=True)[0] - timedelta(days=7)
    filters = GroupFilters(service="bot", environment="production", since=since, until=since + timedelta(days=30))
    with CaptureQueriesContext(connection) as queries:
        group_list(project=tenant.project, by=by, filters=filters, sort="cost")
    (grouping,) = [q["sql"] for q in queries.captured_queries if "GROUP BY" in q["sql"] and "SUM(" in q["sql"]]
    read = set(re.findall(r'"traces_trace"\."(\w+)"', grouping))
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_indexdef('trace_groups_idx'::regclass)")
        definition = cursor.fetchone()[0]
    held = set(re.findall(r"\w+", definition.split(" USING ")[1]))
    assert {"project_id", "start_time", by, "cost", "service", "environment"} <= read
    assert read <= held, f"{sorted(read - held)} not in {definition}"
    # The shown rows' failing counts read their traces' scores by id, the ids given at run time (no planning of a
    # constant array of thousands: 4.7 -> 0.4 ms at one million spans, docs/benchmarks.md §17).
    (failing,) = [q["sql"] for q in queries.captured_queries if '"evals_score"' in q["sql"]]
    assert '"evals_score"."trace_id" = ANY(ARRAY(SELECT unnest(' in failing, failing
