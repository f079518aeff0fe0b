"""Exporting our verdicts over OTLP: Celery tasks run in the test's process (``eager``), a scored trace, the
project's built-in scores and export counters."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.test import Client

from evals.models import Score, ScoreExportCounter, ScoreSource
from evals.services import traces_score
from sre4ai_web.celery import app as celery_app
from tests.conftest import Tenant
from tests.scoring_data import INVENTED, rag_spans, send
from traces.models import Trace


@pytest.fixture
def eager() -> Iterator[None]:
    """The export task runs in the test's process (retries too, without their countdown)."""
    celery_app.conf.task_always_eager = True
    try:
        yield
    finally:
        celery_app.conf.task_always_eager = False


def built_in(tenant: Tenant) -> list[Score]:
    return list(
        Score.objects.filter(project=tenant.project, source=ScoreSource.EVALUATOR).select_related("trace", "span")
    )


def counters(tenant: Tenant) -> tuple[int, int]:
    row = ScoreExportCounter.objects.filter(project=tenant.project).first()
    return (row.sent, row.failed) if row else (0, 0)


def scored_trace(tenant: Tenant) -> Trace:
    trace = send(Client(), tenant, rag_spans(INVENTED))
    traces_score(project_id=tenant.project.pk, trace_pks=[trace.pk])
    return trace
