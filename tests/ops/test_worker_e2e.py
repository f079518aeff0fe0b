"""End to end with a real Celery worker: traces sent over OTLP to a live server are scored in the background and
the scores show on the trace page (on Redis, and on the filesystem broker and SQLite that ``make run`` uses); a
worker killed mid-task loses no scoring (Redis)."""

from __future__ import annotations

import signal
from typing import Any

import pytest
from django.test import Client

from evals.models import Score
from tests import processes
from tests.conftest import PASSWORD, Tenant
from tests.processes import post_otlp, start_worker, stop, wait_for
from tests.scoring_data import GROUNDED, INVENTED, rag_spans
from traces.models import Trace

# Shared fixtures: pytest finds a fixture by its name in the test's module.
clean_queues = processes.clean_queues


@pytest.mark.django_db(transaction=True)
def test_worker_scores_ingested_traces_and_the_page_shows_them(live_server: Any, tenant: Tenant, clean_queues) -> None:
    worker = start_worker("e2e")
    try:
        good, bad = rag_spans(GROUNDED), rag_spans(INVENTED)
        post_otlp(live_server, tenant, good)
        post_otlp(live_server, tenant, bad)
        bad_trace = Trace.objects.get(trace_id=bad[0].trace_id.hex())
        wait_for(lambda: Score.objects.filter(name="grounding").count() == 2, 60, "grounding scores from the worker")
    finally:
        stop(worker)
    assert Score.objects.get(trace=bad_trace, name="grounding").passed is False
    client = Client()
    assert client.login(username="alice", password=PASSWORD)
    html = client.get(f"/p/acme/traces/{bad_trace.trace_id}/").content.decode()
    assert '<mark class="unsupported"' in html
    assert "3 days" in html


@pytest.mark.postgres_only("redelivery of an unacknowledged task: Redis's visibility timeout (no acks on files)")
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_task_loses_no_scoring(live_server: Any, tenant: Tenant, clean_queues) -> None:
    """Without beat: Redis hands the killed worker's message to the next worker after the visibility timeout, by
    which time the dead worker's claim on the job has lapsed (the timeout is longer than a claim, as by default:
    90 s and 30 s), so that copy does the job. tests/ops/test_faults.py covers beat's way back."""
    # One batch of many traces is one task: kill the worker while it is half-way through.
    spans = [s for _ in range(400) for s in rag_spans(INVENTED)]
    for start in range(0, len(spans), 900):
        post_otlp(live_server, tenant, spans[start : start + 900])
    total = Trace.objects.count()
    first = start_worker("doomed", visibility_timeout=4, SRE4AI_CLAIM_SECONDS="2")
    try:
        wait_for(lambda: Score.objects.filter(name="grounding").exists(), 60, "the first worker to start scoring")
        stop(first, signal.SIGKILL)
    finally:
        stop(first, signal.SIGKILL)
    scored_when_killed = Score.objects.filter(name="grounding").count()
    assert scored_when_killed < total, "the worker finished before it could be killed; make the batch bigger"
    second = start_worker("rescuer", visibility_timeout=4, SRE4AI_CLAIM_SECONDS="2")
    try:
        wait_for(lambda: Score.objects.filter(name="grounding").count() == total, 120,
                 "the redelivered task to finish scoring")  # fmt: skip
    finally:
        stop(second)
    assert Score.objects.filter(name="grounding").values("trace").distinct().count() == total
