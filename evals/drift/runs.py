"""Drift runs: create, execute (gather both windows, test every signal, correct for multiple tests, store)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from accounts.models import Project
from evals.drift import stats
from evals.drift.signals import gather
from evals.models import DriftRun, RunStatus
from sre4ai_web.lib.queue import enqueue_on_commit

CURRENT = timedelta(hours=24)
BASELINE = timedelta(days=7)


def drift_run_create(
    *,
    project: Project,
    service: str,
    now: datetime | None = None,
    current: timedelta = CURRENT,
    baseline: timedelta = BASELINE,
    trigger: str = "schedule",
    user: User | None = None,
) -> DriftRun:
    """Defaults: the last 24 h against the 7 days before them."""
    until = now or timezone.now()
    return DriftRun.objects.create(
        project=project,
        service=service,
        current_since=until - current,
        current_until=until,
        baseline_since=until - current - baseline,
        baseline_until=until - current,
        trigger=trigger,
        created_by=user,
    )


@transaction.atomic
def drift_run_start(*, project: Project, service: str, trigger: str = "schedule", user: User | None = None) -> DriftRun:
    """A drift run of the last 24 h against the 7 days before, executed by a worker."""
    run = drift_run_create(project=project, service=service, trigger=trigger, user=user)
    enqueue_on_commit("evals.tasks.drift_run", run.pk)
    return run


def drift_schedule_queue(*, countdown: float) -> None:
    """Queue one drift schedule (what beat runs hourly) ``countdown`` seconds after the current transaction commits:
    the demo loader's way to show drift before beat's first tick."""
    enqueue_on_commit("evals.tasks.drift_schedule", countdown=countdown)


def drift_run_execute(*, run_id: int) -> DriftRun:
    run = DriftRun.objects.get(pk=run_id)
    if run.status not in (RunStatus.QUEUED, RunStatus.RUNNING):
        return run
    DriftRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING)
    base = gather(project_id=run.project_id, service=run.service, since=run.baseline_since, until=run.baseline_until)
    cur = gather(project_id=run.project_id, service=run.service, since=run.current_since, until=run.current_until)
    results: list[tuple[str, stats.DriftResult]] = []
    for signal in sorted(set(base.numeric) | set(cur.numeric)):
        results.append((signal, stats.numeric_drift(base.numeric.get(signal, []), cur.numeric.get(signal, []))))
    for signal in sorted(set(base.categorical) | set(cur.categorical)):
        results.append(
            (signal, stats.categorical_drift(base.categorical.get(signal, []), cur.categorical.get(signal, [])))
        )
    for signal in sorted(set(base.rates) | set(cur.rates)):
        (bh, bt), (ch, ct) = base.rates.get(signal, [0, 0]), cur.rates.get(signal, [0, 0])
        results.append((signal, stats.rate_drift(bh, bt, ch, ct)))
    results.append(("answer text", stats.text_drift(base.texts, cur.texts)))
    # Many signals are tested at once: correct the p-values so one noisy signal does not raise the alarm.
    corrected = stats.apply_correction([r for _, r in results])
    rows: list[dict[str, Any]] = [{"signal": s, **r.to_dict()} for (s, _), r in zip(results, corrected, strict=True)]
    verdicts = {row["verdict"] for row in rows}
    verdict = "drift" if "drift" in verdicts else "no_drift" if "no_drift" in verdicts else "insufficient_data"
    DriftRun.objects.filter(pk=run.pk).update(
        status=RunStatus.DONE, results=rows, verdict=verdict, finished_at=timezone.now()
    )
    run.refresh_from_db()
    return run
