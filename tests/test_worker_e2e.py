"""End to end with a real Celery worker: traces sent over OTLP to a live server are scored in the background and
the scores show on the trace page (on Redis, and on the filesystem broker and SQLite that ``make run`` uses); a
worker killed mid-task loses no scoring (Redis)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.test import Client

from evals.models import Score
from tests import otlp_build as ob
from tests.conftest import PASSWORD, Tenant, broker_purge, database_url
from tests.scoring_data import GROUNDED, INVENTED, rag_spans
from traces.models import Trace

ROOT = Path(__file__).resolve().parent.parent
QUEUES = ("scoring", "judge", "backfill", "celery", "probes", "notify")


def start_worker(
    name: str, visibility_timeout: int = 3600, queues: tuple[str, ...] = QUEUES, **env_vars: str
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "SRE4AI_BROKER_VISIBILITY_TIMEOUT": str(visibility_timeout),
        **env_vars,
    }
    # The worker's log goes to a file under the var directory (a pipe nobody reads would stall a chatty worker).
    with open(Path(settings.VAR_DIR) / f"worker-{name}.log", "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "sre4ai_web", "worker", "-n", f"{name}@%h", "-Q", ",".join(queues),
             "--pool", "solo", "--loglevel", "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True,
        )  # fmt: skip


def stop(worker: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if worker.poll() is None:
        os.killpg(worker.pid, sig)
        worker.wait(timeout=30)


@pytest.fixture
def clean_queues() -> Iterator[None]:
    broker_purge()  # messages of earlier tests name rows that no longer exist
    yield
    broker_purge()


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def post_otlp(live_server: Any, tenant: Tenant, spans: list) -> None:
    body = ob.request(spans, resource={"service.name": "support-bot"}).SerializeToString()
    response = httpx.post(f"{live_server.url}/v1/traces", content=body, timeout=30,
                             headers={**tenant.bearer, "Content-Type": "application/x-protobuf"})  # fmt: skip
    assert response.status_code == 200, response.text


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
    90 s and 30 s), so that copy does the job. tests/test_faults.py covers beat's way back."""
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
