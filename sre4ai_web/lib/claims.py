"""Claims: which worker is doing a job, kept in the job's own database row, so a job runs at most once at a time
and a job whose worker died is queued again within a minute.

Celery acknowledges our tasks late, so a message is delivered at least once: again after its worker died, and on
Redis also when a task runs longer than the visibility timeout (``SRE4AI_BROKER_VISIBILITY_TIMEOUT``); the
filesystem broker of the embedded default never delivers a message twice, and a message its worker took is lost
with it. A job row (an ingest follow-up, a probe run, a rescoring run, a drift run) therefore carries:

- ``claimed_until``: while in the future, a worker holds the job. ``claimed()`` takes it with a conditional
  UPDATE (of two copies of a message, one wins; the other returns at once) and a thread renews it every third of
  ``SRE4AI_CLAIM_SECONDS`` (30 s) while the task runs, so the claim stays short whatever the task's length: a
  worker killed with SIGKILL (or by its hard time limit) stops renewing, and its claim lapses within that time.
- ``due_at``: when the job is overdue if nobody has taken it by then (its message was sent
  ``SRE4AI_CLAIM_GRACE_SECONDS`` (30 s) before, or it retries then).
- ``attempts``: claims in a row that ended badly. A job with ``MAX_ATTEMPTS`` of them is not claimed again and
  beat gives it up (``given_up()``), so a job that kills its worker every time is not retried forever.

Each kind's beat task (``lost()``) queues again the jobs whose claim lapsed (their message was consumed by a
worker that died) and the overdue jobs nobody claimed (their message was never sent, or the broker lost it).
Work done under a claim is written idempotently anyway (scores upsert on a deterministic key), so a worker that
lost its claim while the database was away and carried on does no harm.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection, models, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

logger = logging.getLogger(__name__)

# A job whose claims ended badly this many times in a row (an error, a retry, a worker that died) is given up.
MAX_ATTEMPTS = 5
# Overdue jobs are queued again only when their queue holds fewer messages than there are unclaimed jobs (else
# their messages are most likely still waiting there, behind a backlog); past this, they are queued regardless.
OVERDUE_ANYWAY = timedelta(minutes=10)


@contextmanager
def bookkeeping() -> Iterator[None]:
    """A transaction for claims and finished jobs whose commit does not wait for the disk (PostgreSQL): losing it
    in a database crash only means a job claimed, released or done once more, which is harmless, so a claim
    costs no flush (on this machine's disk, a flush cost more than scoring a small job)."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit = off")
        yield


def _claim_seconds() -> float:
    return float(settings.SRE4AI_CLAIM_SECONDS)


def grace() -> datetime:
    """``due_at`` of a job whose message is being sent now (the default of the job models' field): the message
    is left this long to arrive before the job counts as overdue."""
    return timezone.now() + timedelta(seconds=settings.SRE4AI_CLAIM_GRACE_SECONDS)


class Job(models.Model):
    """The columns of a job row that ``claimed()`` and ``lost()`` use."""

    due_at = models.DateTimeField(default=grace, db_index=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)

    class Meta:
        abstract = True


class Claim:
    """A held claim on one row; ``lost`` is set if another worker took the row over (ours had lapsed)."""

    def __init__(self, model: type[models.Model], pk: int, until: datetime) -> None:
        self.model, self.pk, self.until = model, pk, until
        self.lost = threading.Event()
        self.retry_in = 0.0
        self._gone = False
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def forget(self) -> None:
        """The job's row is deleted (its work is done): there is no claim left to release."""
        self._gone = True

    def retry_after(self, seconds: float) -> None:
        """The job will be retried in ``seconds`` (a Celery retry with that countdown): until then plus the grace
        period it is not overdue, so beat does not queue it early."""
        self.retry_in = seconds

    def _mine(self) -> QuerySet[Any]:
        # The moment we wrote identifies our claim: whoever took the row over wrote another.
        return self.model._default_manager.filter(pk=self.pk, claimed_until=self.until)

    def _renew(self) -> None:
        try:
            while not self._stop.wait(_claim_seconds() / 3):
                until = timezone.now() + timedelta(seconds=_claim_seconds())
                try:
                    with bookkeeping():
                        taken = not self._mine().update(claimed_until=until)
                except DatabaseError:  # the database is away: keep trying; the claim may lapse meanwhile
                    logger.warning("could not renew the claim on %s %s", self.model.__name__, self.pk, exc_info=True)
                    continue
                if taken:
                    self.lost.set()  # finished rows are deleted or released by their own task, never by us
                    return
                self.until = until
        finally:
            connection.close()  # this thread's own connection

    def _release(self, *, ended_well: bool) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        if self._gone:
            return
        due = grace() + timedelta(seconds=self.retry_in)
        try:
            with bookkeeping():
                self._mine().update(claimed_until=None, due_at=due, **({"attempts": 0} if ended_well else {}))
        except DatabaseError:  # left to lapse: beat queues the job again once it has
            logger.warning("could not release the claim on %s %s", self.model.__name__, self.pk, exc_info=True)


@contextmanager
def claimed(rows: QuerySet[Any], pk: int) -> Iterator[Claim | None]:
    """Claim the row ``pk`` if it is among ``rows`` (the job rows in the states in which one may run), renew the
    claim while the block runs, release it after. Yields None when the row is held by another worker, finished or
    gone: the caller returns without doing anything.

    Inside a transaction (a test's) the claim is invisible to other connections until commit and nobody else
    can take it, so it is not renewed from another connection."""
    now = timezone.now()
    until = now + timedelta(seconds=_claim_seconds())
    free = Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    with bookkeeping():
        won = rows.filter(free, pk=pk, attempts__lt=MAX_ATTEMPTS).update(
            claimed_until=until, attempts=F("attempts") + 1
        )
    if not won:
        yield None
        return
    claim = Claim(rows.model, pk, until)
    if not connection.in_atomic_block:
        claim._renewer = threading.Thread(target=claim._renew, name=f"claim-{rows.model.__name__}-{pk}", daemon=True)
        claim._renewer.start()
    try:
        yield claim
    except BaseException:
        claim._release(ended_well=False)
        raise
    claim._release(ended_well=True)


def waiting_messages(queue: str) -> int | None:
    """Messages waiting in a queue of the broker (Redis, the filesystem or RabbitMQ); None when the broker cannot
    say."""
    from sre4ai_web.celery import app  # the Celery app imports every task module, which import this one

    try:
        with app.connection_for_read() as conn:
            # An AMQP broker refuses a declaration whose options differ from the queue's (Celery declares its queues
            # durable), so it is asked passively; kombu's virtual transports (Redis, filesystem) answer a passive
            # declaration of an empty queue with NOT_FOUND, so they are asked plainly.
            passive = conn.transport.driver_type == "amqp"
            try:
                return int(conn.default_channel.queue_declare(queue, passive=passive).message_count)
            except conn.channel_errors as error:
                if passive and getattr(error, "code", None) == 404:
                    return 0  # never declared: no worker consumes it and no message was ever sent to it
                raise
    except Exception:
        logger.warning("could not count the messages in queue %s", queue, exc_info=True)
        return None


def given_up(rows: QuerySet[Any]) -> QuerySet[Any]:
    """The jobs among ``rows`` whose last MAX_ATTEMPTS claims all ended badly and that nobody holds now: beat
    gives them up (deletes or fails them, and logs it) instead of sending them again."""
    return rows.filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=timezone.now()), attempts__gte=MAX_ATTEMPTS)


def lost(rows: QuerySet[Any], *, waiting: int | None, limit: int) -> list[Any]:
    """The jobs among ``rows`` (unfinished ones of one kind) to queue again: those whose claim lapsed (a worker
    died holding them), and the overdue unclaimed ones when their queue holds fewer messages (``waiting``; None:
    unknown) than there are unclaimed jobs, so some message is missing, or when they have been overdue for long.
    Call it in a transaction."""
    now = timezone.now()
    rows = rows.filter(attempts__lt=MAX_ATTEMPTS)
    unclaimed = rows.filter(claimed_until__isnull=True)
    overdue = unclaimed.filter(due_at__lt=now)
    # As many messages wait as there are unclaimed jobs (due or not): each may well have its own, behind a backlog.
    if waiting is not None and waiting >= unclaimed[: waiting + 1].count():
        overdue = overdue.filter(due_at__lt=now - OVERDUE_ANYWAY)
    chosen = rows.filter(Q(claimed_until__lt=now) | Q(pk__in=overdue.values("pk")))
    if connection.vendor == "postgresql":  # two beats at once never queue the same job twice
        chosen = chosen.select_for_update(skip_locked=True)
    return list(chosen.order_by("pk")[:limit])


def requeued(rows: QuerySet[Any]) -> int:
    """Mark jobs as just sent again: unclaimed, due after the grace period."""
    return rows.update(claimed_until=None, due_at=grace())
