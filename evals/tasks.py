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
from django.db import OperationalError
from django.utils import timezone

from accounts.models import Project
from evals import otel_export, services
from evals.drift import runs as drift_runs
from evals.evaluators.base import EvaluatorError
from evals.jobs import backoff, job_task
from evals.models import DriftRun, EvalRun, ProbeRun
from evals.probes import runs as probe_runs
from traces.selectors import services_with_traces

TRANSIENT = (OperationalError,)
logger = logging.getLogger(__name__)


def _rescore_retryable(exc: Exception) -> bool:
    """A judge that answered 429 or timed out, or a database that is not reachable: worth another try."""
    return isinstance(exc, OperationalError) or (isinstance(exc, EvaluatorError) and exc.retryable)


@shared_task(bind=True, name="evals.tasks.score_traces", acks_late=True, autoretry_for=TRANSIENT, retry_backoff=True,
             max_retries=6, soft_time_limit=120, time_limit=180)  # fmt: skip
def score_traces(self: Task[Any, Any], project_id: int, trace_pks: list[int]) -> int:
    """Cheap evaluators for freshly ingested traces; hands the traces to the judge queue when a judge is on."""
    outcome = services.traces_score(project_id=project_id, trace_pks=trace_pks, queue="scoring")
    if "judge" in services.queues_needed(project_id=project_id, trace_pks=trace_pks) and not self.request.retries:
        judge_traces.apply_async((project_id, trace_pks))
    if outcome.retryable:
        raise self.retry(exc=EvaluatorError("; ".join(outcome.retryable[:3]), retryable=True),
                         countdown=backoff(self.request.retries))  # fmt: skip
    return outcome.scores


@shared_task(bind=True, name="evals.tasks.judge_traces", acks_late=True, autoretry_for=TRANSIENT, retry_backoff=True,
             max_retries=6, soft_time_limit=600, time_limit=660)  # fmt: skip
def judge_traces(self: Task[Any, Any], project_id: int, trace_pks: list[int]) -> int:
    outcome = services.traces_score(project_id=project_id, trace_pks=trace_pks, queue="judge")
    if outcome.retryable:
        raise self.retry(exc=EvaluatorError("; ".join(outcome.retryable[:3]), retryable=True),
                         countdown=backoff(self.request.retries))  # fmt: skip
    return outcome.scores


@shared_task(bind=True, name="evals.tasks.rescore_step", acks_late=True, max_retries=8, soft_time_limit=600,
             time_limit=660)  # fmt: skip
def rescore_step(self: Task[Any, Any], run_id: int) -> None:
    """One chunk of a rescoring job, then the next chunk as a new message (progress survives a dead worker)."""
    run = job_task(self, model=EvalRun, run_id=run_id, work=lambda: services.eval_run_step(run_id=run_id),
                   retryable=_rescore_retryable)  # fmt: skip
    if not run.is_finished:
        rescore_step.apply_async((run_id,))


@shared_task(bind=True, name="evals.tasks.drift_run", acks_late=True, max_retries=3, soft_time_limit=600,
             time_limit=660)  # fmt: skip
def drift_run(self: Task[Any, Any], run_id: int) -> None:
    job_task(self, model=DriftRun, run_id=run_id, work=lambda: drift_runs.drift_run_execute(run_id=run_id))


@shared_task(name="evals.tasks.drift_schedule", ignore_result=True)
def drift_schedule() -> int:
    """Beat: one drift run per service that had traffic in the last 24 hours."""
    since = timezone.now() - timedelta(hours=24)
    pairs = services_with_traces(project_ids=list(Project.objects.values_list("pk", flat=True)), since=since)
    for project_id, service in sorted(pairs):
        drift_runs.drift_run_start(project=Project.objects.get(pk=project_id), service=service)
    return len(pairs)


@shared_task(bind=True, name="evals.tasks.probe_run", acks_late=True, max_retries=3, soft_time_limit=3600,
             time_limit=3660)  # fmt: skip
def probe_run(self: Task[Any, Any], run_id: int) -> None:
    """One probe run to the end. Redelivered after a worker died, it resumes at the first unanswered item."""
    job_task(self, model=ProbeRun, run_id=run_id, work=lambda: probe_runs.probe_run_execute(run_id=run_id))


@shared_task(name="evals.tasks.probe_schedule", ignore_result=True)
def probe_schedule() -> int:
    """Beat, every minute: start the probes that are due (each slot claimed once, see probes_claim_due)."""
    return len(probe_runs.probes_claim_due(now=timezone.now()))


@shared_task(bind=True, name="evals.tasks.scores_export", acks_late=True, max_retries=None, soft_time_limit=60,
             time_limit=90)  # fmt: skip
def scores_export(self: Task[Any, Any], project_id: int, score_pks: list[int]) -> int:
    """Send a batch of built-in scores to the OTLP collector; retried with backoff, then dropped and counted."""
    try:
        return otel_export.scores_send(project_id=project_id, score_pks=score_pks)
    except otel_export.ExportFailed as exc:
        if exc.retryable and self.request.retries + 1 < settings.SRE4AI_OTEL_EXPORT_MAX_ATTEMPTS:
            raise self.retry(exc=exc, countdown=exc.retry_after or backoff(self.request.retries)) from exc
        logger.warning("dropped %d scores of project %s: %s", len(score_pks), project_id, exc)
        otel_export.export_counted(project_id=project_id, failed=len(score_pks))
        return 0


@shared_task(name="evals.tasks.scores_export_test", ignore_result=True, soft_time_limit=60, time_limit=90)
def scores_export_test(project_id: int) -> None:
    """ "Send test" in Settings: one empty logs request to the project's collector; the answer shows there."""
    otel_export.export_test_run(project_id=project_id)
