"""Beat-driven ingest maintenance."""

from celery import shared_task

from traces.services import followups_requeue


@shared_task(name="traces.tasks.followups_requeue", ignore_result=True)
def requeue_followups() -> int:
    """Queue the follow-up work (scoring) that could not be queued after its ingest commit."""
    return followups_requeue()
