"""End to end with a real Celery worker (on Redis, and on the filesystem broker of ``make run``): traces sent over
OTLP are scored by the worker, the rollup task counts the SLI, the evaluation tick (run by the worker) fires the
page rule, a local webhook receives exactly one notification, and the incident page lists the failing traces."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client

from evals.models import Score
from rollups.models import TrafficRollup
from rollups.tasks import process_dirty
from slos.models import SLO, Channel, Incident, SliMinute
from slos.tasks import evaluate
from tests.conftest import PASSWORD, Tenant, broker_purge, broker_queued
from tests.processes import post_otlp, start_worker, stop, wait_for
from tests.receiver import Receiver
from tests.scoring_data import GROUNDED, INVENTED, rag_spans
from tests.slo_data import manager
from traces.models import Trace


@pytest.fixture
def clean_broker() -> Iterator[None]:
    broker_purge()  # messages of earlier tests name rows that no longer exist
    yield
    broker_purge()


def minute_ago_ns(minutes: int) -> int:
    """A moment `minutes` whole minutes before the current one (5 s into it), in unix nanoseconds."""
    now = datetime.now(UTC).replace(second=5, microsecond=0) - timedelta(minutes=minutes)
    return int(now.timestamp()) * 10**9


@pytest.mark.django_db(transaction=True)
def test_failing_answers_page_once_and_the_incident_shows_them(
    live_server: Any, tenant: Tenant, receiver: Receiver, clean_broker: Any
) -> None:
    worker = start_worker("slo-e2e")
    # One start for all eight traces: computed per trace, a minute boundary passing mid-test split them in two.
    start = minute_ago_ns(2)
    try:
        # Traffic that passes, scored by the worker and rolled up: the service now exists for the SLO form.
        for _ in range(4):
            post_otlp(live_server, tenant, rag_spans(GROUNDED, start=start))
        wait_for(lambda: Score.objects.filter(name="grounding").count() == 4, 60, "the worker to score 4 traces")
        process_dirty.delay()
        wait_for(lambda: TrafficRollup.objects.filter(service="support-bot").exists(), 30, "rollups")

        Channel.objects.create(project=tenant.project, name="oncall", kind="webhook",
                               config={"url": receiver.url + "/page"})  # fmt: skip
        body = {"name": "Grounded answers", "service": "support-bot", "sli_kind": "score", "evaluator": "grounding",
                "comparator": "pass", "objective": "90%", "window_days": 30, "channels": ["oncall"],
                "policy": [{"severity": "page", "burn_rate_threshold": "2", "long_window": "15m",
                            "short_window": "5m"}]}  # fmt: skip
        created = Client().post("/api/v1/slos", json.dumps(body), content_type="application/json",
                                headers=manager(tenant))  # fmt: skip
        assert created.status_code == 201, created.content
        slo = SLO.objects.get()
        wait_for(lambda: SLO.objects.get().history_ready_at is not None, 30, "the SLI history rebuild task")
        assert SliMinute.objects.get(slo=slo).good == 4

        # Invented answers in the same minute: 4 bad of 8 is a burn rate of 5 over both windows (> 2).
        bad_ids = []
        for _ in range(4):
            spans = rag_spans(INVENTED, start=start)
            bad_ids.append(spans[0].trace_id.hex())
            post_otlp(live_server, tenant, spans)
        wait_for(lambda: Score.objects.filter(name="grounding").count() == 8, 60, "the worker to score 8 traces")
        process_dirty.delay()
        wait_for(lambda: SliMinute.objects.filter(slo=slo, total=8).exists(), 30, "the SLI counted by the rollup task")

        evaluate.delay()
        wait_for(lambda: len(receiver.requests) == 1, 30, "the webhook notification")
        evaluate.delay()  # the next tick: still firing, nothing new to say
        time.sleep(3)
        wait_for(lambda: not broker_queued("celery"), 30, "an idle queue")
    finally:
        stop(worker)

    assert len(receiver.requests) == 1
    sent = receiver.requests[0].json()
    incident = Incident.objects.get()
    assert (sent["kind"], sent["severity"], sent["incident_id"]) == ("fired", "page", incident.pk)
    assert (sent["burn_rate_long"], sent["burn_rate_short"]) == ("5", "5")
    client = Client()
    assert client.login(username="alice", password=PASSWORD)
    page = client.get(f"/p/acme/incidents/{incident.pk}/").content.decode()
    assert Trace.objects.filter(trace_id__in=bad_ids).count() == 4
    for trace_id in bad_ids:
        assert f'href="/p/acme/traces/{trace_id}/"' in page
    bad_events = page.split("<h2>Bad events")[1].split("<h2>Timeline")[0]
    assert bad_events.count('<span class="check-fail"') == 4 and "grounding" in bad_events
