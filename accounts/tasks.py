"""Beat-driven project upkeep: retention and time partitions."""

from celery import shared_task
from django.utils import timezone

from accounts.retention import retention_sweep
from sre4ai_web.lib.partitions import partitions_upkeep
from sre4ai_web.lib.queue import RETRIED_ON_DATABASE_ERRORS

SWEEP_SECONDS = 240.0  # below the beat interval (300 s): runs never pile up; a backlog drains over several


@shared_task(
    name="accounts.tasks.retention_sweep",
    soft_time_limit=280,
    time_limit=300,
    **RETRIED_ON_DATABASE_ERRORS,
)
def retention() -> int:
    """Remove every project's expired raw rows and aggregates, in short batches; returns the rows removed."""
    return retention_sweep(seconds=SWEEP_SECONDS).rows


@shared_task(name="accounts.tasks.partitions_upkeep", soft_time_limit=280, time_limit=300, **RETRIED_ON_DATABASE_ERRORS)
def partitions() -> int:
    """PostgreSQL: make the time partitions of the coming days and months; returns how many were made (none on
    SQLite, or when they exist)."""
    return partitions_upkeep(timezone.now())
