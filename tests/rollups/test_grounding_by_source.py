"""The service page's "Grounded share by retrieval source": per retrieved document id, the share of the recent
grounding-scored answers that used it and passed (rollups.selectors._grounding_by_source)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from evals.services import ExternalScore, score_record
from rollups.selectors import service_detail, window_for
from rollups.services import dirty_process
from tests.conftest import Tenant, make_tenant
from tests.triage_data import T0, native_trace, store_native
from traces.models import Trace


def grounded(tenant: Tenant, documents: list[tuple[str, ...]], passed: list[bool]) -> None:
    """One answer per entry of ``documents`` (the ids it retrieved), its grounding score passed or failed."""
    trace_ids = [f"{tenant.project.pk:04x}{i:028x}" for i in range(len(documents))]
    traces = [
        native_trace(t, documents=tuple({"id": d} for d in docs)) for t, docs in zip(trace_ids, documents, strict=True)
    ]
    stored = store_native(tenant, traces)
    for trace_id, ok in zip(trace_ids, passed, strict=True):
        score_record(
            score=ExternalScore(
                trace=Trace.objects.get(pk=stored[trace_id]), span=None, name="grounding", value=None, label="",
                passed=ok, comment="", external_id="",
            )
        )  # fmt: skip


@pytest.mark.django_db
def test_each_source_counts_the_answers_that_used_it_once_and_their_grounded_share(
    client: Client, tenant: Tenant
) -> None:
    # kb-a in every answer (4 of 6 grounded), kb-b in the first three (1 of 3; twice in the first: one answer),
    # kb-c in the last two (both grounded).
    documents = [
        ("kb-a", "kb-b", "kb-b"),
        ("kb-a", "kb-b"),
        ("kb-a", "kb-b"),
        ("kb-a",),
        ("kb-a", "kb-c"),
        ("kb-a", "kb-c"),
    ]
    grounded(tenant, documents, [False, False, True, True, True, True])
    # Another project's answers with the same document ids and no grounded one: not this page's.
    other = make_tenant("other-co", "olga")
    grounded(other, [("kb-a", "kb-c")] * 4, [False] * 4)
    dirty_process()  # the page needs the service's traffic (rollups); the panel reads raw rows
    window = window_for(range_key="7d", now=T0 + timedelta(hours=1))
    with CaptureQueriesContext(connection) as queries:
        detail = service_detail(project=tenant.project, service="bot", environment="", window=window)
    assert detail.grounding_by_source == [("kb-b", 3, 1 / 3), ("kb-a", 6, 4 / 6), ("kb-c", 2, 1.0)]
    # The documents by their spans' ids, not joined to the spans: joined, PostgreSQL scanned the day's spans for it
    # (docs/benchmarks.md §13).
    (read,) = [q["sql"] for q in queries.captured_queries if "traces_retrieveddocument" in q["sql"]]
    assert " JOIN " not in read.upper() and "traces_span" not in read, read
    client.force_login(tenant.user)
    response = client.get(
        "/p/acme/service/",
        {"name": "bot", "range": "custom", "since": window.since.isoformat(), "until": window.until.isoformat()},
    )
    assert response.status_code == 200
    page = response.content.decode()
    panel = page.split("Grounded share by retrieval source")[1].split("</table>")[0]
    assert panel.index("kb-b") < panel.index("kb-a") < panel.index("kb-c")
    assert "3 answers" in panel and "6 answers" in panel and "2 answers" in panel
