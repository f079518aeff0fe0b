"""What every job run shares (rescoring EvalRun, DriftRun, ProbeRun: evals.models.JobRun): failing, cancelling,
and the one body of their Celery tasks, so that a crash never leaves a run "running" and a late failure never
overwrites a finished run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from celery import Task
from django.db import OperationalError
from django.utils import timezone

from evals.evaluators.base import EvaluatorError
from evals.models import JobRun, RunStatus
from sre4ai_web.lib.claims import Claim, claimed

R = TypeVar("R", bound=JobRun)
T = TypeVar("T")


def job_run_fail(*, model: type[JobRun], run_id: int, error: str) -> None:
    """The run fails with ``error``, unless it is already done or cancelled (a redelivered task that fails late
    must not overwrite how it ended)."""
    model._default_manager.filter(pk=run_id).exclude(status__in=[RunStatus.DONE, RunStatus.CANCELLED]).update(
        status=RunStatus.FAILED, error=error[:2000], finished_at=timezone.now()
    )


def job_run_cancel(*, run: R) -> R:
    """A queued or running run stops before its next unit of work; what it did so far is kept."""
    type(run)._default_manager.filter(pk=run.pk, status__in=[RunStatus.QUEUED, RunStatus.RUNNING]).update(
        status=RunStatus.CANCELLED, finished_at=timezone.now()
    )
    run.refresh_from_db()
    return run


def backoff(retries: int) -> int:
    """Seconds before retry ``retries + 1``: below the broker's visibility timeout (90 s), so Redis does not hand a
    waiting retry to a second worker."""
    return min(2 ** (retries + 1), 60)


def _transient(exc: Exception) -> bool:
    return isinstance(exc, OperationalError)


def job_task(
    task: Task[Any, Any],
    *,
    model: type[JobRun],
    run_id: int,
    work: Callable[[Claim], T],
    retryable: Callable[[Exception], bool] = _transient,
) -> T | None:
    """The body of a job run's task. The run is claimed first (sre4ai_web.lib.claims): a second copy of the message,
    or a run already finished, returns None at once. ``work`` then runs; an error that ``retryable`` accepts (a
    database that is not reachable, by default) is retried with backoff and the job resumes where it stopped, until
    the task's retries are spent; any other error fails the run with its message and is raised again for Celery's
    log."""
    open_runs = model._default_manager.filter(status__in=[RunStatus.QUEUED, RunStatus.RUNNING])
    with claimed(open_runs, run_id) as claim:
        if claim is None:
            return None
        try:
            return work(claim)
        except Exception as exc:
            if retryable(exc) and task.request.retries < (task.max_retries or 0):
                countdown = backoff(task.request.retries)
                claim.retry_after(countdown)  # beat leaves the job to this retry
                raise task.retry(exc=exc, countdown=countdown) from exc
            # An evaluator's message is written for people; anything else is named by its type.
            error = str(exc) if isinstance(exc, EvaluatorError) else f"{type(exc).__name__}: {exc}"
            if retryable(exc):
                error = f"gave up after {task.request.retries} retries: {error}"
            job_run_fail(model=model, run_id=run_id, error=error)
            raise
