"""Single-run schedules: a beat task runs one copy at a time, however many beat processes send it.

Exactly one ``celery beat`` should run (docs/operations.md), but a second one is an easy mistake (two hosts with
the same supervisor config, a fail-over that starts a new beat before the old one died). Every message beat sends
carries the header ``sre4ai_beat`` (set on each schedule entry in sre4ai_web/celery.py); a task that receives
one first takes a lock named after the task, and a copy that finds it taken exits at once, doing nothing. Calls
that are not from beat (``dispatch`` queued after a commit, a test calling the function) never wait or skip.

The lock is a PostgreSQL advisory lock of the worker's database session (``pg_try_advisory_lock``): shared by
every host, and released by PostgreSQL when the worker's connection ends, a killed worker included. On SQLite,
the embedded default, every process runs on one machine: an exclusive ``flock`` on a file under
``SRE4AI_VAR_DIR/locks``, released by the kernel when the process ends.

A lock stops two copies running at once; two beats whose ticks are apart still each send their copy. The beat
tasks are written to be harmless when run twice in a row: they work from claims, unique keys or state (dirty
minutes are claimed, a probe slot is claimed once, an alert is recorded once, a notification is claimed), and the
hourly drift schedule skips services that had a scheduled run in the last half hour.
"""

from __future__ import annotations

import fcntl
import logging
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from celery import Task
from django.conf import settings
from django.db import DatabaseError, connection

from sre4ai_web.lib.opsmetrics import beat_run_record

logger = logging.getLogger(__name__)

BEAT_HEADER = "sre4ai_beat"
# First key of the two-key advisory locks (the second is the task's name, hashed): other advisory locks of the
# application use other first keys (slos.services.SLI_HOURS_LOCK = 5171) or the one-key form (per-trace locks).
LOCK_NAMESPACE = 5172


def lock_key(name: str) -> int:
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


@contextmanager
def single_run(name: str) -> Iterator[bool]:
    """Hold the lock named ``name`` while the block runs; yields False (at once) when another process holds it."""
    if connection.vendor == "postgresql":
        with _advisory_lock(name) as held:
            yield held
    else:
        with _file_lock(name) as held:
            yield held


@contextmanager
def _advisory_lock(name: str) -> Iterator[bool]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [LOCK_NAMESPACE, lock_key(name)])
        held = bool(cursor.fetchone()[0])
    try:
        yield held
    finally:
        if held:
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [LOCK_NAMESPACE, lock_key(name)])
            except DatabaseError:  # the session is broken: closing it releases the lock
                connection.close()


@contextmanager
def _file_lock(name: str) -> Iterator[bool]:
    folder = Path(settings.VAR_DIR) / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{name}.lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def mark_schedule(schedule: dict[str, dict[str, Any]]) -> None:
    """Give every entry of a beat schedule the header that makes its task single-run."""
    for entry in schedule.values():
        entry.setdefault("options", {}).setdefault("headers", {})[BEAT_HEADER] = "1"


class SingleRunTask(Task):
    """The application's task class: a message from beat runs only if no other copy of the task is running."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        headers = getattr(self.request, "headers", None) or {}
        if not (headers.get(BEAT_HEADER) or self.request.get(BEAT_HEADER)):
            return super().__call__(*args, **kwargs)
        with single_run(self.name) as held:
            if not held:
                logger.info("%s is already running (two beats?): this copy exits", self.name)
                return None
            started = time.monotonic()
            try:
                return super().__call__(*args, **kwargs)
            finally:
                beat_run_record(self.name, time.monotonic() - started)  # /metrics: how long the tick took
