"""Single-run schedules (sre4ai_web/beat.py): a task sent by beat runs one copy at a time, whichever process or host
runs it; a second copy exits at once without doing the work. Calls that are not from beat never skip."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client

from evals.models import DriftRun
from evals.tasks import drift_schedule
from rollups import tasks as rollup_tasks
from rollups.models import Granularity, TrafficRollup
from rollups.services import dirty_process
from sre4ai_web import beat
from sre4ai_web.beat import BEAT_HEADER, single_run
from sre4ai_web.celery import app
from tests import ROOT
from tests.conftest import Tenant, broker_purge, database_url
from tests.processes import stop, wait_for
from traces.models import DirtyBucket

FROM_BEAT = {BEAT_HEADER: "1"}


def send_trace(tenant: Tenant, minute: int = 0) -> None:
    start = (datetime.now(UTC) - timedelta(hours=1)).replace(second=0, microsecond=0) + timedelta(minutes=minute)
    trace = {"service": "bot", "spans": [{"name": "chat", "kind": "llm", "start_time": start.isoformat(),
                                          "end_time": (start + timedelta(seconds=1)).isoformat()}]}  # fmt: skip
    response = Client().post("/api/v1/traces", data=json.dumps({"traces": [trace]}), content_type="application/json",
                             headers=tenant.bearer)  # fmt: skip
    assert response.status_code == 200, response.content


def in_thread(target: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(target())
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


def test_every_beat_entry_is_sent_as_a_single_run_and_keys_do_not_collide() -> None:
    app.loader.import_default_modules()  # every app's tasks module, as a worker does
    schedule = app.conf.beat_schedule
    assert schedule, "no beat schedule"
    assert all(entry["options"]["headers"] == FROM_BEAT for entry in schedule.values())
    names = {entry["task"] for entry in schedule.values()}
    assert len({beat.lock_key(name) for name in names}) == len(names)
    for name in names:
        assert isinstance(app.tasks[name], beat.SingleRunTask), name


@pytest.mark.django_db(transaction=True)
def test_two_copies_of_a_beat_task_at_once_do_the_work_once(tenant: Tenant, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two beats send the rollup task at the same moment: the first copy recomputes, the second exits at once."""
    send_trace(tenant)
    started, release = threading.Event(), threading.Event()
    calls: list[str] = []

    def slow_dirty_process(deadline: float | None = None) -> int:
        calls.append(threading.current_thread().name)
        started.set()
        assert release.wait(30)
        return dirty_process(deadline=deadline)

    monkeypatch.setattr(rollup_tasks, "dirty_process", slow_dirty_process)
    first, first_out = in_thread(lambda: rollup_tasks.process_dirty.apply(headers=FROM_BEAT).get())
    assert started.wait(30)
    began = time.monotonic()
    second, second_out = in_thread(lambda: rollup_tasks.process_dirty.apply(headers=FROM_BEAT).get())
    second.join(30)
    assert second_out == [None] and time.monotonic() - began < 5  # exited at once, without working
    assert len(calls) == 1 and DirtyBucket.objects.exists()
    release.set()
    first.join(30)
    assert first_out == [1]
    assert not DirtyBucket.objects.exists()
    # Once the first copy is done the next tick runs again.
    send_trace(tenant, minute=1)
    assert rollup_tasks.process_dirty.apply(headers=FROM_BEAT).get() == 1


@pytest.mark.django_db(transaction=True)
def test_calls_that_are_not_from_beat_never_wait_or_skip(tenant: Tenant) -> None:
    send_trace(tenant)
    with single_run("rollups.tasks.process_dirty") as held:
        assert held
        thread, out = in_thread(lambda: rollup_tasks.process_dirty.apply().get())  # e.g. queued after a commit
        thread.join(30)
        assert out == [1]
        thread, out = in_thread(lambda: rollup_tasks.process_dirty.apply(headers=FROM_BEAT).get())
        thread.join(30)
        assert out == [None]


@pytest.mark.django_db(transaction=True)
def test_one_lock_per_task_free_again_once_released() -> None:
    def try_lock(name: str) -> bool:
        with single_run(name) as held:
            return held

    with single_run("a") as held:
        assert held
        for name, free in (("a", False), ("b", True)):
            thread, out = in_thread(lambda name=name: try_lock(name))  # type: ignore[misc]
            thread.join(10)
            assert out == [free], name
    thread, out = in_thread(lambda: try_lock("a"))
    thread.join(10)
    assert out == [True]


def start_logging_worker(name: str) -> tuple[subprocess.Popen[str], list[str]]:
    """A real worker on the backfill queue (where the rollup task goes) whose INFO log lines are collected."""
    env = {**os.environ, "DATABASE_URL": database_url(), "CELERY_BROKER_URL": settings.CELERY_BROKER_URL}
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "sre4ai_web", "worker", "-n", f"{name}@%h", "-Q", "backfill",
         "--pool", "solo", "--loglevel", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(worker.stderr.readline, "")), daemon=True).start()  # type: ignore[union-attr]
    return worker, lines


@pytest.mark.django_db(transaction=True)
def test_a_worker_process_skips_a_beat_copy_while_another_host_holds_the_task(tenant: Tenant) -> None:
    """Through the broker and a real worker: the header travels with beat's message, and the lock is shared across
    processes (PostgreSQL's advisory lock, or the lock file on the embedded default)."""
    broker_purge()
    send_trace(tenant)
    worker, log = start_logging_worker("beatcopy")
    try:
        with single_run("rollups.tasks.process_dirty") as held:  # "the other host" runs it now
            assert held
            rollup_tasks.process_dirty.apply_async(headers=FROM_BEAT)
            wait_for(lambda: any("rollups.tasks.process_dirty is already running" in line for line in log), 90,
                     "the worker to skip the copy")  # fmt: skip
            assert DirtyBucket.objects.exists()
            assert not TrafficRollup.objects.exists()
        rollup_tasks.process_dirty.apply_async(headers=FROM_BEAT)
        wait_for(lambda: not DirtyBucket.objects.exists(), 60, "the next beat copy to recompute")
        assert TrafficRollup.objects.get(granularity=Granularity.MINUTE, dimension="").traces == 1
    finally:
        stop(worker)  # type: ignore[arg-type]
        broker_purge()


@pytest.mark.django_db
def test_a_second_beat_later_in_the_hour_starts_no_second_drift_run(tenant: Tenant) -> None:
    send_trace(tenant)
    dirty_process()
    assert drift_schedule() == 1
    assert drift_schedule() == 0  # the other beat's tick, minutes later
    DriftRun.objects.update(created_at=datetime.now(UTC) - timedelta(minutes=31))
    assert drift_schedule() == 1  # the next hour's
    assert DriftRun.objects.count() == 2
