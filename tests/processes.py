"""Processes a test starts as scripts/run.sh would: a Celery worker on the test database and broker, and the
helpers to stop it, wait for what it does and post OTLP to a live server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings

from tests import ROOT
from tests import otlp_build as ob
from tests.conftest import Tenant, broker_purge, database_url

QUEUES = ("scoring", "judge", "backfill", "celery", "probes", "notify")


def start_worker(
    name: str, visibility_timeout: int = 3600, queues: tuple[str, ...] = QUEUES, **env_vars: str
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "SRE4AI_BROKER_VISIBILITY_TIMEOUT": str(visibility_timeout),
        **env_vars,
    }
    # The worker's log goes to a file under the var directory (a pipe nobody reads would stall a chatty worker).
    Path(settings.VAR_DIR).mkdir(parents=True, exist_ok=True)
    with open(Path(settings.VAR_DIR) / f"worker-{name}.log", "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "sre4ai_web", "worker", "-n", f"{name}@%h", "-Q", ",".join(queues),
             "--pool", "solo", "--loglevel", "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True,
        )  # fmt: skip


def stop(worker: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if worker.poll() is None:
        os.killpg(worker.pid, sig)
        worker.wait(timeout=30)


@pytest.fixture
def clean_queues() -> Iterator[None]:
    broker_purge()  # messages of earlier tests name rows that no longer exist
    yield
    broker_purge()


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def post_otlp(live_server: Any, tenant: Tenant, spans: list) -> None:
    body = ob.request(spans, resource={"service.name": "support-bot"}).SerializeToString()
    response = httpx.post(f"{live_server.url}/v1/traces", content=body, timeout=30,
                             headers={**tenant.bearer, "Content-Type": "application/x-protobuf"})  # fmt: skip
    assert response.status_code == 200, response.text
