"""Helpers shared by the benchmark scripts: PostgreSQL URLs, a snapshot of the source tree, machine facts."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import psycopg

REPO = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_BASE_URL = PG_ADMIN_URL.rsplit("/", 1)[0]
# The benchmarks' own Redis database: ingest enqueues follow-up (scoring) tasks there, which no worker
# consumes during a benchmark; flush_broker() empties it afterwards.
BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/14")
SKIP = (".git", ".venv", "var", "staticfiles", "node_modules", ".mypy_cache", ".ruff_cache", ".pytest_cache")


def snapshot(dest: Path, source: str = "worktree") -> Path:
    """A copy of the code to run, so edits made by others during a run do not change it.

    ``worktree`` copies the working tree as it is (without the venv, data and caches); any other value
    is a git revision (e.g. ``HEAD``) exported with ``git archive`` (read-only: the repository is not
    changed).
    """
    if source == "worktree":
        shutil.copytree(REPO, dest, ignore=shutil.ignore_patterns(*SKIP, "__pycache__"))
        return dest
    archive = subprocess.run(["git", "archive", "--format=tar", source], cwd=REPO, capture_output=True, check=True)
    dest.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def flush_broker() -> None:
    import redis

    redis.Redis.from_url(BROKER_URL).flushdb()


def pg_execute(sql: str, dbname: str = "postgres") -> None:
    with psycopg.connect(f"{PG_BASE_URL}/{dbname}", autocommit=True) as conn:
        conn.execute(sql.encode())


def pg_scalar(sql: str, dbname: str = "postgres") -> Any:
    with psycopg.connect(f"{PG_BASE_URL}/{dbname}", autocommit=True) as conn:
        row = conn.execute(sql.encode()).fetchone()
    return row[0] if row else None


def source_revision(source: str = "worktree") -> str:
    """The commit of the code under test: ``source`` resolved, or HEAD for the working tree (read-only git
    call; uncommitted edits of a working-tree run are not reflected)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD" if source == "worktree" else source],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return "?"
    return out.stdout.strip() or "?"


def machine(source: str = "worktree") -> dict[str, Any]:
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    return {
        "cpu": cpu,
        "nproc": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "postgresql": pg_scalar("SHOW server_version"),
        "shared_buffers": pg_scalar("SHOW shared_buffers"),
        "python": sys.version.split()[0],
        "source_revision": source_revision(source),
        "loadavg_before": Path("/proc/loadavg").read_text().split()[:3],
    }
