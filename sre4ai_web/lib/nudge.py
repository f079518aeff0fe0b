"""Queue a Celery task that drains an outbox, from a thread of its own, so a request never waits on the broker.

The work itself is already committed in the outbox table (guard.models.GuardRecord) before ``nudge()`` is called;
the task only tells a worker to drain it, and beat runs the same task on a schedule. So a nudge lost (the broker is
down: kombu takes ~6 s to give up on a refused connection; the process exits) only delays the work to beat's next
run. Nudges coalesce: the flag is cleared before the task is queued, and the task reads the outbox after that, so
every row committed before a nudge is seen by a task queued after it. And the task is queued at most once per
``every`` seconds: under load one run drains many rows in one transaction (recording a guard decision costs ~15 ms
of worker CPU alone, ~0.5 ms in a batch of 50), while a lone nudge is still queued at once.
"""

from __future__ import annotations

import logging
import threading
import time

logger = logging.getLogger(__name__)


class Nudger:
    def __init__(self, task_name: str, every: float):
        self.task_name = task_name
        self.every = every
        self._wanted = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def nudge(self) -> None:
        self._wanted.set()
        if self._thread is None or not self._thread.is_alive():  # not started yet, or this is a forked child
            with self._lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(target=self._run, name=f"nudge {self.task_name}", daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        from sre4ai_web.celery import app  # the Celery app imports Django's settings: load it when first needed

        while True:
            self._wanted.wait()
            self._wanted.clear()
            try:
                app.send_task(self.task_name)
            except Exception:
                logger.exception("could not queue %s; beat runs it", self.task_name)
            time.sleep(self.every)
