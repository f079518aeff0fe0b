"""Figures that say when to add a node (docs/operations.md), for /metrics: how many messages wait in each queue, how
long each beat task's last run took and when it finished.

Beat runs are kept in the "shared" cache: Redis when the broker is Redis, so every process (the worker that ran
the task, the web process that answers the scrape) sees them; on the embedded default the cache is the process's
own memory and a web process knows none (the figures are then left out, not shown as zero).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.cache import caches

logger = logging.getLogger(__name__)

RUNS_KEY = "beat-runs"
# kombu's Redis transport keeps a queue's messages in one list per priority step: "queue", "queue\x06\x163", ...
REDIS_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")


@dataclass(frozen=True)
class BeatRun:
    task: str
    seconds: float  # how long the last run took
    finished_at: float  # Unix time


def beat_run_record(task: str, seconds: float) -> None:
    """Called when a beat task's run ends (sre4ai_web/beat.py). Never fails the task."""
    try:
        cache = caches["shared"]
        runs = cache.get(RUNS_KEY) or {}
        runs[task] = (round(seconds, 3), time.time())
        cache.set(RUNS_KEY, runs, timeout=None)
    except Exception:
        logger.warning("could not record the run of %s", task, exc_info=True)


def beat_runs() -> list[BeatRun]:
    try:
        runs = caches["shared"].get(RUNS_KEY) or {}
    except Exception:
        logger.warning("beat runs unknown: the shared cache is unavailable", exc_info=True)
        return []
    return [BeatRun(task, seconds, at) for task, (seconds, at) in sorted(runs.items())]


def queue_depths(queues: list[str]) -> dict[str, int]:
    """Messages waiting in each queue of the broker (not those a worker holds); {} when the broker cannot say."""
    url = settings.CELERY_BROKER_URL
    try:
        if url.startswith(("redis://", "rediss://")):
            import redis

            client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
            with client.pipeline(transaction=False) as pipe:
                for queue in queues:
                    for suffix in REDIS_PRIORITY_SUFFIXES:
                        pipe.llen(queue + suffix)
                lengths = pipe.execute()
            steps = len(REDIS_PRIORITY_SUFFIXES)
            return {queue: sum(lengths[i * steps : (i + 1) * steps]) for i, queue in enumerate(queues)}
        if url.startswith("filesystem://"):
            folder = Path(str(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"]))
            names = [path.name.partition(".")[2] for path in folder.iterdir()]
            return {queue: names.count(f"{queue}.msg") for queue in queues}
    except Exception:
        logger.warning("queue depths unknown: the broker did not answer", exc_info=True)
    return {}
