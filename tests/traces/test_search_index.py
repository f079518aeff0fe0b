"""The trigram index's work left out of ingest (traces.0017): on PostgreSQL a trace is written with its search text
pending, found by search all the same, and put into the index by scoring or by beat's sweep; SQLite (no trigram
index) writes nothing pending."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection, connections
from django.test import Client

from evals.tasks import score_traces
from front.selectors import TraceFilters, trace_page
from sre4ai_web.celery import app as celery_app
from tests import otlp_build as ob
from tests.conftest import Tenant
from tests.scoring_data import rag_spans, send
from traces.followups import followups_add
from traces.models import Trace
from traces.services import traces_search_index
from traces.tasks import search_index

pytestmark = pytest.mark.django_db(transaction=True)
POSTGRES = connection.vendor == "postgresql"


def found(tenant: Tenant, text: str) -> list[int]:
    return [t.pk for t in trace_page(project=tenant.project, filters=TraceFilters(text=text), few=False).items]


def pending(*pks: int) -> list[bool]:
    by_pk = dict(Trace.objects.filter(pk__in=pks).values_list("pk", "search_pending"))
    return [by_pk[pk] for pk in pks]


def test_an_ingested_trace_is_found_by_search_before_and_after_its_text_is_indexed(
    client: Client, tenant: Tenant, other_tenant: Tenant
) -> None:
    trace = send(client, tenant, rag_spans("Refunds take five business days.", question="Where is my chargeback?"))
    other = send(client, other_tenant, rag_spans("Refunds take five days.", question="Where is my chargeback?"))
    assert pending(trace.pk, other.pk) == [POSTGRES, POSTGRES]
    assert found(tenant, "chargeback") == [trace.pk]  # pending: found through its own small index
    assert found(tenant, "nowhere-said") == []

    assert search_index() == (2 if POSTGRES else 0)  # beat's sweep, every project
    assert pending(trace.pk, other.pk) == [False, False]
    assert found(tenant, "CHARGEBACK") == [trace.pk]  # indexed: found through the trigram index
    assert search_index() == 0

    # A late span of a stored trace rewrites the row: pending again, and still found.
    late = ob.span(trace.trace_id, ob.new_span_id(), parent=trace.root_span_id, name="late",
                   attributes={"output.value": "a late step"})  # fmt: skip
    body = ob.request([late], resource={"service.name": "support-bot"}).SerializeToString()
    response = client.post("/v1/traces", data=body, content_type="application/x-protobuf", headers=tenant.bearer)
    assert response.status_code == 200
    assert pending(trace.pk) == [POSTGRES]
    assert Trace.objects.get(pk=trace.pk).span_count == 4
    assert found(tenant, "chargeback") == [trace.pk]


@pytest.mark.postgres_only("only PostgreSQL leaves search text pending")
def test_scoring_indexes_the_text_of_its_own_traces(client: Client, tenant: Tenant) -> None:
    scored = send(client, tenant, rag_spans("Refunds take five business days."))
    left = send(client, tenant, rag_spans("Refunds take five business days."))
    job = followups_add(project_id=tenant.project.pk, task_names=["evals.tasks.score_traces"], trace_pks=[scored.pk])
    score_traces.apply(args=[tenant.project.pk, [scored.pk]], kwargs={"followup": job[0].pk}).get()
    assert pending(scored.pk, left.pk) == [False, True]
    assert scored.scores.exists()


@pytest.mark.postgres_only("only PostgreSQL leaves search text pending")
def test_a_trace_an_ingest_holds_is_skipped_not_waited_for(client: Client, tenant: Tenant) -> None:
    held = send(client, tenant, rag_spans("Refunds take five business days."))
    free = send(client, tenant, rag_spans("Refunds take five business days."))
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:  # an ingest in progress: the trace's row locked in another transaction
        try:
            with connections["default"].cursor() as cursor:
                cursor.execute("BEGIN")
                cursor.execute("SELECT 1 FROM traces_trace WHERE id = %s FOR UPDATE", [held.pk])
                locked.set()
                release.wait(10)
                cursor.execute("ROLLBACK")
        finally:
            connections["default"].close()

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert locked.wait(10)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '2s'")  # a wait would fail the call instead of hanging the test
        assert traces_search_index() == 1
        assert traces_search_index(trace_pks=[held.pk]) == 0
        assert pending(held.pk, free.pk) == [True, False]
    finally:
        release.set()
        thread.join()
    assert traces_search_index(trace_pks=[held.pk]) == 1
    assert pending(held.pk) == [False]


def test_beat_sweeps_pending_search_text_more_often_than_scoring_could_fall_behind() -> None:
    entries: dict[str, Any] = {e["task"]: e for e in celery_app.conf.beat_schedule.values()}
    assert entries["traces.tasks.search_index"]["schedule"] <= 5
