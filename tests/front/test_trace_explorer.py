"""Trace explorer: sorting with keyset pages, the bounded count, the column picker, saved views, score chips and
the bulk actions on selected traces; every read scoped to the project."""

from __future__ import annotations

import random
import re
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connections
from django.template.loader import render_to_string
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.models import Role
from accounts.services import membership_set, user_create
from evals.models import Dataset, DatasetItem, Score, ScoreSource
from evals.services import ExternalScore, score_record, scores_upsert
from front.selectors import InvalidCursor, TraceFilters, TraceSort, trace_count, trace_page
from tests.conftest import PASSWORD, Tenant, make_tenant
from tests.explorer_data import T0, login, make_trace, score
from tests.scoring_data import rag_spans, send
from traces.models import ListPreference, SavedView, Trace

pytestmark = pytest.mark.django_db


def walk(tenant: Tenant, sort: TraceSort, filters: TraceFilters | None = None, limit: int = 4) -> list[int]:
    """Every page of the list by following next cursors: the trace pks in the order shown."""
    seen: list[int] = []
    cursor = ""
    while True:
        page = trace_page(
            project=tenant.project, filters=filters or TraceFilters(), cursor=cursor, limit=limit, sort=sort
        )
        seen.extend(t.pk for t in page.items)
        if not page.next_cursor:
            return seen
        cursor = page.next_cursor


def test_every_sort_pages_through_all_traces_once_in_order(tenant: Tenant, other_tenant: Tenant) -> None:
    rng = random.Random(7)
    traces = [
        make_trace(
            tenant.project,
            n,
            seconds=rng.choice([0, 1, 2, 3]),  # many ties: the id must break them across page boundaries
            duration_ms=rng.choice([50.0, 120.5, 120.5, 900.0]),
            cost=rng.choice([None, "0", "0.0012", "0.0012", "0.5"]),
            tokens=rng.choice([0, 10, 10, 2000]),
        )
        for n in range(23)
    ]
    make_trace(other_tenant.project, 99, duration_ms=5000.0, cost="9", tokens=10**6)  # never listed
    for i, trace in enumerate(traces[:15]):
        score(trace, "grounding", passed=i % 3 != 0, value=round(i % 5 / 4, 2))
    keys: dict[str, Any] = {
        "time": lambda t: t.start_time,
        "latency": lambda t: t.duration_ms,
        "cost": lambda t: t.cost if t.cost is not None else Decimal(0),
        "tokens": lambda t: t.total_tokens,
    }
    for key, value in keys.items():
        for descending in (True, False):
            expected = [t.pk for t in sorted(traces, key=lambda t: (value(t), t.pk), reverse=descending)]
            assert walk(tenant, TraceSort(key, descending)) == expected, (key, descending)
    grounding = {t.pk: round(i % 5 / 4, 2) for i, t in enumerate(traces[:15])}
    for descending in (True, False):
        expected = sorted(grounding, key=lambda pk: (grounding[pk], pk), reverse=descending)
        assert walk(tenant, TraceSort("score", descending), TraceFilters(score="grounding")) == expected


def test_a_rare_word_pages_through_its_traces_in_order_and_leaves_the_settings_alone(
    client: Client, tenant: Tenant, other_tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(3)
    traces = [make_trace(tenant.project, n, seconds=rng.choice([0, 1, 2]), duration_ms=rng.choice([5.0, 50.0]))
              for n in range(15)]  # fmt: skip
    rare = [t for n, t in enumerate(traces) if n % 3 == 0]
    Trace.objects.filter(pk__in=[t.pk for t in rare]).update(search_text="customer asks about a CHARGEBACK fee")
    Trace.objects.filter(pk__in=[t.pk for t in traces if t not in rare]).update(search_text="refund policy")
    graded = [t.pk for t in rare[:3]]
    for trace in rare[:3]:
        score(trace, "grounding", passed=True, value=0.9)
    elsewhere = make_trace(other_tenant.project, 90)
    Trace.objects.filter(pk=elsewhere.pk).update(search_text="chargeback")  # another project's: never listed
    by_time = [t.pk for t in sorted(rare, key=lambda t: (t.start_time, t.pk), reverse=True)]
    by_latency = [t.pk for t in sorted(rare, key=lambda t: (t.duration_ms, t.pk))]
    search = TraceFilters(text="chargeback")
    connection = connections[Trace.objects.db]
    settings_before = _settings(connection)
    with CaptureQueriesContext(connection) as queries:
        assert walk(tenant, TraceSort("time"), search, limit=2) == by_time
        assert walk(tenant, TraceSort("latency", descending=False), search, limit=2) == by_latency
    # PostgreSQL reads the few matches through the trigram index (not the time index), for those queries only.
    assert any("enable_indexscan" in q["sql"] for q in queries.captured_queries) == (connection.vendor == "postgresql")
    assert _settings(connection) == settings_before
    # With a score filter (its subqueries need the index scans), past FEW_TEXT_MATCHES, or when the caller's count
    # says so: the planner's own choice, the same pages.
    with CaptureQueriesContext(connection) as queries:
        scored = TraceFilters(text="chargeback", score="grounding")
        assert walk(tenant, TraceSort("time"), scored, limit=2) == [pk for pk in by_time if pk in graded]
    assert not any("enable_indexscan" in q["sql"] for q in queries.captured_queries)
    monkeypatch.setattr("front.selectors.FEW_TEXT_MATCHES", 2)
    with CaptureQueriesContext(connection) as queries:
        assert walk(tenant, TraceSort("time"), search, limit=2) == by_time
        page = trace_page(project=tenant.project, filters=search, few=False)
        assert [t.pk for t in page.items] == by_time
    assert not any("enable_indexscan" in q["sql"] for q in queries.captured_queries)
    # The list page counts a text search's matches first, tells the page what it found and shows that number at
    # once (it does not ask for it again); more than FEW_TEXT_MATCHES are counted afterwards, like any list.
    login(client, tenant)
    assert listed_count(client, {"q": "chargeback"}) == "5 traces"
    monkeypatch.setattr("front.selectors.FEW_TEXT_MATCHES", 2000)
    with CaptureQueriesContext(connection) as queries:
        html = client.get("/p/acme/traces/", {"q": "chargeback"}).content.decode()
    assert re.search(r'id="trace-count">\s*5 traces', html)
    counts = [q["sql"] for q in queries.captured_queries if "COUNT(*)" in q["sql"] and "traces_trace" in q["sql"]]
    assert len(counts) == 1, counts
    # Counted to no match: the page says so and does not search the traces a second time.
    with CaptureQueriesContext(connection) as queries:
        html = client.get("/p/acme/traces/", {"q": "chargeback", "service": "elsewhere"}).content.decode()
    assert re.search(r'id="trace-count">\s*0 traces', html)
    searches = [q["sql"] for q in queries.captured_queries if "search_text" in q["sql"]]
    assert len(searches) == 1 and "COUNT(*)" in searches[0], searches


@pytest.mark.postgres_only("the trigram index is PostgreSQL's; SQLite always walks")
def test_many_matches_spread_thin_are_read_through_the_trigram_index(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More matches than FEW_TEXT_MATCHES: read through the trigram index when the newest traces hardly match (a
    walk would test most of the range), walked when they match often; the same pages either way."""
    traces = [make_trace(tenant.project, n, seconds=n) for n in range(12)]
    Trace.objects.filter(pk__in=[t.pk for t in traces]).update(search_text="refund policy")
    monkeypatch.setattr("front.selectors.FEW_TEXT_MATCHES", 2)
    monkeypatch.setattr("front.selectors.SPARSE_PROBE", 6)
    monkeypatch.setattr("front.selectors.SPARSE_HITS", 2)
    search = TraceFilters(text="chargeback")
    connection = connections[Trace.objects.db]

    def through_trigrams(matching: list[Trace]) -> bool:
        Trace.objects.filter(pk__in=[t.pk for t in traces]).update(search_text="refund policy")
        Trace.objects.filter(pk__in=[t.pk for t in matching]).update(search_text="a CHARGEBACK fee")
        expected = [t.pk for t in sorted(matching, key=lambda t: (t.start_time, t.pk), reverse=True)]
        with CaptureQueriesContext(connection) as queries:
            assert walk(tenant, TraceSort("time"), search, limit=2) == expected
            assert [t.pk for t in trace_page(project=tenant.project, filters=search, few=False).items] == expected
        return any("enable_indexscan" in q["sql"] for q in queries.captured_queries)

    assert through_trigrams(traces[:4])  # the oldest four: none among the newest six
    assert through_trigrams(traces[:5] + traces[-1:])  # one among the newest six: still fewer than SPARSE_HITS
    assert not through_trigrams(traces[:3] + traces[-2:])  # two among the newest six: walked
    monkeypatch.setattr("front.selectors.SPARSE_PROBE", 13)  # fewer traces than the probe: the range is walked whole
    assert not through_trigrams(traces[:4])


def _settings(connection: Any) -> tuple[str, ...]:
    if connection.vendor != "postgresql":
        return ()
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('enable_indexscan'), current_setting('statement_timeout')")
        return tuple(cursor.fetchone())


# How a sort by score finds its page: ranking every trace of the other filters when they are few, walking the score's
# values in order (in one batch or several), or ranking the newest traces once the walk gives up. Every way gives
# the same order.
SCORE_PATHS = {
    "ranking every trace": {},
    "walk": {"SCORE_RANK_ALL": 0},
    "walk in batches of two": {"SCORE_RANK_ALL": 0, "SCORE_WALK_BATCH": 2},
    "ranking the newest": {"SCORE_RANK_ALL": 0, "SCORE_WALK_BATCH": 1, "SCORE_WALK_ROWS": 1},
}


@pytest.mark.parametrize("path", SCORE_PATHS)
def test_a_sort_by_score_ranks_traces_by_their_lowest_current_value(
    path: str, tenant: Tenant, other_tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, setting in SCORE_PATHS[path].items():
        monkeypatch.setattr(f"front.selectors.{name}", setting)
    traces = [make_trace(tenant.project, n, seconds=n, service="bot" if n % 4 else "rare") for n in range(9)]
    values = [0.5, 0.1, 0.9, None, 0.3, 0.7, 0.2, 0.8, 0.3]  # 4 and 8 tie: the id decides
    for trace, value in zip(traces, values, strict=True):
        score(trace, "grounding", passed=value is not None and value >= 0.5, value=value)
    # A second current value, lower: the trace ranks by it. A label-only score has no place in the order (trace 3).
    score_record(score=ExternalScore(trace=traces[7], span=None, name="grounding", value=0.05, label="",
                                     passed=False, comment="", external_id="second"))  # fmt: skip
    # An evaluator's rows: its older version said 0.01 and is superseded; the current one (0.95) is not the lowest.
    for version, said in ((2, 0.95), (1, 0.01)):  # the old one lands last
        scores_upsert([Score(project=tenant.project, trace=traces[2], key=f"eval:{version}", service="bot",
                             trace_start=traces[2].start_time, name="grounding", value=said, passed=said >= 0.5,
                             evaluator="grounding", evaluator_version=version, source=ScoreSource.EVALUATOR)])  # fmt: skip
    score(make_trace(other_tenant.project, 50, seconds=20), "grounding", passed=False, value=0.0)  # never listed
    lowest = [0.5, 0.1, 0.9, None, 0.3, 0.7, 0.2, 0.05, 0.3]
    ranked = {t.pk: v for t, v in zip(traces, lowest, strict=True) if v is not None}
    search = TraceFilters(score="grounding")
    for descending in (True, False):
        expected = sorted(ranked, key=lambda pk: (ranked[pk], pk), reverse=descending)
        assert walk(tenant, TraceSort("score", descending), search, limit=2) == expected, descending
        assert walk(tenant, TraceSort("score", descending), search, limit=20) == expected, descending
    page = trace_page(project=tenant.project, filters=search, sort=TraceSort("score", False))
    shown = [(t.pk, getattr(t, "score_sort", None)) for t in page.items][:2]
    assert shown == [(traces[7].pk, 0.05), (traces[1].pk, 0.1)]
    assert page.ranked_newest is None
    # With a failing check: only the traces failing it, still by value; with another filter, only its traces.
    failing = TraceFilters(score="grounding", failing="grounding")
    assert walk(tenant, TraceSort("score", False), failing) == [traces[i].pk for i in (7, 1, 6, 4, 8)]
    rare = TraceFilters(score="grounding", service="rare")
    assert walk(tenant, TraceSort("score", True), rare, limit=1) == [traces[i].pk for i in (0, 8, 4)]


def test_a_sort_by_score_that_ranks_the_newest_traces_says_so(
    client: Client, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    traces = [make_trace(tenant.project, n, seconds=n) for n in range(8)]  # the newest last
    values = [0.5, 0.1, 0.9, None, 0.3, 0.7, 0.2, 0.8]
    for trace, value in zip(traces, values, strict=True):
        score(trace, "grounding", passed=value is not None and value >= 0.5, value=value)
    search = TraceFilters(score="grounding")
    # The walk gives up after one row: only the newest SCORE_RANK_BOUND traces are ranked, and the list page says so.
    monkeypatch.setattr("front.selectors.SCORE_RANK_ALL", 0)
    monkeypatch.setattr("front.selectors.SCORE_WALK_BATCH", 1)
    monkeypatch.setattr("front.selectors.SCORE_WALK_ROWS", 1)
    monkeypatch.setattr("front.selectors.SCORE_RANK_BOUND", 4)
    assert walk(tenant, TraceSort("score", False), search) == [traces[i].pk for i in (6, 4, 5, 7)]
    login(client, tenant)
    html = client.get("/p/acme/traces/", {"score": "grounding", "sort": "score"}).content.decode()
    assert "ranked by grounding: the newest 4" in html
    html = client.get("/p/acme/traces/", {"score": "grounding", "sort": "-time"}).content.decode()
    assert "ranked-bound" not in html
    # What counts is the traces ranked, not those with the score: 7 scored of 8 newest, a bound of 7 leaves one out.
    monkeypatch.setattr("front.selectors.SCORE_RANK_BOUND", 7)
    assert (
        "ranked by grounding: the newest 7"
        in client.get("/p/acme/traces/", {"score": "grounding", "sort": "score"}).content.decode()
    )
    monkeypatch.setattr("front.selectors.SCORE_RANK_BOUND", 9)
    assert "ranked-bound" not in client.get("/p/acme/traces/", {"score": "grounding", "sort": "score"}).content.decode()
    # A walk that finds its page ranks every trace: no note.
    monkeypatch.setattr("front.selectors.SCORE_WALK_ROWS", 100)
    monkeypatch.setattr("front.selectors.SCORE_RANK_BOUND", 4)
    assert "ranked-bound" not in client.get("/p/acme/traces/", {"score": "grounding", "sort": "score"}).content.decode()


def test_a_cursor_works_only_for_its_own_sort(client: Client, tenant: Tenant) -> None:
    for n in range(6):
        make_trace(tenant.project, n, seconds=n, duration_ms=10.0 * n)
    page = trace_page(project=tenant.project, filters=TraceFilters(), limit=2, sort=TraceSort("latency"))
    assert page.next_cursor
    with pytest.raises(InvalidCursor, match="another sort order"):
        trace_page(project=tenant.project, filters=TraceFilters(), cursor=page.next_cursor, sort=TraceSort("cost"))
    login(client, tenant)
    html = client.get("/p/acme/traces/", {"sort": "-cost", "cursor": page.next_cursor}).content.decode()
    assert "belongs to another sort order" in html
    for bad in ({"sort": "colour"}, {"sort": "-score"}):
        response = client.get("/p/acme/traces/", bad)
        assert response.status_code == 200
        assert "Select a valid choice" in response.content.decode() or "needs a score" in response.content.decode()
    assert "Sorting by score needs a score" in client.get("/p/acme/traces/", {"sort": "score"}).content.decode()


def listed_count(client: Client, query: dict[str, str]) -> str:
    """What the list page's count says once its script has asked for it: the page names the count's URL (and shows
    no number of its own), the URL answers with the words shown."""
    html = client.get("/p/acme/traces/", query).content.decode()
    found = re.search(r'id="trace-count" data-count-url="([^"]+)">', html)
    assert found is not None, html[html.find("trace-count") - 50 :][:300]
    response = client.get(found.group(1).replace("&amp;", "&"))
    assert response.status_code == 200
    return re.sub(r"<[^>]+>", "", response.content.decode()).strip()


def test_count_is_exact_up_to_the_bound_then_says_more(client: Client, tenant: Tenant, other_tenant: Tenant) -> None:
    for n in range(7):
        make_trace(tenant.project, n, seconds=n, service="bot" if n < 5 else "other")
    make_trace(other_tenant.project, 50)
    assert trace_count(project=tenant.project, filters=TraceFilters()) == (7, False)
    assert trace_count(project=tenant.project, filters=TraceFilters(service="bot")) == (5, False)
    assert trace_count(project=tenant.project, filters=TraceFilters(), bound=5) == (5, True)
    assert trace_count(project=tenant.project, filters=TraceFilters(), bound=7) == (7, False)
    login(client, tenant)
    assert listed_count(client, {}) == "7 traces"
    assert listed_count(client, {"service": "other"}) == "2 traces"
    assert listed_count(client, {"service": "other", "cursor": "ignored"}) == "2 traces"  # one count for every page
    assert render_to_string("traces/_count.html", {"count": (10_000, True)}) == "10,000+ traces"
    # Filters the form refuses: a 400 that says so, not a count of something else.
    response = client.get("/p/acme/traces/count/", {"min_duration_ms": "fast"})
    assert response.status_code == 400 and "Fix the filters" in response.content.decode()


def test_the_page_sorts_by_header_links_and_stays_within_a_query_budget(
    client: Client, tenant: Tenant, django_assert_max_num_queries: Any
) -> None:
    cheap = make_trace(tenant.project, 1, seconds=1, cost="0.001", name="cheap-one")
    dear = make_trace(tenant.project, 2, seconds=0, cost="0.9", name="dear-one")
    score(cheap, "grounding", passed=False, value=0.2)
    score(cheap, "toxicity", passed=True, value=0.0)
    score(dear, "grounding", passed=True, value=0.9)
    login(client, tenant)
    # Session, user, membership, list, scores, views, facets (4), columns, datasets, project switcher; the count
    # is asked for afterwards.
    with django_assert_max_num_queries(16):
        html = client.get("/p/acme/traces/", {"sort": "-cost"}).content.decode()
    assert html.index("dear-one") < html.index("cheap-one")
    link = re.search(r'<a class="sort active" href="\?([^"]+)"[^>]*>Cost', html)
    assert link is not None and "sort=cost" in link.group(1)  # a second click: smallest first
    html = client.get("/p/acme/traces/?" + link.group(1).replace("&amp;", "&")).content.decode()
    assert html.index("cheap-one") < html.index("dear-one")
    html = client.get("/p/acme/traces/", {"score": "grounding", "sort": "score"}).content.decode()
    assert html.index("cheap-one") < html.index("dear-one")
    assert 'class="num score-value">0.2<' in html
    # Score chips: the failing one first, pass and fail told apart, each a filter link.
    row = html[html.index('data-trace="' + cheap.trace_id) :]
    row = row[: row.index("</tr>")]
    assert row.index("score-chip fail") < row.index("score-chip pass")
    assert "/p/acme/traces/?failing=grounding" in row and "/p/acme/traces/?score=toxicity" in row
    # The passing ones fold into one "✓ N" chip that unfolds into theirs: one line per trace; failures stay in view.
    folded = row[row.index('<details class="passed-checks">') :]
    assert re.search(r">✓ 1</summary>", folded) and "?score=toxicity" in folded and "failing=" not in folded


def test_column_choice_is_remembered_per_user_and_project(client: Client, tenant: Tenant, other_tenant: Tenant) -> None:
    make_trace(tenant.project, 1, question="what is the refund window", session="s-1", user="u-1")
    login(client, tenant)
    html = client.get("/p/acme/traces/").content.decode()
    assert "what is the refund window" in html and 'class="session"' not in html  # the default set
    response = client.post("/p/acme/traces/columns/", {"column": ["session", "user", "cost", "bogus"]})
    assert response.status_code == 302
    assert ListPreference.objects.get(user=tenant.user, project=tenant.project).columns == ["cost", "session", "user"]
    html = client.get("/p/acme/traces/").content.decode()
    assert "what is the refund window" not in html
    assert 'href="/p/acme/session/?id=s-1"' in html and 'href="/p/acme/user/?id=u-1"' in html
    response = client.post("/p/acme/traces/columns/", {"column": ["io"]}, headers={"X-Requested-With": "fetch"})
    assert response.status_code == 204
    # Another member of the project keeps the default columns; another project's page is not reachable.
    carol = user_create(username="carol", password=PASSWORD)
    membership_set(project=tenant.project, user=carol, role=Role.VIEWER)
    other = Client()
    assert other.login(username="carol", password=PASSWORD)
    assert 'class="num cost"' in other.get("/p/acme/traces/").content.decode()
    assert client.post("/p/globex/traces/columns/", {"column": ["io"]}).status_code == 404
    assert client.get("/p/acme/traces/columns/").status_code == 405


def test_saved_views_editors_create_and_delete_viewers_use(
    client: Client, tenant: Tenant, other_tenant: Tenant
) -> None:
    make_trace(tenant.project, 1, status="error", name="broken-one")
    make_trace(tenant.project, 2, name="fine-one")
    login(client, tenant)
    query = "status=error&sort=-latency&cursor=abc"
    response = client.post("/p/acme/traces/views/", {"name": "Slow errors <b>", "query": query})
    assert response.status_code == 302 and "cursor" not in response["Location"]
    view = SavedView.objects.get(project=tenant.project)
    assert (view.name, view.query) == ("Slow errors <b>", "status=error&sort=-latency")
    html = client.get("/p/acme/traces/").content.decode()
    assert 'href="?status=error&amp;sort=-latency"' in html and "Slow errors &lt;b&gt;" in html
    # A taken name, empty filters and invalid filters are refused with a message.
    for data, message in (
        ({"name": "Slow errors <b>", "query": "status=ok"}, "exists already"),
        ({"name": "nothing", "query": ""}, "Set some filters"),
        ({"name": "bad", "query": "min_duration_ms=-1"}, "Fix the filters"),
    ):
        html = client.post("/p/acme/traces/views/", data, follow=True).content.decode()
        assert message in html
    assert SavedView.objects.count() == 1
    viewer = user_create(username="vic", password=PASSWORD)
    membership_set(project=tenant.project, user=viewer, role=Role.VIEWER)
    as_viewer = Client()
    assert as_viewer.login(username="vic", password=PASSWORD)
    html = as_viewer.get("/p/acme/traces/").content.decode()
    assert "Slow errors &lt;b&gt;" in html and "Save view" not in html
    assert as_viewer.post("/p/acme/traces/views/", {"name": "x", "query": "status=ok"}).status_code == 403
    assert as_viewer.post(f"/p/acme/traces/views/{view.pk}/delete/").status_code == 403
    # Another project's admin cannot delete it; its own admin can.
    globex = login(Client(), other_tenant)
    assert globex.post(f"/p/globex/traces/views/{view.pk}/delete/").status_code == 404
    assert client.post(f"/p/acme/traces/views/{view.pk}/delete/").status_code == 302
    assert not SavedView.objects.exists()


def test_selected_traces_go_to_a_dataset_or_get_one_annotation(
    client: Client, tenant: Tenant, other_tenant: Tenant
) -> None:
    send(client, tenant, rag_spans("Refunds take 14 days.", question="How long do refunds take?"))
    send(client, tenant, rag_spans("Orders ship in 2 days.", question="When does my order ship?"))
    send(client, other_tenant, rag_spans("Secret answer.", question="Other tenant's question"))
    mine = list(Trace.objects.filter(project=tenant.project).order_by("start_time"))
    theirs = Trace.objects.get(project=other_tenant.project)
    no_question = make_trace(tenant.project, 77, name="no-spans")  # nothing to ask: skipped, and named
    dataset = Dataset.objects.create(project=tenant.project, name="golden")
    foreign = Dataset.objects.create(project=other_tenant.project, name="theirs")
    login(client, tenant)
    picked = [t.trace_id for t in mine] + [theirs.trace_id]
    html = client.post(
        "/p/acme/traces/bulk/",
        {"action": "dataset", "dataset": dataset.pk, "trace": [*picked, no_question.trace_id]},
        follow=True,
    ).content.decode()
    assert "Added 2 of 3 traces to golden" in html and f"Skipped {no_question.trace_id}" in html
    DatasetItem.objects.all().delete()
    html = client.post(
        "/p/acme/traces/bulk/", {"action": "dataset", "dataset": dataset.pk, "trace": picked, "query": "service=x"},
        follow=True,
    ).content.decode()  # fmt: skip
    assert "Added 2 of 2 traces to golden" in html
    items = list(DatasetItem.objects.filter(dataset=dataset).order_by("pk"))
    assert [i.source_trace_id for i in items] == [t.trace_id for t in mine]
    assert [i.input for i in items] == ["How long do refunds take?", "When does my order ship?"]
    assert items[0].expected == "Refunds take 14 days." and items[0].context
    html = client.post(
        "/p/acme/traces/bulk/", {"action": "dataset", "dataset": foreign.pk, "trace": picked}, follow=True
    ).content.decode()
    assert "Choose a dataset" in html and not foreign.items.exists()
    response = client.post(
        "/p/acme/traces/bulk/",
        {"action": "annotate", "verdict": "down", "label": "wrong", "comment": "c", "trace": picked, "query": "q=x"},
    )
    assert response.status_code == 302 and response["Location"] == "/p/acme/traces/?q=x"
    human = Score.objects.current().filter(name="human_feedback", source="human")
    assert sorted(human.values_list("trace_id", flat=True)) == sorted(t.pk for t in mine)
    assert all(s.passed is False and s.label == "wrong" and s.author == tenant.user for s in human)
    for data, message in (
        ({"action": "annotate", "trace": picked}, "Give a thumbs up or down"),
        ({"action": "dataset", "dataset": dataset.pk}, "Select one or more traces"),
        ({"action": "launch", "trace": picked}, "Choose what to do"),
        ({"action": "annotate", "verdict": "up", "trace": [theirs.trace_id]}, "Select one or more traces"),
    ):
        assert message in client.post("/p/acme/traces/bulk/", data, follow=True).content.decode()
    viewer = user_create(username="vic", password=PASSWORD)
    membership_set(project=tenant.project, user=viewer, role=Role.VIEWER)
    as_viewer = Client()
    assert as_viewer.login(username="vic", password=PASSWORD)
    assert (
        as_viewer.post("/p/acme/traces/bulk/", {"action": "annotate", "verdict": "up", "trace": picked}).status_code
        == 403
    )
    assert 'id="bulk"' not in as_viewer.get("/p/acme/traces/").content.decode()


def test_list_text_is_escaped_everywhere(client: Client, tenant: Tenant) -> None:
    evil = '<script>alert(1)</script><img src=x onerror="alert(2)">'
    trace = make_trace(tenant.project, 1, name=evil, question=evil, answer=evil, session=evil, user=evil)
    score(trace, evil[:90], passed=False, value=0.1)
    login(client, tenant)
    client.post("/p/acme/traces/columns/", {"column": ["session", "user", "scores", "io"]})
    client.post("/p/acme/traces/views/", {"name": evil[:100], "query": "q=" + evil})
    html = client.get("/p/acme/traces/").content.decode()
    assert "<script>alert(1)" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    # Make sure the rows rendered at all (an empty list would pass the checks above).
    assert f'data-trace="{trace.trace_id}"' in html and "score-chip fail" in html


def test_another_tenants_traces_are_never_counted_or_listed(client: Client, tenant: Tenant) -> None:
    other = make_tenant("initech", "ivan")
    make_trace(other.project, 1, name="their-trace")
    make_trace(tenant.project, 2, name="our-trace")
    login(client, tenant)
    html = client.get("/p/acme/traces/", {"sort": "-latency"}).content.decode()
    assert "our-trace" in html and "their-trace" not in html
    assert listed_count(client, {"sort": "-latency"}) == "1 trace"
    assert client.get("/p/initech/traces/count/").status_code in (403, 404)  # not a member there


@pytest.mark.postgres_only("the failing scores' index (evals.0013) is PostgreSQL's")
def test_the_failing_filter_reads_only_what_the_failing_scores_index_holds(tenant: Tenant) -> None:
    """The failing filter's score lookup reads only columns evals.0013's index holds, and only rows its predicate
    keeps, so PostgreSQL answers it from that small index alone (a week's count at 10M spans: 253 ms through the
    scores' trace index, 70-150 ms from this one). A column or condition the index lacks breaks this."""
    trace = make_trace(tenant.project, 1)
    score(trace, "grounding", passed=False, value=0.1)
    since = trace.start_time - timedelta(days=7)
    filters = TraceFilters(failing="grounding", since=since, until=trace.start_time + timedelta(hours=1))
    connection = connections["default"]
    with CaptureQueriesContext(connection) as queries:
        assert trace_count(project=tenant.project, filters=filters) == (1, False)
    (counted,) = [q["sql"] for q in queries.captured_queries if "EXISTS" in q["sql"]]
    lookup = counted[counted.index("EXISTS") :]
    read = set(re.findall(r'U0\."(\w+)"', lookup))
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_indexdef('score_failing_trace_idx'::regclass)")
        definition = cursor.fetchone()[0]
    columns, predicate = definition.split(" USING ")[1].split(" WHERE ")
    assert read == {"name", "passed", "superseded", "trace_id", "trace_start"}
    assert read - {"passed"} <= set(re.findall(r"\w+", columns)), definition
    assert predicate == "(NOT passed)" and 'NOT U0."passed"' in lookup


@pytest.mark.postgres_only("statement_timeout and table locks are PostgreSQL's")
def test_a_count_that_would_take_too_long_gives_up_and_leaves_no_timeout_behind(client: Client, tenant: Tenant) -> None:
    import psycopg
    from django.db import connection

    def statement_timeout() -> str:
        with connection.cursor() as cursor:
            cursor.execute("SHOW statement_timeout")
            return cursor.fetchone()[0]

    # Another session holds the table: the count waits, and gives up after its timeout instead of hanging. (First,
    # while this test's transaction holds no lock on the table that the LOCK would wait for.)
    settings = connection.settings_dict
    with psycopg.connect(
        host=settings["HOST"], port=settings["PORT"] or 5432, user=settings["USER"], dbname=settings["NAME"]
    ) as other:
        other.execute("SET lock_timeout = '5s'")
        other.execute("LOCK TABLE traces_trace IN ACCESS EXCLUSIVE MODE")
        before = statement_timeout()
        assert trace_count(project=tenant.project, filters=TraceFilters(), timeout_ms=200) is None
        assert statement_timeout() == before
        # The list's count request says so rather than waiting.
        login(client, tenant)
        response = client.get("/p/acme/traces/count/")
        assert response.status_code == 200 and "not counted" in response.content.decode()
        assert statement_timeout() == before
    make_trace(tenant.project, 1)
    assert trace_count(project=tenant.project, filters=TraceFilters()) == (1, False)
    assert statement_timeout() == before


@pytest.mark.django_db
def test_the_read_api_sorts_like_the_list(client: Client, tenant: Tenant) -> None:
    for n in range(8):
        make_trace(tenant.project, n, seconds=n, duration_ms=100.0 * (n % 5 + 1))
    items = client.get("/api/v1/traces?sort=-latency&limit=8", headers=tenant.bearer).json()["items"]
    durations = [item["duration_ms"] for item in items]
    assert len(durations) == 8 and durations == sorted(durations, reverse=True)


@pytest.mark.parametrize(
    "ages_in_days",
    [
        [0.05 * n for n in range(14)],  # more than a page in the last day
        [0.2, 0.5, 3, 3.5, 4, 5, 6, 20, 21, 22, 25],  # two in the last day, five more in its week, the rest older
        [12, 15, 29, 29.5, 29.9],  # only older ones
        [0.5, 8, 9, 10, 11],  # one in the last day, none in its week, the rest older
    ],
)
def test_a_model_filter_pages_newest_first_from_the_last_day_then_the_week(
    tenant: Tenant, ages_in_days: list[float]
) -> None:
    # The traces of one model at these ages among others' every half day; every page of four, newest first, and
    # from a cursor, the same as sorting every match.
    matching = [make_trace(tenant.project, n, seconds=-age * 86400 - 1) for n, age in enumerate(ages_in_days)]
    Trace.objects.filter(pk__in=[t.pk for t in matching]).update(model_names=["o3-pro"])
    for n in range(60):
        make_trace(tenant.project, 100 + n, seconds=-n * 43200 - 7)
    expected = [t.pk for t in sorted(matching, key=lambda t: (t.start_time, t.pk), reverse=True)]
    model = TraceFilters(model="o3-pro")
    assert walk(tenant, TraceSort("time"), model, limit=4) == expected
    # Up to T0: the first page from the last day's traces when they hold one (five: a page of four and the next).
    with CaptureQueriesContext(connections[Trace.objects.db]) as queries:
        first = trace_page(project=tenant.project, filters=replace(model, until=T0), limit=4)
    assert [t.pk for t in first.items] == expected[:4]
    pages = [q["sql"] for q in queries.captured_queries if "ORDER BY" in q["sql"] and "LIMIT 5" in q["sql"]]
    assert len(pages) == (1 if ages_in_days[4] < 1 else 2 if ages_in_days[4] < 7 else 3)
    assert walk(tenant, TraceSort("time"), replace(model, until=T0 - timedelta(days=4)), limit=4) == [
        pk for pk in expected if Trace.objects.get(pk=pk).start_time <= T0 - timedelta(days=4)
    ]
