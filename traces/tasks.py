"""Beat-driven ingest maintenance."""

import time

from celery import shared_task

from traces.followups import REQUEUE_BATCH, followups_requeue

RUN_SECONDS = 10  # below the beat interval (15 s by default): runs do not pile up


@shared_task(name="traces.tasks.followups_requeue", ignore_result=True, soft_time_limit=50, time_limit=60)
def requeue_followups() -> int:
    """Queue again the follow-up work (scoring, the judge) whose message is missing or whose worker died, in
    batches, so a long broker outage's backlog drains in minutes."""
    total, deadline = 0, time.monotonic() + RUN_SECONDS
    while time.monotonic() < deadline:
        queued = followups_requeue(limit=REQUEUE_BATCH)
        total += queued
        if queued < REQUEUE_BATCH:  # nothing left, or the broker refused: the next run continues
            break
    return total
