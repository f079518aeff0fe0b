"""Recovery of follow-up work: traces acknowledged while the broker was down are recorded in the ingest outbox,
queued by beat once the broker is back, and scored exactly once by a real Celery worker; beat sends a job again
only when its message is missing. tests/ops/test_faults.py injects the faults end to end."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
import redis
from django.conf import settings
from django.db.models import Count
from django.test import Client
from django.utils import timezone

from evals.models import Score
from tests import otlp_build as ob
from tests.conftest import Tenant
from tests.processes import start_worker, stop, wait_for
from tests.scoring_data import GROUNDED, INVENTED, rag_spans
from tests.web_server import gunicorn
from traces.models import FollowupOutbox, Trace
from traces.tasks import requeue_followups


@pytest.fixture
def empty_broker() -> Iterator[redis.Redis]:
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.flushdb()  # messages of earlier tests name rows that no longer exist
    yield broker
    broker.flushdb()


@pytest.mark.postgres_only("reads and empties the Redis broker's queues directly")
@pytest.mark.django_db(transaction=True)
def test_traces_ingested_while_the_broker_is_down_are_scored_once_it_is_back(
    tenant: Tenant, empty_broker, monkeypatch
) -> None:
    batches = [rag_spans(GROUNDED), rag_spans(INVENTED), rag_spans(GROUNDED) + rag_spans(INVENTED)]
    with gunicorn(CELERY_BROKER_URL="redis://127.0.0.1:9/0") as url:  # nothing listens on the discard port
        for spans in batches:
            body = ob.request(spans, resource={"service.name": "support-bot"}).SerializeToString()
            response = httpx.post(f"{url}/v1/traces", content=body, timeout=60,
                                     headers={**tenant.bearer, "Content-Type": "application/x-protobuf"})  # fmt: skip
            assert response.status_code == 200, response.text  # acknowledged although nothing could be queued
    traces = set(Trace.objects.values_list("pk", flat=True))
    assert len(traces) == 4
    outbox = list(FollowupOutbox.objects.order_by("pk"))
    assert [(job.task_name, len(job.trace_pks)) for job in outbox] == [
        ("evals.tasks.score_traces", n) for n in (1, 1, 2)
    ]
    assert empty_broker.dbsize() == 0

    # Beat, with the broker back: jobs within their grace period are left to the message sent for them.
    assert requeue_followups() == 0
    FollowupOutbox.objects.update(due_at=timezone.now() - timedelta(seconds=1))
    monkeypatch.setattr("traces.tasks.REQUEUE_BATCH", 1)  # one run drains a backlog larger than a batch
    assert requeue_followups() == 3
    assert empty_broker.llen("scoring") == 3
    # The jobs stay until a worker has done them, due again only after a new grace period.
    assert FollowupOutbox.objects.filter(due_at__gt=timezone.now(), claimed_until=None).count() == 3
    assert requeue_followups() == 0

    worker = start_worker("recovery")
    try:
        wait_for(lambda: Score.objects.filter(name="grounding").count() == 4, 90, "the re-queued traces to be scored")
        wait_for(lambda: not FollowupOutbox.objects.exists(), 30, "the jobs to be deleted once done")
    finally:
        stop(worker)
    per_trace = Score.objects.filter(name="grounding").values("trace").annotate(n=Count("id"))
    assert {row["trace"]: row["n"] for row in per_trace} == dict.fromkeys(traces, 1)


@pytest.mark.postgres_only("reads and empties the Redis broker's queues directly")
@pytest.mark.django_db(transaction=True)
def test_a_job_is_sent_again_only_when_its_message_is_missing(
    client: Client, tenant: Tenant, empty_broker: redis.Redis
) -> None:
    body = ob.request([ob.span(ob.new_trace_id())]).SerializeToString()
    response = client.post("/v1/traces", data=body, content_type="application/x-protobuf", headers=tenant.bearer)
    assert response.status_code == 200
    assert empty_broker.llen("scoring") == 1
    job = FollowupOutbox.objects.get()  # stays until a worker has scored its traces
    assert job.claimed_until is None and job.due_at > timezone.now()

    # Overdue, but its message still waits in the queue (behind a backlog, say): not sent twice.
    FollowupOutbox.objects.update(due_at=timezone.now() - timedelta(seconds=1))
    assert requeue_followups() == 0
    assert empty_broker.llen("scoring") == 1
    # Redis restarted empty: the message is gone, so the job is sent again.
    empty_broker.flushdb()
    assert requeue_followups() == 1
    assert empty_broker.llen("scoring") == 1
    # Overdue for ten minutes, it is sent again whatever the queue holds.
    FollowupOutbox.objects.update(due_at=timezone.now() - timedelta(minutes=11))
    assert requeue_followups() == 1
    assert empty_broker.llen("scoring") == 2
