"""Time partitions (sre4ai_web.lib.partitions): on PostgreSQL ingest makes the partition of a day that has none,
beat makes them ahead, retention drops an expired day whole and deletes shorter retentions in batches, the list
and service page queries scan only the partitions of their range, keyset paging crosses a partition boundary,
and a database with data in the unpartitioned layout is converted without losing a row. SQLite keeps plain
tables: the same ingest, paging and retention work there."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from importlib import import_module
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.models import DataRemoval, Project
from accounts.retention import retention_sweep
from accounts.services import project_retention_set
from evals.models import Score
from evals.services import ExternalScore, score_record
from front.selectors import TraceFilters, TraceSort, trace_page
from rollups.models import ScoreRollup, TrafficRollup
from rollups.services import dirty_process
from sre4ai_web.celery import app as celery_app
from sre4ai_web.lib.partitions import (
    RAW,
    counts_by_partition,
    floor,
    forget,
    is_partitioned,
    partition_name,
    partitions,
    partitions_ensure,
    partitions_upkeep,
    registered,
)
from tests.conftest import PASSWORD, SQLITE, Tenant
from tests.explorer_data import T0, make_trace
from traces.models import RetrievedDocument, Span, Trace

pytestmark = pytest.mark.django_db
NOW = datetime.now(UTC)
RAW_TABLES = ["traces_trace", "traces_span", "traces_retrieveddocument", "evals_score"]


def native_trace(n: int, start: datetime, service: str = "support-bot") -> dict[str, Any]:
    """A chain root, a retrieval of two documents and an LLM call: three spans."""

    def at(ms: int) -> str:
        return (start + timedelta(milliseconds=ms)).isoformat()

    return {
        "trace_id": f"{n:032x}", "service": service, "environment": "production", "name": "answer",
        "spans": [{
            "span_id": f"{n:015x}0", "name": "answer", "kind": "chain", "start_time": at(0), "end_time": at(900),
            "input": f"question {n}", "output": "Refunds take 14 days.",
            "children": [
                {"span_id": f"{n:015x}1", "name": "retrieve", "kind": "retriever", "start_time": at(5),
                 "end_time": at(60), "documents": [{"id": "kb-1", "content": "Refunds: 14 days."},
                                                    {"id": "kb-2", "content": "Shipping: 3 days."}]},
                {"span_id": f"{n:015x}2", "name": "chat", "kind": "llm", "model": "gpt-4o-mini", "start_time": at(70),
                 "end_time": at(800), "input_tokens": 100, "output_tokens": 20, "output": "Refunds take 14 days."},
            ],
        }],
    }  # fmt: skip


def ingest(tenant: Tenant, traces: list[dict[str, Any]]) -> None:
    response = Client().post("/api/v1/traces", data=json.dumps({"traces": traces}), content_type="application/json",
                             headers=tenant.bearer)  # fmt: skip
    assert response.status_code == 200, response.content
    assert not response.json()["rejected"], response.json()


def scored(project: Project) -> None:
    """An API score on each trace of the project (scores are partitioned by their trace's start)."""
    for trace in Trace.objects.filter(project=project):
        score_record(score=ExternalScore(trace=trace, span=None, name="helpful", value=1.0, label="", passed=True,
                                         comment="", external_id=""))  # fmt: skip


def day_name(table: str, moment: datetime) -> str:
    return partition_name(table, floor(moment, "day"), "day")


def retention(project: Project, raw_days: int) -> None:
    project_retention_set(project=project, raw_days=raw_days, aggregate_days=400)


def test_ingest_into_a_day_without_a_partition(tenant: Tenant) -> None:
    """A span 20 days old (accepted: the retention is 30 days) and one 20 hours ahead are stored; on PostgreSQL
    each in the partition of its own day, made at ingest, and nothing lands in the default partition."""
    old, future = NOW - timedelta(days=20), NOW + timedelta(hours=20)
    if not SQLITE:
        for table in RAW_TABLES[:3]:
            assert day_name(table, old) not in {p.name for p in partitions(table)}
    ingest(tenant, [native_trace(1, old), native_trace(2, future)])
    ingest(tenant, [native_trace(1, old)])  # re-sent: updated in place, never a second row
    with CaptureQueriesContext(connection) as queries:
        ingest(tenant, [native_trace(1, old)])
    # The process read the partitions once after making them; from then on it knows them: no catalog read.
    assert not [q["sql"] for q in queries.captured_queries if "pg_inherits" in q["sql"]]
    assert Trace.objects.filter(project=tenant.project).count() == 2
    assert Span.objects.filter(project=tenant.project).count() == 6
    assert RetrievedDocument.objects.filter(span__project=tenant.project).count() == 4
    if SQLITE:
        return
    for table, rows in (("traces_trace", 1), ("traces_span", 3), ("traces_retrieveddocument", 2)):
        counts = counts_by_partition(table)
        assert counts.get(day_name(table, old)) == rows, counts
        assert counts.get(day_name(table, future)) == rows, counts
        assert f"{table}_default" not in counts


@pytest.mark.postgres_only("partitions are PostgreSQL's")
def test_upkeep_makes_partitions_ahead_and_rehomes_the_default_partitions_rows(tenant: Tenant) -> None:
    entry = next(e for e in celery_app.conf.beat_schedule.values() if e["task"] == "accounts.tasks.partitions_upkeep")
    assert entry["options"]["headers"]["sre4ai_beat"]  # single-run like every beat task (sre4ai_web.beat)
    later = NOW + timedelta(days=40)
    # An ORM write of a day without a partition lands in the default partition…
    trace = make_trace(tenant.project, 1, seconds=(later - NOW).total_seconds() + 3 * 3600)
    assert counts_by_partition("traces_trace") == {"traces_trace_default": 1}
    created = partitions_upkeep(later)
    # …upkeep made the day before, that day and a week after it for every raw table, and months for rollups.
    for table in RAW_TABLES:
        names = {p.name for p in partitions(table)}
        for days in range(-1, 8):
            assert day_name(table, later + timedelta(days=days)) in names, (table, days)
    for table in ("rollups_trafficrollup", "rollups_scorerollup"):
        assert partition_name(table, floor(later, "month"), "month") in {p.name for p in partitions(table)}
    assert created >= 4 * 9
    # The trace caught by the default partition moved to its day's partition, with its id.
    assert counts_by_partition("traces_trace") == {day_name("traces_trace", trace.start_time): 1}
    assert Trace.objects.get(pk=trace.pk).trace_id == trace.trace_id
    assert partitions_upkeep(later) == 0  # a second run finds everything made


def test_retention_drops_expired_days_whole_and_deletes_shorter_retentions_in_batches(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    long_ago, recent = NOW - timedelta(days=40), NOW - timedelta(days=5)
    for project in (tenant.project, other_tenant.project):
        retention(project, 60)
    ingest(tenant, [native_trace(1, long_ago), native_trace(2, long_ago), native_trace(3, recent)])
    ingest(other_tenant, [native_trace(4, long_ago), native_trace(5, recent)])
    scored(tenant.project)
    scored(other_tenant.project)
    # The longest retention is now 30 days (tenant); other_tenant keeps only 3, shorter than the partitions' days.
    retention(tenant.project, 30)
    retention(other_tenant.project, 3)

    result = retention_sweep(now=NOW)

    assert result.finished
    assert sorted(Trace.objects.filter(project=tenant.project).values_list("trace_id", flat=True)) == [f"{3:032x}"]
    assert not Trace.objects.filter(project=other_tenant.project).exists()
    assert Span.objects.count() == 3 and RetrievedDocument.objects.count() == 2 and Score.objects.count() == 1
    removed = {(r.project_id, r.table): r.rows for r in DataRemoval.objects.all()}
    assert removed[(tenant.project.pk, "traces.Trace")] == 2
    assert removed[(tenant.project.pk, "traces.Span")] == 6
    assert removed[(tenant.project.pk, "traces.RetrievedDocument")] == 4
    assert removed[(tenant.project.pk, "evals.Score")] == 2
    assert removed[(other_tenant.project.pk, "traces.Trace")] == 2
    assert removed[(other_tenant.project.pk, "evals.Score")] == 2
    if SQLITE:
        return
    for table in RAW_TABLES:
        names = {p.name for p in partitions(table)}
        assert day_name(table, long_ago) not in names  # dropped whole
        assert day_name(table, recent) in names  # still holds tenant's rows (other_tenant's went in a batch)


@pytest.mark.postgres_only("partitions are PostgreSQL's")
def test_a_dropped_day_is_recorded_from_its_statistics_without_counting_its_rows(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    long_ago = (NOW - timedelta(days=40)).replace(hour=12)
    day = long_ago.replace(hour=0, minute=0, second=0, microsecond=0)
    for project in (tenant.project, other_tenant.project):
        retention(project, 60)
    ingest(tenant, [native_trace(n, long_ago + timedelta(minutes=n)) for n in range(1, 5)])
    scored(tenant.project)
    for project in (tenant.project, other_tenant.project):
        retention(project, 30)
    with CaptureQueriesContext(connection) as queries:
        retention_sweep(now=NOW)
    # One project in the day: its rows are the statistics' (ANALYZE's sample is the whole of these small partitions,
    # so the estimate is exact here), over the day's period; no partition is counted row by row.
    removed = {r.table: r for r in DataRemoval.objects.filter(project=tenant.project)}
    assert {t: (r.rows, r.estimated) for t, r in removed.items()} == {
        "traces.Trace": (4, True), "traces.Span": (12, True), "traces.RetrievedDocument": (8, True),
        "evals.Score": (4, True),
    }  # fmt: skip
    assert (removed["traces.Span"].oldest, removed["traces.Span"].newest) == (
        day,
        day + timedelta(days=1) - timedelta(microseconds=1),
    )
    assert not [q["sql"] for q in queries.captured_queries if "count(*)" in q["sql"]]
    # A project with a single trace that day is too rare for the statistics: its rows are counted, with their times.
    for project in (tenant.project, other_tenant.project):
        retention(project, 60)
    ingest(tenant, [native_trace(n, long_ago + timedelta(minutes=n)) for n in range(11, 15)])
    ingest(other_tenant, [native_trace(20, long_ago)])
    for project in (tenant.project, other_tenant.project):
        retention(project, 30)
    DataRemoval.objects.all().delete()
    retention_sweep(now=NOW)
    traces = {r.project_id: (r.rows, r.estimated, r.oldest) for r in DataRemoval.objects.filter(table="traces.Trace")}
    assert traces == {tenant.project.pk: (4, True, day), other_tenant.project.pk: (1, False, long_ago)}
    assert not Trace.objects.exists()


@pytest.mark.postgres_only("partition pruning is PostgreSQL's")
def test_list_and_service_page_queries_scan_only_the_partitions_of_their_range(tenant: Tenant) -> None:
    retention(tenant.project, 90)
    old = NOW - timedelta(days=65)  # another day and another month than the pages' last 24 hours
    ingest(tenant, [native_trace(1, old), native_trace(2, NOW - timedelta(hours=2))])
    scored(tenant.project)
    while dirty_process():
        pass
    assert TrafficRollup.objects.filter(bucket__lt=NOW - timedelta(days=60)).exists()
    assert ScoreRollup.objects.filter(bucket__lt=NOW - timedelta(days=60)).exists()
    old_partitions = {day_name(t, old) for t in RAW_TABLES} | {
        partition_name(t, floor(old, "month"), "month") for t in ("rollups_trafficrollup", "rollups_scorerollup")
    }
    client = Client()
    assert client.login(username=tenant.user.username, password=PASSWORD)
    slug = tenant.project.slug
    pages = {
        f"/p/{slug}/traces/?range=24h": "traces_trace_p",
        f"/p/{slug}/service/?name=support-bot&range=24h": "rollups_trafficrollup_p",
    }
    for url, partitioned in pages.items():
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
        assert response.status_code == 200
        plans = []
        for query in queries.captured_queries:
            sql = query["sql"]
            if sql.startswith("SELECT") and any(f'"{t}"' in sql for t in [*RAW_TABLES, "rollups_trafficrollup"]):
                with connection.cursor() as cursor:
                    cursor.execute(f"EXPLAIN {sql}")
                    plans.append((sql, " ".join(r[0] for r in cursor.fetchall())))
        assert any(partitioned in plan for _, plan in plans), url  # the page read its partitioned table…
        for sql, plan in plans:  # …and no query of it read the old day's or month's partitions
            assert not old_partitions & set(plan.split()), f"{url}\n{sql}\n{plan}"


def test_keyset_paging_crosses_a_partition_boundary(tenant: Tenant) -> None:
    midnight = floor(NOW, "day")
    if not SQLITE:
        partitions_ensure(RAW, [midnight - timedelta(hours=1), midnight])
    # Six traces in the 5 s before midnight and five from it, two at each second (ties broken by id).
    offsets = [-5, -5, -4, -4, -3, -3, 0, 0, 1, 1, 2]
    for n, offset in enumerate(offsets):
        make_trace(tenant.project, n, seconds=(midnight - T0).total_seconds() + offset)
    seen: list[int] = []
    cursor = ""
    while True:
        page = trace_page(project=tenant.project, filters=TraceFilters(), cursor=cursor, limit=3, sort=TraceSort())
        seen += [t.pk for t in page.items]
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    expected = sorted(Trace.objects.filter(project=tenant.project).values_list("start_time", "pk"), reverse=True)
    assert seen == [pk for _, pk in expected] and len(seen) == 11
    if not SQLITE:
        counts = counts_by_partition("traces_trace")
        assert counts[day_name("traces_trace", midnight)] == 5
        assert counts[day_name("traces_trace", midnight - timedelta(seconds=1))] == 6


def _unpartition() -> None:
    """Put the partitioned tables back in the layout of an installation from before partitioning: plain tables
    as Django creates them, with the trigram index of traces.0002, the models index of traces.0015, the lists'
    covering index of traces.0016 and the failing scores' index of evals.0013 (the conversion carries them over;
    later tests expect them)."""
    models = [Trace, Span, RetrievedDocument, Score, TrafficRollup, ScoreRollup]
    with connection.schema_editor() as editor:
        for model in models:
            editor.execute(f"DROP TABLE {model._meta.db_table} CASCADE")
            editor.create_model(model)
        editor.execute("CREATE INDEX trace_search_trgm ON traces_trace USING gin (UPPER(search_text) gin_trgm_ops)")
        editor.execute("CREATE INDEX trace_models_gin ON traces_trace USING gin (model_names jsonb_path_ops)")
        groups = import_module("traces.migrations.0016_trace_groups_index")
        editor.execute(f"CREATE INDEX {groups.NAME} ON traces_trace USING {groups.USING}")
        failing = import_module("evals.migrations.0013_score_failing_trace_index")
        editor.execute(f"CREATE INDEX {failing.NAME} ON evals_score USING {failing.USING}")
        # And the lz4 compression of traces.0006: the converted tables inherit it, and later tests expect it.
        import_module("traces.migrations.0006_lz4_compression")._set(editor, "lz4")
    forget()


@pytest.mark.postgres_only("the conversion is PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_a_database_with_unpartitioned_data_is_converted_without_losing_a_row(tenant: Tenant, settings: Any) -> None:
    _unpartition()
    try:
        assert not any(is_partitioned(t.table) for t in registered())
        retention(tenant.project, 90)
        ingest(tenant, [native_trace(n, NOW - timedelta(days=n, hours=1)) for n in range(1, 30, 7)])
        ingest(tenant, [native_trace(100, NOW - timedelta(minutes=30))])
        scored(tenant.project)
        while dirty_process():
            pass
        before = {t.table: _count(t.table) for t in registered()}
        assert all(before.values()), before
        client = Client()
        assert client.login(username=tenant.user.username, password=PASSWORD)
        list_before = client.get(f"/p/{tenant.project.slug}/traces/?range=30d").content.decode()

        call_command("partitions_convert")

        for spec in registered():
            assert is_partitioned(spec.table), spec.table
            assert _count(spec.table) == before[spec.table], spec.table
            counts = counts_by_partition(spec.table)
            assert counts == {f"{spec.table}_legacy": before[spec.table]}, counts  # no row copied, none lost
            names = {p.name for p in partitions(spec.table)}
            assert f"{spec.table}_default" in names
        assert _primary_key("traces_trace") == ["id", "start_time"]
        assert _primary_key("evals_score") == ["id", "trace_start"]
        # The pages and the read API show the same traces as before; re-sending spans updates them in place.
        list_after = client.get(f"/p/{tenant.project.slug}/traces/?range=30d")
        assert list_after.status_code == 200
        for n in [*range(1, 30, 7), 100]:
            assert (f"{n:032x}" in list_before) and (f"{n:032x}" in list_after.content.decode())
        api = Client().get(f"/api/v1/traces/{100:032x}", headers=tenant.bearer)
        assert api.status_code == 200 and len(api.json()["spans"]) == 3
        settings.INGEST_MAX_FUTURE_SECONDS = 4 * 86400  # a span past the legacy partition's cutoff goes to its day's
        ingest(tenant, [native_trace(100, NOW - timedelta(minutes=30)), native_trace(200, NOW + timedelta(days=3))])
        scored(tenant.project)
        assert _count("traces_trace") == before["traces_trace"] + 1
        assert _count("evals_score") == before["evals_score"] + 1
        assert counts_by_partition("traces_trace")[day_name("traces_trace", NOW + timedelta(days=3))] == 1
        # A second run has nothing to do.
        call_command("partitions_convert")
    finally:
        with connection.cursor() as cursor:  # the next tests start from a new installation's layout
            for spec in registered():
                cursor.execute(f"DROP TABLE IF EXISTS {spec.table}_legacy")
        forget()
        if not all(is_partitioned(t.table) for t in registered()):
            _unpartition()
            call_command("partitions_convert")


def _count(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")  # noqa: S608
        return int(cursor.fetchone()[0])


def _primary_key(table: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary "
            "ORDER BY array_position(i.indkey::int[], a.attnum::int)",
            [table],
        )
        return [r[0] for r in cursor.fetchall()]
