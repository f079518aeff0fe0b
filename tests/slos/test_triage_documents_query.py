"""The triage page's "What changed" reads retrieved documents by span id, through the (span, position) index.

Read through a join on their span's trace, PostgreSQL planned a sequential scan of every document of the
installation hashed against the window's spans: 135–250 ms per side at 375,000 documents, also for a service
without retrieval (docs/benchmarks.md §13). The plan at that size cannot be made in a test; the query's shape can:
one query on the document table alone, filtered by ``span_id = ANY(...)``, that the index answers."""

from __future__ import annotations

import re
from datetime import datetime

import pytest
from django.db import connection
from django.db.models import Min
from django.test.utils import CaptureQueriesContext

from slos.selectors_triage import events_for
from tests.conftest import Tenant
from tests.triage_data import native_trace, store_native
from traces.models import Trace


@pytest.mark.django_db
def test_documents_are_read_by_span_id_without_a_join(tenant: Tenant) -> None:
    traces = [
        native_trace(f"{i + 1:032x}", documents=({"id": f"kb-{i}"}, {"id": "kb-shared"}), tools=("search",))
        for i in range(6)
    ]
    pks = sorted(store_native(tenant, traces).values())
    since = Trace.objects.filter(pk__in=pks).aggregate(first=Min("start_time"))["first"]
    for bound in (None, since):  # the triage page bounds the reads by the window's start (partitions)
        check_documents_query(tenant, pks, bound)


def check_documents_query(tenant: Tenant, pks: list[int], since: datetime | None) -> None:
    with CaptureQueriesContext(connection) as queries:
        events = events_for(project_id=tenant.project.pk, trace_pks=pks[:4], bad_pks={pks[0]}, since=since)
    assert [sorted(e.values["source"]) for e in events] == [[f"kb-{i}", "kb-shared"] for i in range(4)]
    assert all(e.values["tool"] == frozenset({"search"}) for e in events)
    (documents,) = [q["sql"] for q in queries.captured_queries if "traces_retrieveddocument" in q["sql"]]
    assert " JOIN " not in documents.upper() and "traces_span" not in documents, documents
    # AnyOf: "= ANY(array)" on PostgreSQL, "IN (SELECT value FROM json_each(...))" on SQLite.
    assert re.search(
        r'WHERE \(?"traces_retrieveddocument"\."span_id" (= ANY\(|IN \(SELECT value FROM json_each)', documents
    )
    assert "DISTINCT" not in documents.upper() and "ORDER BY" not in documents.upper(), documents
    if connection.vendor == "postgresql":
        # Each id list (traces, spans, documents) reaches the planner as an InitPlan: planned as a constant array,
        # an incident's 8,000 span ids cost 31 ms of planning over a week of partitions (docs/benchmarks.md §13).
        lists = [q["sql"] for q in queries.captured_queries if "= ANY(" in q["sql"]]
        assert lists and all("= ANY(ARRAY(SELECT unnest(" in sql for sql in lists), lists
        with connection.cursor() as cursor:
            # Tiny tables are cheaper to scan than to probe; the point is that the index can answer the filter.
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("EXPLAIN " + documents)
            plan = "\n".join(row[0] for row in cursor.fetchall())
        # Partitioned (PostgreSQL, sre4ai_web/lib/partitions.py), each day's table answers from its copy of the
        # (span, position, start) unique index; unpartitioned, from document_unique_position.
        assert "Seq Scan" not in plan and "traces_span" not in plan, plan
        assert re.search(r"Index Scan on \S*(document_unique_position|span_id_position)", plan), plan
