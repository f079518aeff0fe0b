"""/metrics says when to add a node (docs/operations.md): refused ingest requests per project (429, 503), messages
waiting per queue, and how long each beat task's last run took and when it ended."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from django.core.cache import caches
from django.db import OperationalError
from django.test import Client, override_settings

from rollups import tasks as rollup_tasks
from sre4ai_web.beat import BEAT_HEADER
from tests.conftest import Tenant, broker_purge, broker_queued

pytestmark = pytest.mark.django_db


def scrape(tenant: Tenant) -> str:
    response = Client().get("/metrics", headers=tenant.bearer)
    assert response.status_code == 200
    return response.content.decode()


def value(text: str, metric: str, **labels: str) -> float | None:
    for line in text.splitlines():
        name, _, rest = line.partition("{")
        if name == metric and all(f'{k}="{v}"' in rest for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def send(tenant: Tenant) -> int:
    start = datetime.now(UTC) - timedelta(minutes=5)
    trace = {"service": "bot", "spans": [{"name": "chat", "start_time": start.isoformat()}]}
    return Client().post("/api/v1/traces", data=json.dumps({"traces": [trace]}), content_type="application/json",
                         headers=tenant.bearer).status_code  # fmt: skip


def test_refused_ingest_requests_are_counted_per_project_and_status(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(status: str) -> float:
        return value(scrape(tenant), "sre4ai_ingest_refused_requests_total", project="acme", status=status) or 0.0

    caches[
        "ingest_rate"
    ].clear()  # counts of an earlier test may share this minute's keys (as in test_ingest_hardening)
    before = {status: refused(status) for status in ("429", "503")}
    with override_settings(INGEST_PROJECT_SPANS_PER_MINUTE=1):
        assert [send(tenant), send(tenant)] == [200, 429]

    def storage_down(**_: object) -> None:
        raise OperationalError("the database went away")

    monkeypatch.setattr("traces.api.spans_store", storage_down)
    assert send(tenant) == 503
    assert {status: refused(status) - before[status] for status in before} == {"429": 1.0, "503": 1.0}


@pytest.fixture
def empty_queues() -> Iterator[None]:
    broker_purge()
    yield
    broker_purge()


def test_queue_depths_and_beat_task_durations(tenant: Tenant, empty_queues: None) -> None:
    for _ in range(3):
        rollup_tasks.process_dirty.apply_async()  # no worker runs in this test: they wait on the backfill queue
    assert broker_queued("backfill") == 3
    text = scrape(tenant)
    assert value(text, "sre4ai_queue_messages", queue="backfill") == 3.0
    assert value(text, "sre4ai_queue_messages", queue="scoring") == 0.0

    send(tenant)
    before = time.time()
    rollup_tasks.process_dirty.apply(headers={BEAT_HEADER: "1"})  # as beat sends it
    text = scrape(tenant)
    took = value(text, "sre4ai_beat_task_duration_seconds", task="rollups.tasks.process_dirty")
    ended = value(text, "sre4ai_beat_task_last_run_timestamp_seconds", task="rollups.tasks.process_dirty")
    assert took is not None and 0 < took < 60
    assert ended is not None and before <= ended <= time.time()
    assert re.search(r"^# HELP sre4ai_beat_task_duration_seconds ", text, re.M)
