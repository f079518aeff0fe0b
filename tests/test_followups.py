"""The seam for follow-up work: after the ingest commit, the configured Celery tasks are queued on Redis."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest
import redis
from django.conf import settings
from django.test import Client, override_settings

from sre4ai_web.celery import app as celery_app
from tests import otlp_build as ob
from tests.conftest import Tenant
from traces.models import Trace


@pytest.fixture
def broker() -> Iterator[redis.Redis]:
    assert settings.CELERY_BROKER_URL.startswith("redis://"), "make test runs Celery on the real Redis"
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.delete("followup-test")
    yield client
    client.delete("followup-test")


@pytest.mark.django_db(transaction=True)
def test_ingest_queues_followups_after_commit_with_the_trace_ids(client: Client, tenant: Tenant, broker) -> None:
    routes = celery_app.conf.task_routes
    celery_app.conf.task_routes = {"tests.followup": {"queue": "followup-test"}}
    try:
        with override_settings(SRE4AI_TRACE_INGESTED_TASKS=["tests.followup"]):
            body = ob.request([ob.span(ob.new_trace_id()), ob.span(ob.new_trace_id())]).SerializeToString()
            response = client.post("/v1/traces", data=body, content_type="application/x-protobuf",
                                   headers=tenant.bearer)  # fmt: skip
    finally:
        celery_app.conf.task_routes = routes
    assert response.status_code == 200
    messages = [json.loads(m) for m in broker.lrange("followup-test", 0, -1)]
    assert len(messages) == 1
    assert messages[0]["headers"]["task"] == "tests.followup"
    args = json.loads(base64.b64decode(messages[0]["body"]))[0]
    assert args == [tenant.project.pk, sorted(Trace.objects.values_list("pk", flat=True))]


@pytest.mark.django_db(transaction=True)
def test_nothing_is_queued_when_ingest_fails(client: Client, tenant: Tenant, broker) -> None:
    routes = celery_app.conf.task_routes
    celery_app.conf.task_routes = {"tests.followup": {"queue": "followup-test"}}
    try:
        with override_settings(SRE4AI_TRACE_INGESTED_TASKS=["tests.followup"]):
            response = client.post("/v1/traces", data=b"\xff garbage", content_type="application/x-protobuf",
                                   headers=tenant.bearer)  # fmt: skip
    finally:
        celery_app.conf.task_routes = routes
    assert response.status_code == 400
    assert broker.llen("followup-test") == 0
