"""How work is queued: services queue Celery tasks by name, once their transaction commits.

On commit, so a worker never looks for a row that is not committed yet and a rolled-back write queues nothing; by
name, so a service never imports the tasks module that imports it (routing is by name too: sre4ai_web/celery.py).
"""

from __future__ import annotations

from celery import current_app
from django.db import transaction


def enqueue_on_commit(task: str, *args: object, countdown: float | None = None) -> None:
    """Queue ``task`` (a registered task name, e.g. "slos.tasks.dispatch") with ``args`` after the current
    transaction commits, or at once outside a transaction."""
    options = {} if countdown is None else {"countdown": countdown}
    transaction.on_commit(lambda: current_app.send_task(task, args=list(args), **options))
