"""Isolation of the pytest-xdist workers ``make test`` runs the suite on (``-n 2 -p tests.xdist_worker``).

Tests start real processes (gunicorn, Celery workers and beat, the CLI) that share the test run's Redis database,
var directory, static root and, on SQLite, database file. Two workers sharing them would purge each other's queues
and hold each other's beat locks, so each worker gets its own: Redis database N-i for worker i, and a
subdirectory named after the worker for the rest. pytest-django already gives each worker its own PostgreSQL test
database. This module is loaded with ``-p`` so it edits the environment before Django's settings read it; the
processes the tests start inherit it. Outside xdist it does nothing.
"""

from __future__ import annotations

import os
from pathlib import Path


def _isolate(worker: str) -> None:
    index = int(worker.removeprefix("gw"))
    broker = os.environ.get("CELERY_BROKER_URL", "")
    if broker.startswith("redis://"):
        base, _, database = broker.rpartition("/")
        os.environ["CELERY_BROKER_URL"] = f"{base}/{int(database) - index}"
    var_dir = Path(os.environ.get("SRE4AI_VAR_DIR", "var")).absolute() / worker
    var_dir.mkdir(parents=True, exist_ok=True)
    os.environ["SRE4AI_VAR_DIR"] = str(var_dir)
    os.environ["SRE4AI_STATIC_ROOT"] = str(var_dir / "static")
    database_url = os.environ.get("DATABASE_URL", "")
    if database_url.startswith("sqlite:///"):
        os.environ["DATABASE_URL"] = f"sqlite:///{var_dir / Path(database_url.removeprefix('sqlite:///')).name}"


if worker_name := os.environ.get("PYTEST_XDIST_WORKER"):
    _isolate(worker_name)
