"""The seam for follow-up work: after the ingest commit, the configured Celery tasks are queued on Redis."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
import redis
from django.conf import settings
from django.test import Client, override_settings

from sre4ai_web.celery import app as celery_app
from tests import ROOT
from tests import otlp_build as ob
from tests.conftest import Tenant, database_url
from traces.models import Trace

# A task name without a route goes to Celery's default queue.
QUEUE = celery_app.conf.task_default_queue


@pytest.fixture
def broker() -> Iterator[redis.Redis]:
    assert settings.CELERY_BROKER_URL.startswith("redis://"), "make test runs Celery on the real Redis"
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.delete(QUEUE)
    yield client
    client.delete(QUEUE)


@pytest.mark.postgres_only("reads the queued messages on the Redis broker")
@pytest.mark.django_db(transaction=True)
def test_ingest_queues_followups_after_commit_with_the_trace_ids(client: Client, tenant: Tenant, broker) -> None:
    with override_settings(SRE4AI_TRACE_INGESTED_TASKS=["tests.followup"]):
        body = ob.request([ob.span(ob.new_trace_id()), ob.span(ob.new_trace_id())]).SerializeToString()
        response = client.post("/v1/traces", data=body, content_type="application/x-protobuf", headers=tenant.bearer)
    assert response.status_code == 200
    messages = [json.loads(m) for m in broker.lrange(QUEUE, 0, -1)]
    assert len(messages) == 1
    assert messages[0]["headers"]["task"] == "tests.followup"
    args = json.loads(base64.b64decode(messages[0]["body"]))[0]
    assert args == [tenant.project.pk, sorted(Trace.objects.values_list("pk", flat=True))]


@pytest.mark.postgres_only("reads the queued messages on the Redis broker")
@pytest.mark.django_db(transaction=True)
def test_nothing_is_queued_when_ingest_fails(client: Client, tenant: Tenant, broker) -> None:
    with override_settings(SRE4AI_TRACE_INGESTED_TASKS=["tests.followup"]):
        response = client.post("/v1/traces", data=b"\xff garbage", content_type="application/x-protobuf",
                               headers=tenant.bearer)  # fmt: skip
    assert response.status_code == 400
    assert broker.llen(QUEUE) == 0


@pytest.mark.django_db(transaction=True)
def test_a_broker_outage_does_not_fail_ingest(tenant: Tenant) -> None:
    """The spans are committed before the scoring task is queued: with the broker down, ingest still says 200."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": "redis://127.0.0.1:9/0",  # nothing listens on the discard port
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "sre4ai_web.wsgi:application", "--bind", f"127.0.0.1:{port}"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        trace_id = ob.new_trace_id()
        body = ob.request([ob.span(trace_id)]).SerializeToString()
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.post(f"http://127.0.0.1:{port}/v1/traces", content=body, timeout=30,
                                         headers={**tenant.bearer, "Content-Type": "application/x-protobuf"})  # fmt: skip
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert response.status_code == 200
    assert Trace.objects.filter(trace_id=trace_id).exists()
