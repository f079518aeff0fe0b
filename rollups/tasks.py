"""Beat-driven rollup maintenance."""

from celery import shared_task
from django.db import OperationalError

from rollups.services import dirty_process


@shared_task(
    name="rollups.tasks.process_dirty",
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=3,
    soft_time_limit=240,
    time_limit=300,
    ignore_result=True,
)
def process_dirty() -> int:
    """Recompute the minutes marked dirty since the last run (bounded per call; the next tick continues)."""
    done = total = dirty_process()
    while done and total < 5000:
        done = dirty_process()
        total += done
    return total
