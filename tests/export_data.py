"""Exporting our verdicts over OTLP: the export tasks run in the test's process as they are queued (``eager``), a
scored trace, the project's built-in scores and export counters."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from evals.models import Score, ScoreExportCounter, ScoreSource
from evals.services import traces_score
from sre4ai_web.celery import app as celery_app
from tests.conftest import Tenant
from tests.scoring_data import INVENTED, rag_spans, send
from traces.models import Trace

EXPORT_TASKS = ("evals.tasks.scores_export", "evals.tasks.scores_export_test")


@pytest.fixture
def eager(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The export tasks run in the test's process when a service queues them by name (retries too, without their
    countdown); other tasks go to the broker as usual. A task that ends in an error fails the test (``apply`` keeps
    the error in its result, where nothing else looks)."""
    import evals.tasks  # noqa: F401  (registers the export tasks, as a worker's import does)

    send = celery_app.send_task
    failures: list[BaseException] = []

    def send_task(name: str, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        if name not in EXPORT_TASKS:
            return send(name, args, kwargs, **options)
        result = celery_app.tasks[name].apply(args=args, kwargs=kwargs)  # retries run inside apply
        if result.failed():
            failures.append(result.result)
        return result

    monkeypatch.setattr(celery_app, "send_task", send_task)
    yield
    assert not failures, failures


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
