"""Beat-driven ingest maintenance."""

import time

from celery import shared_task

from traces.followups import REQUEUE_BATCH, followups_requeue
from traces.services import SEARCH_INDEX_BATCH, traces_search_index

RUN_SECONDS = 10  # below the beat interval (15 s by default): runs do not pile up
SEARCH_INDEX_SECONDS = 4  # below the search index's beat interval (5 s)


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


@shared_task(name="traces.tasks.search_index", ignore_result=True, soft_time_limit=30, time_limit=40)
def search_index() -> int:
    """Index the search text of every trace that ingest left pending (PostgreSQL), in batches. Scoring does it
    for its own traces first; this catches the rest (no scoring for the service, a worker behind), so searches
    never test more than a few seconds of pending traces row by row."""
    total, deadline = 0, time.monotonic() + SEARCH_INDEX_SECONDS
    while time.monotonic() < deadline:
        done = traces_search_index()
        total += done
        if done < SEARCH_INDEX_BATCH:
            break
    return total
