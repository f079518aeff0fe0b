"""Drift runs end to end on PostgreSQL: gather a service's signals for two windows, test them, store the
verdicts, show them on the drift page and in the overview."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from evals.drift.runs import drift_run_create, drift_run_execute
from evals.models import DriftRun
from evals.services import traces_score
from evals.tasks import drift_schedule
from rollups.services import dirty_process
from tests.conftest import PASSWORD, Tenant
from tests.drift_data import batch, send
from traces.models import Trace


@pytest.mark.django_db
@pytest.mark.parametrize("planted", [True, False])
def test_drift_run_finds_a_planted_latency_shift_and_nothing_without_it(
    client: Client, tenant: Tenant, planted: bool
) -> None:
    rng = random.Random(7)
    now = timezone.now()
    baseline = batch(rng, 600, now - timedelta(days=8), timedelta(days=7) - timedelta(hours=1), False, "gpt-4o-mini")
    current_model = "gpt-4.1-mini" if planted else "gpt-4o-mini"
    current = batch(rng, 200, now - timedelta(hours=23), timedelta(hours=22), planted, current_model)
    send(client, tenant, baseline + current)
    run = drift_run_execute(run_id=drift_run_create(project=tenant.project, service="bot", now=now).pk)
    by_signal = {r["signal"]: r for r in run.results}
    assert run.status == "done"
    assert by_signal["latency (ms)"]["n_baseline"] == 600
    assert by_signal["latency (ms)"]["n_current"] == 200
    if planted:
        assert run.verdict == "drift"
        assert by_signal["latency (ms)"]["verdict"] == "drift"
        assert by_signal["model"]["verdict"] == "drift"
        assert by_signal["model"]["new_categories"] == ["gpt-4.1-mini"]
        assert by_signal["model"]["vanished_categories"] == ["gpt-4o-mini"]
    else:
        assert run.verdict == "no_drift"
        assert all(r["verdict"] != "drift" for r in run.results), [
            r["signal"] for r in run.results if r["verdict"] == "drift"
        ]
    assert by_signal["answer length (output tokens)"]["verdict"] != "drift"


@pytest.mark.django_db
def test_quiet_service_is_insufficient_data_not_an_alarm(client: Client, tenant: Tenant) -> None:
    rng = random.Random(3)
    now = timezone.now()
    send(client, tenant, batch(rng, 12, now - timedelta(days=5), timedelta(days=1), False, "a")
         + batch(rng, 5, now - timedelta(hours=5), timedelta(hours=1), True, "b"))  # fmt: skip
    run = drift_run_execute(run_id=drift_run_create(project=tenant.project, service="bot", now=now).pk)
    assert run.verdict == "insufficient_data"
    assert {r["verdict"] for r in run.results} == {"insufficient_data"}


@pytest.mark.django_db
def test_drift_page_run_now_schedule_and_overview_status(client: Client, tenant: Tenant) -> None:
    rng = random.Random(5)
    now = timezone.now()
    send(client, tenant, batch(rng, 300, now - timedelta(days=8), timedelta(days=6), False, "m")
         + batch(rng, 120, now - timedelta(hours=20), timedelta(hours=18), True, "m"))  # fmt: skip
    traces_score(project_id=tenant.project.pk, trace_pks=list(Trace.objects.values_list("pk", flat=True)))
    dirty_process()
    assert drift_schedule() == 1  # one service with traffic in the last 24 h
    scheduled = DriftRun.objects.get()
    assert (scheduled.trigger, scheduled.status) == ("schedule", "queued")
    drift_run_execute(run_id=scheduled.pk)
    assert client.login(username="alice", password=PASSWORD)
    page = client.get("/p/acme/drift/", {"service": "bot"})
    html = page.content.decode()
    assert page.status_code == 200
    assert "latency (ms)" in html
    assert 'class="verdict v-drift"' in html
    assert page.context["figures"]  # overlaid distributions to draw
    overview = client.get("/p/acme/", {"range": "24h"}).content.decode()
    assert ">drift</a>" in overview
    response = client.post("/p/acme/drift/", {"service": "bot"})
    assert response.status_code == 302
    assert DriftRun.objects.filter(trigger="manual").count() == 1
    assert client.post("/p/acme/drift/", {"service": "nope"}).status_code == 302
    assert DriftRun.objects.count() == 2
