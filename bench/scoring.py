"""End-to-end scoring throughput of one Celery worker, and the cost of each evaluator.

1. Creates a fresh PostgreSQL database, loads N demo traces through the OTLP handler (``seed_demo``),
   which queues their scoring on Redis exactly as live ingest does.
2. Starts ONE worker (``--pool solo``, one process) on the ``scoring`` queue and measures the time until
   every trace has its scores: traces per second scored end to end (load, evaluate, upsert).
3. In-process, times each enabled evaluator on the same traces: items per second per core.

    .venv/bin/python bench/scoring.py --traces 3000 [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PG_BASE_URL, REPO, machine, pg_execute

DB = "sre4ai_bench_scoring"
BROKER = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/9")


def env() -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": f"{PG_BASE_URL}/{DB}",
        "CELERY_BROKER_URL": BROKER,
        "DJANGO_SETTINGS_MODULE": "sre4ai_web.settings",
    }


def manage(*args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=env(), check=True)


def count_scored() -> int:
    import psycopg

    with psycopg.connect(f"{PG_BASE_URL}/{DB}") as conn:
        row = conn.execute("SELECT count(DISTINCT trace_id) FROM evals_score").fetchone()
    return int(row[0]) if row else 0


def worker_throughput(total: int, timeout: float) -> dict[str, Any]:
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "sre4ai_web",
            "worker",
            "-Q",
            "scoring",
            "--pool",
            "solo",
            "--loglevel",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        cwd=REPO,
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    start = time.monotonic()
    first = None
    try:
        while time.monotonic() - start < timeout:
            scored = count_scored()
            if scored and first is None:
                first = time.monotonic()
            if scored >= total:
                break
            time.sleep(0.2)
        elapsed = time.monotonic() - (first or start)
        scored = count_scored()
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    return {"traces": scored, "seconds": round(elapsed, 2), "traces_per_second": round(scored / elapsed, 1)}


def evaluator_costs(limit: int) -> list[dict[str, Any]]:
    os.environ.update(env())
    sys.path.insert(0, str(REPO))  # this file's directory, not the repository, is on the path
    import django

    django.setup()
    from evals.evaluators.registry import REGISTRY
    from evals.selectors import eval_item, traces_with_spans
    from traces.models import Trace

    pks = list(Trace.objects.order_by("pk").values_list("pk", flat=True)[:limit])
    project_id = Trace.objects.values_list("project_id", flat=True).first()
    items = [eval_item(t, list(t.spans.all())) for t in traces_with_spans(project_id=project_id or 0, trace_pks=pks)]
    rows = []
    for name, cls in REGISTRY.items():
        if not cls.default_enabled:
            continue
        evaluator = cls.from_config({})
        started = time.perf_counter()
        applied = sum(1 for item in items if evaluator.evaluate(item) is not None)
        seconds = time.perf_counter() - started
        rows.append(
            {
                "evaluator": name,
                "items": len(items),
                "applied": applied,
                "items_per_second": round(len(items) / seconds, 1),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traces", type=int, default=3000)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    pg_execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    pg_execute(f"CREATE DATABASE {DB}")
    redis.Redis.from_url(BROKER).flushdb()
    manage("migrate", "-v0")
    started = time.monotonic()
    manage("seed_demo", "--traces", str(args.traces), "--hours", "24", "-v0")
    load_seconds = time.monotonic() - started
    queued = redis.Redis.from_url(BROKER).llen("scoring")
    result = {
        "machine": machine(),
        "traces": args.traces,
        "tasks_queued": queued,
        "load_seconds": round(load_seconds, 1),
        "worker": worker_throughput(args.traces, args.timeout),
        "evaluators": evaluator_costs(min(args.traces, 1000)),
    }
    worker = result["worker"]
    print(
        f"one worker (solo pool): {worker['traces']} traces scored in {worker['seconds']} s "
        f"= {worker['traces_per_second']} traces/s ({queued} tasks)"
    )
    print(f"{'evaluator':<18} {'applied':>8} {'items/s/core':>13}")
    for row in result["evaluators"]:
        print(f"{row['evaluator']:<18} {row['applied']:>8} {row['items_per_second']:>13}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    pg_execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")


if __name__ == "__main__":
    main()
