"""Retention sweep: how fast expired raw rows go, how long each batch holds its transaction, and what ingest sees
meanwhile.

Usage (from the repository root):

    .venv/bin/python bench/retention_sweep.py --traces 20000

In a fresh PostgreSQL database ``<BENCH_DB_PREFIX>_retention`` (default prefix ``sre4ai_bench``), in this process:
ingests ``--traces`` RAG traces (bench/payload.py, distinct texts: three spans and three documents each) through
the OTLP view, moves them 40 days back (past the default raw retention of 30 days), then runs
``accounts.retention.retention_sweep`` while a second thread keeps ingesting fresh 100-span requests. Reports the
rows removed per table, rows per second, each batch's time (one transaction each) and the ingest latency before
and during the sweep. The ingest thread shares this process (and its GIL) with the sweep, so its latency is an
upper bound of what a separate web node would see.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BROKER_URL, PG_ADMIN_URL, PG_BASE_URL, flush_broker
from payload import request_stream

REPO = Path(__file__).resolve().parent.parent
DB = os.environ.get("BENCH_DB_PREFIX", "sre4ai_bench") + "_retention"


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))] if ordered else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traces", type=int, default=20000)
    parser.add_argument("--baseline-seconds", type=float, default=15.0, help="Ingest alone before the sweep.")
    args = parser.parse_args()

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB}")
    var_dir = tempfile.mkdtemp(prefix="sre4ai-bench-retention-")
    os.environ.update(
        {
            "DATABASE_URL": f"{PG_BASE_URL}/{DB}",
            "DJANGO_SETTINGS_MODULE": "sre4ai_web.settings",
            "DJANGO_DEBUG": "0",
            "SRE4AI_VAR_DIR": var_dir,
            "LOG_LEVEL": "WARNING",
            "CELERY_BROKER_URL": BROKER_URL,
        }
    )
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=REPO, check=True)
        sys.path.insert(0, str(REPO))
        import django

        django.setup()
        run(args)
    finally:
        flush_broker()
        shutil.rmtree(var_dir, ignore_errors=True)
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    return 0


def run(args: argparse.Namespace) -> None:
    from django.db import connection
    from django.test import RequestFactory

    from accounts import retention
    from accounts.services import api_key_issue, project_create
    from traces.api import otlp_traces

    project = project_create(slug="bench", name="retention")
    secret = api_key_issue(project=project, name="bench").secret_key
    factory = RequestFactory()

    def send(body: bytes) -> float:
        started = time.perf_counter()
        request = factory.post(
            "/v1/traces",
            data=body,
            content_type="application/x-protobuf",
            headers={"Authorization": f"Bearer {secret}"},
        )
        response = otlp_traces(request)
        assert response.status_code == 200, response.content[:300]
        return (time.perf_counter() - started) * 1000

    stream = request_stream(11)
    started = time.monotonic()
    spans = 0
    while spans < args.traces * 3:
        body, count = next(stream)
        send(body)
        spans += count
    print(f"loaded {spans:,} spans in {time.monotonic() - started:.0f} s (load {os.getloadavg()[0]:.1f})", flush=True)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE traces_trace SET start_time = start_time - interval '40 days'")
        cursor.execute(
            "SELECT pg_total_relation_size('traces_span') + pg_total_relation_size('traces_trace') + "
            "pg_total_relation_size('traces_retrieveddocument')"
        )
        size = cursor.fetchone()[0]
        cursor.execute("VACUUM ANALYZE traces_trace")
    print(f"span, trace and document tables with their indexes: {size / 1e6:.0f} MB, {size / spans:,.0f} bytes a span")

    latencies: dict[str, list[float]] = {"before": [], "during": []}
    phase = {"name": "before"}
    stop = threading.Event()

    def keep_ingesting() -> None:
        fresh = request_stream(12)
        try:
            while not stop.is_set():
                latencies[phase["name"]].append(send(next(fresh)[0]))
        finally:
            connection.close()

    batches: list[float] = []
    real_batch = retention._batch_remove

    def timed(target: retention.Target) -> object:
        began = time.perf_counter()
        try:
            return real_batch(target)
        finally:
            batches.append((time.perf_counter() - began) * 1000)

    retention._batch_remove = timed  # type: ignore[assignment]
    ingest = threading.Thread(target=keep_ingesting)
    ingest.start()
    time.sleep(args.baseline_seconds)
    phase["name"] = "during"
    began = time.monotonic()
    result = retention.retention_sweep(seconds=3600)
    took = time.monotonic() - began
    stop.set()
    ingest.join()

    print(f"\nsweep: {took:.1f} s, {'finished' if result.finished else 'NOT finished'}, load {os.getloadavg()[0]:.1f}")
    for (_, table), removed in sorted(result.removed.items(), key=lambda item: -item[1].rows):
        print(f"  {table:28} {removed.rows:>9,} rows  {removed.rows / took:>9,.0f} rows/s")
    print(f"  {'all':28} {result.rows:>9,} rows  {result.rows / took:>9,.0f} rows/s")
    useful = [ms for ms in batches if ms > 0]
    print(
        f"batches (one transaction each): {len(useful)}, median {statistics.median(useful):.0f} ms, "
        f"p95 {percentile(useful, 95):.0f} ms, max {max(useful):.0f} ms"
    )
    for name, values in latencies.items():
        print(
            f"ingest of 100 spans {name} the sweep: {len(values)} requests, median {statistics.median(values):.0f} "
            f"ms, p99 {percentile(values, 99):.0f} ms"
        )


if __name__ == "__main__":
    sys.exit(main())
