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
    return min(2 ** (retries + 1), 300)


def _transient(exc: Exception) -> bool:
    return isinstance(exc, OperationalError)


def job_task(
    task: Task[Any, Any],
    *,
    model: type[JobRun],
    run_id: int,
    work: Callable[[], T],
    retryable: Callable[[Exception], bool] = _transient,
) -> T:
    """The body of a job run's task: ``work`` runs; an error that ``retryable`` accepts (a database that is not
    reachable, by default) is retried with backoff, and the job resumes where it stopped; any other error fails
    the run with its message and is raised again for Celery's log."""
    try:
        return work()
    except Exception as exc:
        if retryable(exc):
            raise task.retry(exc=exc, countdown=backoff(task.request.retries)) from exc
        # An evaluator's message is written for people; anything else is named by its type.
        error = str(exc) if isinstance(exc, EvaluatorError) else f"{type(exc).__name__}: {exc}"
        job_run_fail(model=model, run_id=run_id, error=error)
        raise
