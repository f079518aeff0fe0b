"""Celery entry points for scoring. Tasks take ids, are idempotent (scores upsert on a deterministic key),
ack late (a worker killed mid-task leaves the message to be redelivered), retry only transient errors with
backoff, and run on named queues: ``scoring`` for the cheap evaluators, ``judge`` for LLM calls,
``backfill`` for rescoring jobs, so slow work never delays the cheap evaluators."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from celery import Task, shared_task
from django.conf import settings
from django.db import DatabaseError, OperationalError
from django.utils import timezone

from accounts.models import Project
from evals import otel_export, services
from evals.drift import runs as drift_runs
from evals.evaluators.base import EvaluatorError
from evals.models import DriftRun
from evals.probes import runs as probe_runs
from rollups.models import Granularity, TrafficRollup

TRANSIENT = (OperationalError,)
logger = logging.getLogger(__name__)


def _backoff(retries: int) -> int:
    return min(2 ** (retries + 1), 300)


@shared_task(bind=True, name="evals.tasks.score_traces", acks_late=True, autoretry_for=TRANSIENT, retry_backoff=True,
             max_retries=6, soft_time_limit=120, time_limit=180)  # fmt: skip
def score_traces(self: Task[Any, Any], project_id: int, trace_pks: list[int]) -> int:
    """Cheap evaluators for freshly ingested traces; hands the traces to the judge queue when a judge is on."""
    outcome = services.traces_score(project_id=project_id, trace_pks=trace_pks, queue="scoring")
    if "judge" in services.queues_needed(project_id=project_id, trace_pks=trace_pks) and not self.request.retries:
        judge_traces.apply_async((project_id, trace_pks))
    if outcome.retryable:
        raise self.retry(exc=EvaluatorError("; ".join(outcome.retryable[:3]), retryable=True),
                         countdown=_backoff(self.request.retries))  # fmt: skip
    return outcome.scores


@shared_task(bind=True, name="evals.tasks.judge_traces", acks_late=True, autoretry_for=TRANSIENT, retry_backoff=True,
             max_retries=6, soft_time_limit=600, time_limit=660)  # fmt: skip
def judge_traces(self: Task[Any, Any], project_id: int, trace_pks: list[int]) -> int:
    outcome = services.traces_score(project_id=project_id, trace_pks=trace_pks, queue="judge")
    if outcome.retryable:
        raise self.retry(exc=EvaluatorError("; ".join(outcome.retryable[:3]), retryable=True),
                         countdown=_backoff(self.request.retries))  # fmt: skip
    return outcome.scores


@shared_task(bind=True, name="evals.tasks.rescore_step", acks_late=True, max_retries=8, soft_time_limit=600,
             time_limit=660)  # fmt: skip
def rescore_step(self: Task[Any, Any], run_id: int) -> None:
    """One chunk of a rescoring job, then the next chunk as a new message (progress survives a dead worker)."""
    try:
        run = services.eval_run_step(run_id=run_id)
    except (EvaluatorError, OperationalError) as exc:
        if isinstance(exc, EvaluatorError) and not exc.retryable:
            services.eval_run_fail(run_id=run_id, error=str(exc))
            return
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from exc
    except DatabaseError as exc:
        services.eval_run_fail(run_id=run_id, error=f"database error: {exc}")
        raise
    if not run.is_finished:
        rescore_step.apply_async((run_id,))


@shared_task(bind=True, name="evals.tasks.drift_run", acks_late=True, max_retries=3, soft_time_limit=600,
             time_limit=660)  # fmt: skip
def drift_run(self: Task[Any, Any], run_id: int) -> None:
    try:
        drift_runs.drift_run_execute(run_id=run_id)
    except OperationalError as exc:
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from exc
    except Exception as exc:
        drift_runs.drift_run_fail(run_id=run_id, error=f"{type(exc).__name__}: {exc}")
        raise


@shared_task(name="evals.tasks.drift_schedule", ignore_result=True)
def drift_schedule() -> int:
    """Beat: one drift run per service that had traffic in the last 24 hours, and none yet this half hour (a second
    beat, by mistake, sends this task again at another moment of the hour: sre4ai_web/beat.py)."""
    now = timezone.now()
    pairs = set(
        TrafficRollup.objects.filter(
            granularity=Granularity.HOUR, dimension="", bucket__gte=now - timedelta(hours=24)
        ).values_list("project_id", "service")
    )
    pairs -= set(
        DriftRun.objects.filter(trigger="schedule", created_at__gte=now - timedelta(minutes=30)).values_list(
            "project_id", "service"
        )
    )
    for project_id, service in sorted(pairs):
        run = drift_runs.drift_run_create(project=Project.objects.get(pk=project_id), service=service)
        drift_run.apply_async((run.pk,))
    return len(pairs)


@shared_task(bind=True, name="evals.tasks.probe_run", acks_late=True, max_retries=3, soft_time_limit=3600,
             time_limit=3660)  # fmt: skip
def probe_run(self: Task[Any, Any], run_id: int) -> None:
    """One probe run to the end. Redelivered after a worker died, it resumes at the first unanswered item."""
    try:
        probe_runs.probe_run_execute(run_id=run_id)
    except OperationalError as exc:
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from exc
    except Exception as exc:
        probe_runs.probe_run_fail(run_id=run_id, error=f"{type(exc).__name__}: {exc}")
        raise


@shared_task(name="evals.tasks.probe_schedule", ignore_result=True)
def probe_schedule() -> int:
    """Beat, every minute: start the probes that are due (each slot claimed once, see probes_claim_due)."""
    runs = probe_runs.probes_claim_due(now=timezone.now())
    for run in runs:
        probe_run.apply_async((run.pk,))
    return len(runs)


@shared_task(bind=True, name="evals.tasks.scores_export", acks_late=True, max_retries=None, soft_time_limit=60,
             time_limit=90)  # fmt: skip
def scores_export(self: Task[Any, Any], project_id: int, score_pks: list[int]) -> int:
    """Send a batch of built-in scores to the OTLP collector; retried with backoff, then dropped and counted."""
    try:
        return otel_export.scores_send(project_id=project_id, score_pks=score_pks)
    except otel_export.ExportFailed as exc:
        if exc.retryable and self.request.retries + 1 < settings.SRE4AI_OTEL_EXPORT_MAX_ATTEMPTS:
            raise self.retry(exc=exc, countdown=exc.retry_after or _backoff(self.request.retries)) from exc
        logger.warning("dropped %d scores of project %s: %s", len(score_pks), project_id, exc)
        otel_export.export_counted(project_id=project_id, failed=len(score_pks))
        return 0
