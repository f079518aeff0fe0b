"""Claims on job rows (sre4ai_web/lib/claims.py): a job runs at most once at a time whatever the broker delivers,
a worker that died lets its claim lapse, and beat finds the jobs to send again. On PostgreSQL and on SQLite.
The faults themselves, with real workers, are in tests/ops/test_faults.py."""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.test import Client
from django.utils import timezone

from evals import services as eval_services
from evals.models import EvalRun, RunStatus, Score
from evals.services import evaluator_config_set
from evals.tasks import judge_traces, rescore_step, score_traces
from sre4ai_web.checks import recovery_timing_check
from sre4ai_web.lib.claims import MAX_ATTEMPTS, claimed, lost
from tests import fake_chat_completions
from tests.conftest import Tenant
from tests.fake_chat_completions import KEY_ENV, FakeLLM, Reply
from tests.scoring_data import GROUNDED, INVENTED, rag_spans, send
from traces import followups
from traces.models import FollowupOutbox, Trace

# Shared fixtures: pytest finds a fixture by its name in the test's module.
llm = fake_chat_completions.llm

SECOND = timedelta(seconds=1)


def job_of(client: Client, tenant: Tenant, n: int = 2) -> FollowupOutbox:
    """A scoring job as ingest leaves it (the test's transaction never commits, so no message is sent)."""
    for answer in [GROUNDED, INVENTED][:n]:
        send(client, tenant, rag_spans(answer))
    FollowupOutbox.objects.exclude(pk=FollowupOutbox.objects.order_by("pk").first().pk).delete()  # type: ignore[union-attr]
    job = FollowupOutbox.objects.get()
    job.trace_pks = sorted(Trace.objects.values_list("pk", flat=True))
    job.save()
    return job


@pytest.mark.django_db
def test_a_claim_is_held_by_one_worker_at_a_time_and_released_after(client: Client, tenant: Tenant) -> None:
    job = job_of(client, tenant)
    rows = FollowupOutbox.objects.all()
    with claimed(rows, job.pk) as claim:
        assert claim is not None
        job.refresh_from_db()
        assert job.claimed_until == claim.until > timezone.now() and job.attempts == 1
        with claimed(rows, job.pk) as second:
            assert second is None  # a second copy of the message returns at once
    job.refresh_from_db()
    assert (job.claimed_until, job.attempts) == (None, 0)  # ended well
    assert job.due_at > timezone.now() + timedelta(seconds=25)  # overdue only after a new grace period
    with claimed(rows, job.pk + 1000) as missing:
        assert missing is None
    with claimed(FollowupOutbox.objects.exclude(task_name=job.task_name), job.pk) as not_in_a_state_to_run:
        assert not_in_a_state_to_run is None


@pytest.mark.django_db
def test_a_claim_that_ends_badly_counts_an_attempt_and_a_retry_moves_the_job_due(
    client: Client, tenant: Tenant
) -> None:
    job = job_of(client, tenant)

    def failing_task() -> None:
        with claimed(FollowupOutbox.objects.all(), job.pk) as claim:
            assert claim is not None
            claim.retry_after(20)
            raise RuntimeError("an evaluator's endpoint is down")

    with pytest.raises(RuntimeError):
        failing_task()
    job.refresh_from_db()
    assert (job.claimed_until, job.attempts) == (None, 1)
    assert job.due_at > timezone.now() + timedelta(seconds=45)  # left to the retry: 20 s, plus the grace period


@pytest.mark.django_db
def test_a_lapsed_claim_can_be_taken_over(client: Client, tenant: Tenant) -> None:
    job = job_of(client, tenant)
    FollowupOutbox.objects.filter(pk=job.pk).update(claimed_until=timezone.now() - SECOND, attempts=1)  # died
    with claimed(FollowupOutbox.objects.all(), job.pk) as claim:
        assert claim is not None
        assert FollowupOutbox.objects.get().attempts == 2


@pytest.mark.django_db(transaction=True)
def test_a_running_claim_is_renewed_and_its_holder_learns_when_another_takes_it(
    client: Client, tenant: Tenant, settings: Any
) -> None:
    settings.SRE4AI_CLAIM_SECONDS = 0.6  # renewed every 0.2 s
    job = job_of(client, tenant)
    rows = FollowupOutbox.objects.filter(pk=job.pk)
    with claimed(rows, job.pk) as claim:
        assert claim is not None
        first = claim.until
        time.sleep(0.9)
        assert claim.until > first and not claim.lost.is_set()  # the task runs longer than a claim lasts
        assert rows.get().claimed_until == claim.until
        theirs = timezone.now() + timedelta(minutes=1)
        rows.update(claimed_until=theirs)  # as if ours had lapsed while the database was away, and was taken
        deadline = time.monotonic() + 5
        while not claim.lost.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert claim.lost.is_set()
    assert rows.get().claimed_until == theirs  # our release leaves their claim alone


@pytest.mark.django_db
def test_lost_jobs_are_the_lapsed_ones_and_the_overdue_ones_missing_a_message(client: Client, tenant: Tenant) -> None:
    job = job_of(client, tenant)
    now = timezone.now()
    states: dict[str, dict[str, Any]] = {
        "died": {"claimed_until": now - SECOND},
        "running": {"claimed_until": now + timedelta(seconds=20)},
        "overdue": {"due_at": now - SECOND},
        "waiting": {"due_at": now + timedelta(seconds=20)},
        "long overdue": {"due_at": now - timedelta(minutes=11)},
        "out of attempts": {"claimed_until": now - SECOND, "attempts": MAX_ATTEMPTS},  # beat gives it up
    }
    names = {}
    for name, fields in states.items():
        row = FollowupOutbox.objects.create(project=tenant.project, task_name="t", trace_pks=job.trace_pks, **fields)
        names[row.pk] = name
    rows = FollowupOutbox.objects.filter(task_name="t")

    def chosen(waiting: int | None) -> set[str]:
        with transaction.atomic():
            return {names[row.pk] for row in lost(rows, waiting=waiting, limit=10)}

    assert chosen(0) == {"died", "overdue", "long overdue"}  # no message waits for them
    assert chosen(None) == {"died", "overdue", "long overdue"}  # the broker cannot say: send them
    # Three messages wait in the queue, one for each unclaimed job (a backlog): only the dead worker's job and the
    # one overdue for long are sent again.
    assert chosen(3) == {"died", "long overdue"}
    assert chosen(2) == {"died", "overdue", "long overdue"}  # one message is missing
    with transaction.atomic():
        assert [names[r.pk] for r in lost(rows, waiting=0, limit=1)] == ["died"]  # oldest first, up to the limit


@pytest.mark.django_db
def test_a_job_runs_once_however_often_its_message_comes(client: Client, tenant: Tenant) -> None:
    job = job_of(client, tenant)
    assert score_traces(tenant.project.pk, job.trace_pks, followup=job.pk) > 0
    assert not FollowupOutbox.objects.exists()  # done: deleted
    written = sorted(Score.objects.values_list("key", "updated_at"))
    assert {k.split(":")[1] for k, _ in written} == {str(pk) for pk in job.trace_pks}
    assert score_traces(tenant.project.pk, job.trace_pks, followup=job.pk) == 0  # a second copy does nothing
    assert sorted(Score.objects.values_list("key", "updated_at")) == written


@pytest.mark.django_db
def test_a_job_another_worker_holds_is_left_to_it(client: Client, tenant: Tenant) -> None:
    job = job_of(client, tenant)
    FollowupOutbox.objects.filter(pk=job.pk).update(claimed_until=timezone.now() + timedelta(seconds=20))
    assert score_traces(tenant.project.pk, job.trace_pks, followup=job.pk) == 0
    assert not Score.objects.exists() and FollowupOutbox.objects.filter(pk=job.pk).exists()


@pytest.mark.django_db
def test_a_job_that_keeps_killing_its_worker_is_given_up(
    client: Client, tenant: Tenant, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = job_of(client, tenant)
    FollowupOutbox.objects.filter(pk=job.pk).update(attempts=MAX_ATTEMPTS, claimed_until=timezone.now() - SECOND)
    assert score_traces(tenant.project.pk, job.trace_pks, followup=job.pk) == 0  # not claimed again
    assert not Score.objects.exists()
    monkeypatch.setattr(followups.celery_app, "send_task", lambda *args, **kwargs: pytest.fail("sent again"))
    with caplog.at_level(logging.ERROR):
        assert followups.followups_requeue() == 0  # beat gives it up instead
    assert not FollowupOutbox.objects.exists()
    assert f"after {MAX_ATTEMPTS} attempts" in caplog.text


@pytest.mark.django_db
def test_a_message_without_a_job_becomes_one(client: Client, tenant: Tenant) -> None:
    job = job_of(client, tenant)
    FollowupOutbox.objects.all().delete()
    assert score_traces(tenant.project.pk, job.trace_pks) == 0  # a message queued by the previous version
    made = FollowupOutbox.objects.get()
    assert (made.task_name, made.trace_pks) == ("evals.tasks.score_traces", job.trace_pks)


@pytest.mark.django_db
def test_scoring_adds_the_judges_job_once(
    client: Client,
    tenant: Tenant,
    llm: FakeLLM,
    settings: Any,
) -> None:
    settings.SRE4AI_OUTBOUND_ENV_ALLOW = [KEY_ENV]
    evaluator_config_set(project=tenant.project, service="", evaluator="judge", enabled=True, sampling_rate=1.0,
                         params={"base_url": llm.base_url, "api_key_env": KEY_ENV, "requests_per_minute": None,
                                 "max_retries": 0}, user=None)  # fmt: skip
    job = job_of(client, tenant, n=2)
    score_traces(tenant.project.pk, job.trace_pks, followup=job.pk)
    judge = FollowupOutbox.objects.get()
    assert (judge.task_name, judge.trace_pks) == ("evals.tasks.judge_traces", job.trace_pks)
    score_traces(tenant.project.pk, job.trace_pks, followup=job.pk)  # a late copy of the scoring message
    assert FollowupOutbox.objects.count() == 1

    # The judge's endpoint fails on the second trace: the first is ticked off, the retry asks only the second.
    llm.replies = [Reply(), Reply(status=500)]
    before = timezone.now()
    with pytest.raises(Exception, match="500"):  # called directly, the task's retry raises the error
        judge_traces(tenant.project.pk, judge.trace_pks, followup=judge.pk)
    judge.refresh_from_db()
    assert judge.trace_pks == job.trace_pks[1:] and (judge.claimed_until, judge.attempts) == (None, 1)
    # Left to the retry's countdown (2 s for a first retry) beyond the grace period: bounded from the moment before
    # the call, so a slow machine cannot make the comparison flaky.
    assert judge.due_at >= before + timedelta(seconds=settings.SRE4AI_CLAIM_GRACE_SECONDS + 2)
    assert judge_traces(tenant.project.pk, judge.trace_pks, followup=judge.pk) == 1
    assert len(llm.requests) == 3  # once per trace, plus the one that failed
    assert not FollowupOutbox.objects.exists()
    assert sorted(Score.objects.filter(evaluator="judge").values_list("trace_id", flat=True)) == job.trace_pks


@pytest.mark.django_db
def test_a_rescoring_step_is_claimed_and_a_run_that_keeps_failing_is_given_up(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(eval_services, "waiting_messages", lambda queue: 0)
    now = timezone.now()
    run = eval_services.eval_run_create(project=tenant.project, service="", since=now - timedelta(days=1),
                                        until=now, evaluators=["grounding"], user=None)  # fmt: skip
    EvalRun.objects.filter(pk=run.pk).update(claimed_until=now + timedelta(seconds=20))
    rescore_step(run.pk)  # another worker is on it
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED
    EvalRun.objects.filter(pk=run.pk).update(claimed_until=now - SECOND, attempts=MAX_ATTEMPTS)
    rescore_step(run.pk)  # out of attempts: not claimed again
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED
    assert eval_services.runs_requeue() == 0  # beat fails it instead of sending it again
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and f"Given up after {MAX_ATTEMPTS} attempts" in run.error


@pytest.mark.django_db
def test_beat_sends_again_the_runs_whose_worker_died(tenant: Tenant, monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[tuple[str, list[int]]] = []
    monkeypatch.setattr(eval_services.celery_app, "send_task", lambda name, args: sent.append((name, args)))
    monkeypatch.setattr(eval_services, "waiting_messages", lambda queue: 0)
    now = timezone.now()
    day = {"since": now - timedelta(days=1), "until": now}
    runs = [
        eval_services.eval_run_create(project=tenant.project, service="", evaluators=[], user=None, **day)
        for _ in range(3)
    ]
    EvalRun.objects.filter(pk=runs[0].pk).update(status=RunStatus.RUNNING, claimed_until=now - SECOND)  # died
    EvalRun.objects.filter(pk=runs[1].pk).update(status=RunStatus.RUNNING, claimed_until=now + SECOND * 20)
    EvalRun.objects.filter(pk=runs[2].pk).update(status=RunStatus.DONE, claimed_until=now - SECOND)
    assert eval_services.runs_requeue() == 1
    assert sent == [("evals.tasks.rescore_step", [runs[0].pk])]
    died = EvalRun.objects.get(pk=runs[0].pk)
    assert died.claimed_until is None and died.due_at > now  # not sent again before a new grace period
    assert eval_services.runs_requeue() == 0


def test_a_visibility_timeout_shorter_than_a_claim_is_reported(settings: Any) -> None:
    """Redis's redelivered copy must find the dead worker's claim lapsed, or it returns without doing the job."""
    assert recovery_timing_check(None) == []  # the defaults: 90 s and 30 s (no timeout on the filesystem)
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 20}
    assert [w.id for w in recovery_timing_check(None)] == ["sre4ai.W002"]
