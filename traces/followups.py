"""Follow-up work of ingest: scoring each batch of new or changed traces, then the LLM judge when it is on.

A job is a ``FollowupOutbox`` row written in the transaction that stored its traces, and its message is sent after
commit. The row stays until the task has written the scores: the task claims it (``sre4ai_web.lib.claims``) and
deletes it at the end, adding the judge's job in the same transaction. So the work survives every single fault:

- broker down or restarted empty, or the web process killed between commit and send: no message, the row is
  overdue, beat (``followups_requeue``, every 15 s) sends it again once the broker answers;
- worker killed mid-task: its claim lapses within ``SRE4AI_CLAIM_SECONDS``, beat sends the job again (on Redis the
  unacknowledged message also comes back after the visibility timeout; that copy finds the job claimed or gone);
- database away: the task retries, and its claim is released (or lapses) for the next try.

Scores are upserted on a deterministic key, so whatever runs twice in a race still leaves one score per
evaluator and trace; the judge also ticks off each trace as its scores commit, so a retried or resumed job asks
the LLM only about the traces still to do.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from django.db import transaction

from sre4ai_web.celery import app as celery_app
from sre4ai_web.lib.claims import (
    MAX_ATTEMPTS,
    Claim,
    bookkeeping,
    claimed,
    given_up,
    lost,
    requeued,
    waiting_messages,
)
from traces.models import FollowupOutbox

logger = logging.getLogger(__name__)

# Traces per job: seconds of scoring, far inside the scoring task's time limit, so a job always finishes.
CHUNK = 250
REQUEUE_BATCH = 500


def followups_add(*, project_id: int, task_names: Sequence[str], trace_pks: Sequence[int]) -> list[FollowupOutbox]:
    """In the caller's transaction: one job per task and chunk of traces; the messages are sent after commit."""
    chunks = [list(trace_pks[i : i + CHUNK]) for i in range(0, len(trace_pks), CHUNK)]
    jobs = FollowupOutbox.objects.bulk_create(
        [FollowupOutbox(project_id=project_id, task_name=name, trace_pks=pks) for name in task_names for pks in chunks]
    )
    transaction.on_commit(lambda: followups_send(jobs))
    return jobs


def followups_send(jobs: Sequence[FollowupOutbox]) -> int:
    """Send each job's message, up to the first the broker refuses (the rest wait for beat). Returns those sent.

    The spans are committed and acknowledged by now: a broker outage must not turn that into an error."""
    for sent, job in enumerate(jobs):
        try:
            celery_app.send_task(job.task_name, args=[job.project_id, job.trace_pks], kwargs={"followup": job.pk})
        except Exception:
            logger.exception(
                "could not queue %s for %d traces of project %s; beat will queue it again",
                job.task_name,
                len(job.trace_pks),
                job.project_id,
            )
            return sent
    return len(jobs)


@contextmanager
def followup_claimed(pk: int) -> Iterator[Claim | None]:
    """The claim on a job while the block runs; None when the job is done, gone, held by another worker or out
    of attempts (beat gives it up)."""
    with claimed(FollowupOutbox.objects.all(), pk) as claim:
        yield claim


def followup_remaining(pk: int) -> list[int]:
    """The traces of a job still to do (the judge ticks them off as it goes)."""
    return list(FollowupOutbox.objects.filter(pk=pk).values_list("trace_pks", flat=True).first() or [])


def followup_progress(pk: int, remaining: list[int], trace_pk: int) -> None:
    """In the transaction that wrote a trace's scores: that trace is done, a retry skips it."""
    remaining.remove(trace_pk)
    FollowupOutbox.objects.filter(pk=pk).update(trace_pks=remaining)


def followup_done(
    pk: int, claim: Claim, *, project_id: int, trace_pks: Sequence[int], then: Sequence[str] = ()
) -> None:
    """The job's work is written: delete it and add the next jobs (``then``) for ``trace_pks``, in one transaction.
    Only the worker whose delete removed the row adds them, so they are added once however often the job ran."""
    with bookkeeping():
        if FollowupOutbox.objects.filter(pk=pk).delete()[0] and then:
            followups_add(project_id=project_id, task_names=then, trace_pks=trace_pks)
    claim.forget()


def _queue(task_name: str) -> str:
    route = celery_app.conf.task_routes.get(task_name, {})
    return str(route.get("queue", celery_app.conf.task_default_queue))


def followups_requeue(*, limit: int = REQUEUE_BATCH) -> int:
    """Beat: give up the jobs out of attempts; send again those whose worker died or whose message is missing
    (``claims.lost``), at most ``limit``. Returns the number sent."""
    for job in given_up(FollowupOutbox.objects.all()):
        logger.error(
            "gave up %s for traces %s of project %s after %d attempts that ended badly",
            job.task_name,
            job.trace_pks,
            job.project_id,
            MAX_ATTEMPTS,
        )
        job.delete()
    sent = 0
    names = sorted(set(FollowupOutbox.objects.values_list("task_name", flat=True).distinct()))
    for name in names:
        waiting = waiting_messages(_queue(name))
        with transaction.atomic():
            jobs = lost(FollowupOutbox.objects.filter(task_name=name), waiting=waiting, limit=limit - sent)
            done = followups_send(jobs)
            requeued(FollowupOutbox.objects.filter(pk__in=[job.pk for job in jobs[:done]]))
        sent += done
        if done < len(jobs) or sent >= limit:  # the broker refused, or this run's share is used
            break
    return sent
