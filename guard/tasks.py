"""Recording of guard decisions after the answer (guard.services): queued by each call once its outbox row is
committed, and run by beat too, which records what a broker outage left behind."""

import time

from celery import shared_task

from guard.services import RECORD_BATCH, guard_records_flush

RUN_SECONDS = 20  # below the beat interval (30 s): runs do not pile up


@shared_task(name="guard.tasks.record_decisions", ignore_result=True)
def record_decisions() -> int:
    """Record the pending decisions, a batch per transaction, until none is left (or the run's time is up)."""
    total, deadline = 0, time.monotonic() + RUN_SECONDS
    while time.monotonic() < deadline:
        recorded = guard_records_flush(limit=RECORD_BATCH)
        total += recorded
        if recorded < RECORD_BATCH:
            break
    return total
