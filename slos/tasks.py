"""Beat-driven SLO work: the evaluation tick, the notification dispatcher, SLI history rebuilds and spend budgets."""

from celery import shared_task
from django.conf import settings

from slos import budgets, services
from slos.dispatch import deliveries_dispatch
from sre4ai_web.lib.queue import RETRIED_ON_DATABASE_ERRORS

# The dispatcher starts no new send after this long; beat starts it again every 15 s. Its time limits leave room for
# one last send to its deadline, so a run never outlives the broker's visibility timeout with the default deadline.
DISPATCH_SECONDS = 30
_DISPATCH_LIMIT = DISPATCH_SECONDS + settings.SLO_DELIVERY_TIMEOUT_SECONDS + 10


@shared_task(
    name="slos.tasks.evaluate",
    soft_time_limit=50,
    time_limit=55,
    **RETRIED_ON_DATABASE_ERRORS,
)
def evaluate() -> int:
    """Every SLO's alert rules at the last complete minute; returns the state changes written."""
    return services.slos_evaluate().changes


@shared_task(
    name="slos.tasks.dispatch",
    soft_time_limit=_DISPATCH_LIMIT,
    time_limit=_DISPATCH_LIMIT + 10,
    **RETRIED_ON_DATABASE_ERRORS,
)
def dispatch() -> int:
    """Send the due notifications (new ones, and retries whose backoff has passed). Each delivery is claimed
    while it is sent, so two dispatchers at once (a redelivered message) never send one twice."""
    return deliveries_dispatch(seconds=DISPATCH_SECONDS)


@shared_task(
    name="slos.tasks.sli_history",
    soft_time_limit=1700,
    time_limit=1800,
    **RETRIED_ON_DATABASE_ERRORS,
)
def sli_history(slo_id: int) -> int:
    """Count a new or redefined SLO's events over its whole window from raw rows."""
    return services.sli_history_rebuild(slo_id=slo_id)


@shared_task(
    name="slos.tasks.budgets_evaluate",
    soft_time_limit=50,
    time_limit=55,
    **RETRIED_ON_DATABASE_ERRORS,
)
def budgets_evaluate() -> int:
    """Alert on spend budget levels newly crossed in their current windows; returns the alerts written."""
    return budgets.budgets_evaluate()
