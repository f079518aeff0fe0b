"""Celery entry points for scoring. Tasks take ids, are idempotent (scores upsert on a deterministic key),
ack late (a worker killed mid-task leaves the message to be redelivered), retry only transient errors with
backoff, and run on named queues: ``scoring`` for the cheap evaluators, ``judge`` for LLM calls,
``backfill`` for rescoring jobs, so slow work never delays the cheap evaluators.

Work that must not run twice at once (an ingest follow-up, a probe, rescoring or drift run) claims its row first
(``sre4ai_web.lib.claims``): a second copy of the message returns at once, and beat queues the job again if its
worker dies (``traces.tasks.followups_requeue``, ``evals.tasks.runs_requeue``). Retry countdowns stay below the
broker's visibility timeout (90 s), so Redis does not hand a waiting retry to a second worker."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, NoReturn

from celery import Task, shared_task
from django.conf import settings
from django.db import OperationalError, transaction
from django.utils import timezone

from accounts.models import Project
from evals import otel_export, services
from evals.drift import runs as drift_runs
from evals.evaluators.base import EvaluatorError
from evals.jobs import backoff, job_task
from evals.models import DriftRun, EvalRun, ProbeRun
from evals.probes import runs as probe_runs
from sre4ai_web.lib.claims import MAX_ATTEMPTS, Claim
from traces.followups import followup_claimed, followup_done, followup_progress, followup_remaining, followups_add
from traces.selectors import services_with_traces

TRANSIENT = (OperationalError,)
logger = logging.getLogger(__name__)


def _rescore_retryable(exc: Exception) -> bool:
    """A judge that answered 429 or timed out, or a database that is not reachable: worth another try."""
    return isinstance(exc, OperationalError) or (isinstance(exc, EvaluatorError) and exc.retryable)


def _retry(task: Task[Any, Any], claim: Claim, exc: Exception) -> NoReturn:
    countdown = backoff(task.request.retries)
    claim.retry_after(countdown)  # beat leaves the job to this retry
    raise task.retry(exc=exc, countdown=countdown)


def _as_followup(task: Task[Any, Any], project_id: int, trace_pks: list[int]) -> int:
    """A message without a job (queued by an older version, or by hand) becomes a job like any other."""
    with transaction.atomic():
        followups_add(project_id=project_id, task_names=[task.name], trace_pks=trace_pks)
    return 0


@shared_task(
    bind=True,
    name="evals.tasks.score_traces",
    acks_late=True,
    autoretry_for=TRANSIENT,
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=MAX_ATTEMPTS,
    soft_time_limit=50,
    time_limit=60,
)
def score_traces(self: Task[Any, Any], project_id: int, trace_pks: list[int], followup: int | None = None) -> int:
    """Cheap evaluators for a job of freshly ingested traces (traces.followups, at most 250 traces: seconds of
    work); then the judge's job when a judge is on."""
    if followup is None:
        return _as_followup(self, project_id, trace_pks)
    with followup_claimed(followup) as claim:
        if claim is None:  # done, or another worker is on it
            return 0
        outcome = services.traces_score(project_id=project_id, trace_pks=trace_pks, queue="scoring")
        if outcome.retryable:
            _retry(self, claim, EvaluatorError("; ".join(outcome.retryable[:3]), retryable=True))
        judge = "judge" in services.queues_needed(project_id=project_id, trace_pks=trace_pks)
        followup_done(
            followup,
            claim,
            project_id=project_id,
            trace_pks=trace_pks,
            then=["evals.tasks.judge_traces"] if judge else [],
        )
    return outcome.scores


@shared_task(
    bind=True,
    name="evals.tasks.judge_traces",
    acks_late=True,
    autoretry_for=TRANSIENT,
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=MAX_ATTEMPTS,
    soft_time_limit=600,
    time_limit=660,
)
def judge_traces(self: Task[Any, Any], project_id: int, trace_pks: list[int], followup: int | None = None) -> int:
    """The LLM judge for a job of traces; each trace is ticked off the job as its scores commit, so a retry, or a
    resume after the worker died, asks only about the rest."""
    if followup is None:
        return _as_followup(self, project_id, trace_pks)
    with followup_claimed(followup) as claim:
        if claim is None:
            return 0
        remaining = followup_remaining(followup)
        outcome = services.traces_score(
            project_id=project_id,
            trace_pks=list(remaining),
            queue="judge",
            on_trace_done=lambda pk: followup_progress(followup, remaining, pk),
        )
        if outcome.retryable:
            _retry(self, claim, EvaluatorError("; ".join(outcome.retryable[:3]), retryable=True))
        followup_done(followup, claim, project_id=project_id, trace_pks=[])
    return outcome.scores


@shared_task(
    bind=True, name="evals.tasks.rescore_step", acks_late=True, max_retries=8, soft_time_limit=600, time_limit=660
)
def rescore_step(self: Task[Any, Any], run_id: int) -> None:
    """One chunk of a rescoring job, then the next chunk as a new message (progress survives a dead worker)."""
    run = job_task(
        self,
        model=EvalRun,
        run_id=run_id,
        work=lambda _claim: services.eval_run_step(run_id=run_id),
        retryable=_rescore_retryable,
    )
    if run is not None and not run.is_finished:
        rescore_step.apply_async((run_id,))


@shared_task(
    bind=True, name="evals.tasks.drift_run", acks_late=True, max_retries=3, soft_time_limit=600, time_limit=660
)
def drift_run(self: Task[Any, Any], run_id: int) -> None:
    job_task(self, model=DriftRun, run_id=run_id, work=lambda _claim: drift_runs.drift_run_execute(run_id=run_id))


# A service whose drift run was made this recently gets no other: a beat message delivered twice (or the demo's
# early run) does not run the analysis twice.
DRIFT_SCHEDULE_GAP = timedelta(minutes=30)


@shared_task(name="evals.tasks.drift_schedule", ignore_result=True)
def drift_schedule() -> int:
    """Beat: one drift run per service that had traffic in the last 24 hours, and none yet this half hour (a second
    beat, by mistake, sends this task again at another moment of the hour: sre4ai_web/beat.py)."""
    now = timezone.now()
    pairs = services_with_traces(
        project_ids=list(Project.objects.values_list("pk", flat=True)), since=now - timedelta(hours=24)
    )
    recent = set(DriftRun.objects.filter(created_at__gte=now - DRIFT_SCHEDULE_GAP).values_list("project_id", "service"))
    for project_id, service in sorted(set(pairs) - recent):
        drift_runs.drift_run_start(project=Project.objects.get(pk=project_id), service=service)
    return len(set(pairs) - recent)


@shared_task(
    bind=True, name="evals.tasks.probe_run", acks_late=True, max_retries=3, soft_time_limit=3600, time_limit=3660
)
def probe_run(self: Task[Any, Any], run_id: int) -> None:
    """One probe run to the end. Resumed after its worker died, it asks only the unanswered items."""
    job_task(
        self,
        model=ProbeRun,
        run_id=run_id,
        work=lambda claim: probe_runs.probe_run_execute(run_id=run_id, keep_going=lambda: not claim.lost.is_set()),
    )


@shared_task(name="evals.tasks.probe_schedule", ignore_result=True)
def probe_schedule() -> int:
    """Beat, every minute: start the probes that are due (each slot claimed once, see probes_claim_due)."""
    return len(probe_runs.probes_claim_due(now=timezone.now()))


@shared_task(name="evals.tasks.runs_requeue", ignore_result=True, soft_time_limit=50, time_limit=60)
def runs_requeue() -> int:
    """Beat: queue again the probe, rescoring and drift runs whose worker died or whose message is missing."""
    return services.runs_requeue()


@shared_task(
    bind=True, name="evals.tasks.scores_export", acks_late=True, max_retries=None, soft_time_limit=50, time_limit=60
)
def scores_export(self: Task[Any, Any], project_id: int, score_pks: list[int]) -> int:
    """Send a batch of built-in scores to the OTLP collector; retried with backoff, then dropped and counted."""
    try:
        return otel_export.scores_send(project_id=project_id, score_pks=score_pks)
    except otel_export.ExportFailed as exc:
        if exc.retryable and self.request.retries + 1 < settings.SRE4AI_OTEL_EXPORT_MAX_ATTEMPTS:
            countdown = min(exc.retry_after or backoff(self.request.retries), 60)  # below the visibility timeout
            raise self.retry(exc=exc, countdown=countdown) from exc
        logger.warning("dropped %d scores of project %s: %s", len(score_pks), project_id, exc)
        otel_export.export_counted(project_id=project_id, failed=len(score_pks))
        return 0


@shared_task(name="evals.tasks.scores_export_test", ignore_result=True, soft_time_limit=60, time_limit=90)
def scores_export_test(project_id: int) -> None:
    """ "Send test" in Settings: one empty logs request to the project's collector; the answer shows there."""
    otel_export.export_test_run(project_id=project_id)
