"""How work is queued: services queue Celery tasks by name, once their transaction commits.

On commit, so a worker never looks for a row that is not committed yet and a rolled-back write queues nothing; by
name, so a service never imports the tasks module that imports it (routing is by name too: sre4ai_web/celery.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import current_app
from django.db import OperationalError, transaction


def enqueue_on_commit(
    task: str,
    *args: object,
    countdown: float | None = None,
    on_error: Callable[[Exception], None] | None = None,
) -> None:
    """Queue ``task`` (a registered task name, e.g. "slos.tasks.dispatch") with ``args`` after the current
    transaction commits, or at once outside a transaction.

    A broker that refuses the message raises to the caller, unless ``on_error`` is given: it is then called with the
    error (inside the ``except``, so it can log the traceback), for work whose loss is counted rather than failed.
    """
    options = {} if countdown is None else {"countdown": countdown}

    def send() -> None:
        try:
            current_app.send_task(task, args=list(args), **options)
        except Exception as exc:
            if on_error is None:
                raise
            on_error(exc)

    transaction.on_commit(send)


# Options of a task whose work is database writes that are safe to run again: acknowledged only once done (a killed
# worker's message comes back), retried with backoff when the database is away, and no result stored.
RETRIED_ON_DATABASE_ERRORS: dict[str, Any] = {
    "acks_late": True,
    "autoretry_for": (OperationalError,),
    "retry_backoff": True,
    "max_retries": 3,
    "ignore_result": True,
}
