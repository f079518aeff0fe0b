"""Beat-driven rollup maintenance."""

import time

from celery import shared_task

from rollups.services import dirty_process
from sre4ai_web.lib.queue import RETRIED_ON_DATABASE_ERRORS

RUN_SECONDS = 30  # well inside the time limit below, itself inside the broker's visibility timeout (90 s)


@shared_task(
    name="rollups.tasks.process_dirty",
    soft_time_limit=50,
    time_limit=60,
    **RETRIED_ON_DATABASE_ERRORS,
)
def process_dirty() -> int:
    """Recompute the minutes marked dirty since the last run, for up to RUN_SECONDS (the next tick continues): a
    run ends well inside the broker's visibility timeout, so Redis never hands a running one to a second worker
    (two at once would still be safe: each claims its minutes with SKIP LOCKED)."""
    deadline = time.monotonic() + RUN_SECONDS
    done = total = dirty_process(deadline=deadline)
    while done and total < 5000 and time.monotonic() < deadline:
        done = dirty_process(deadline=deadline)
        total += done
    return total
