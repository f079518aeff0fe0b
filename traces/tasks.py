"""Beat-driven ingest maintenance."""

import time

from celery import shared_task

from traces.services import REQUEUE_BATCH, followups_requeue

RUN_SECONDS = 20  # below the beat interval (30 s): runs do not pile up


@shared_task(name="traces.tasks.followups_requeue", ignore_result=True)
def requeue_followups() -> int:
    """Queue the follow-up work (scoring) that could not be queued after its ingest commit, in batches, so a
    long broker outage's backlog drains in minutes."""
    total, deadline = 0, time.monotonic() + RUN_SECONDS
    while time.monotonic() < deadline:
        queued = followups_requeue(limit=REQUEUE_BATCH)
        total += queued
        if queued < REQUEUE_BATCH:  # nothing left, or the broker refused: the next run continues
            break
    return total
