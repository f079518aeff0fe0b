"""End to end with a real Celery worker and a real beat on Redis: beat's probe_schedule tick starts a due probe,
the worker runs it against a fake LLM app on 127.0.0.1 (records traces through the ingest service, scores them),
then the app's answers are switched and a "Run now" from the page is run by the worker and shows the flip.

Beat sends its first probe_schedule tick one schedule period after it starts: 60 s by default, 2 s here
(SRE4AI_PROBE_SCHEDULE_SECONDS)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings
from django.test import Client
from django.utils import timezone

from evals.datasets import ItemData
from evals.models import Probe, ProbeResult, ProbeRun, RunStatus, Score
from evals.services import dataset_create, dataset_items_add, probe_save
from tests import ROOT
from tests.conftest import PASSWORD, Tenant, database_url
from tests.fake_llm_app import FakeLlmApp
from tests.processes import start_worker, stop, wait_for
from traces.models import Trace

QUESTIONS = {"How long is the refund window?": "30 days", "What is six times seven?": "42"}


pytestmark = pytest.mark.postgres_only("a real Celery worker and beat on the Redis broker")


@pytest.fixture
def clean_broker() -> Iterator[None]:
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.flushdb()  # messages of earlier tests name rows that no longer exist
    yield
    broker.flushdb()


def start_beat(schedule_file: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "SRE4AI_PROBE_SCHEDULE_SECONDS": "2",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "sre4ai_web", "beat", "-s", str(schedule_file), "--loglevel", "WARNING"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_beat_starts_a_due_probe_and_the_worker_runs_it(tenant: Tenant, clean_broker: Any, tmp_path: Path) -> None:
    app = FakeLlmApp(answers=dict(QUESTIONS)).start()
    dataset = dataset_create(project=tenant.project, name="faq", user=tenant.user)
    dataset_items_add(dataset=dataset, items=[ItemData(input=q, expected=a) for q, a in QUESTIONS.items()])
    probe = probe_save(probe=Probe(
        project=tenant.project, name="faq probe", dataset=dataset, service="support-bot", target_kind="http_endpoint",
        target_config={"url": f"{app.url}/ask", "body_template": {"question": "{{input_text}}"}, "answer_path": "answer"},
        evaluators=["reference"], interval_minutes=60,
    ))  # fmt: skip
    # Due now; after this slot the next one is an hour away, so exactly one scheduled run happens here.
    Probe.objects.filter(pk=probe.pk).update(next_run_at=timezone.now() - timedelta(seconds=5))
    worker = start_worker("probes")
    beat = start_beat(tmp_path / "beat-schedule")
    try:
        wait_for(lambda: ProbeRun.objects.filter(probe=probe, status=RunStatus.DONE).exists(), 150,
                 "beat's probe_schedule tick and the worker's probe run")  # fmt: skip
        scheduled = ProbeRun.objects.get(probe=probe)
        assert (scheduled.trigger, scheduled.done, scheduled.passed, scheduled.flipped) == ("schedule", 2, 2, 0)
        assert Score.objects.filter(name="probe", passed=True).count() == 2
        assert Trace.objects.filter(project=tenant.project, tags__contains=["probe"]).count() == 2

        app.answers["How long is the refund window?"] = "14 days"
        client = Client()
        assert client.login(username="alice", password=PASSWORD)
        assert client.post(f"/p/acme/probes/{probe.pk}/", {"action": "run"}).status_code == 302
        manual = ProbeRun.objects.exclude(pk=scheduled.pk).get(probe=probe)
        wait_for(lambda: ProbeRun.objects.get(pk=manual.pk).status == RunStatus.DONE, 60, "the manual run")
    finally:
        stop(beat)
        stop(worker)
        app.stop()
    manual.refresh_from_db()
    assert (manual.trigger, manual.done, manual.passed, manual.flipped, manual.changed) == ("manual", 2, 1, 1, 1)
    flipped = ProbeResult.objects.get(run=manual, answer_changed=True)
    assert (flipped.previous_answer, flipped.answer, flipped.passed) == ("30 days", "14 days", False)
    assert ProbeRun.objects.filter(probe=probe, trigger="schedule").count() == 1
    page = client.get(f"/p/acme/probes/{probe.pk}/").content.decode()
    assert "flipped from pass" in page and "<ins>14</ins>" in page
