"""Retention of a whole expired day: dropping its partitions against deleting its rows in batches.

Usage (from the repository root):

    .venv/bin/python bench/retention_drop.py --traces 20000

In a fresh PostgreSQL database ``<BENCH_DB_PREFIX>_retention_drop`` (default prefix ``sre4ai_bench``; the
migrations partition the tables by day), in this process: ingests ``--traces`` RAG traces (bench/payload.py,
distinct texts: three spans and three documents each) dated 40 days ago, all in one day, through the OTLP view,
with two scores per trace; then lowers the project's raw retention to 30 days and runs
``accounts.retention.retention_sweep`` in two ways on the same data, back to back:

1. ``batched``: as without partitions (the drop disabled): the sweep deletes the day's rows ~5,000 spans a
   transaction;
2. ``drop``: the day is loaded again, and the sweep drops its partitions (counting each project's rows first, for
   the record of what was removed, then one DROP TABLE per table).

Reports each run's time, rows and rows per second, and for the drop the time of the counts and of the DROP
statements apart.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import types
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import payload
from common import BROKER_URL, PG_ADMIN_URL, PG_BASE_URL, flush_broker

REPO = Path(__file__).resolve().parent.parent
DB = os.environ.get("BENCH_DB_PREFIX", "sre4ai_bench") + "_retention_drop"
DAY = (datetime.now(UTC) - timedelta(days=40)).replace(hour=12, minute=0, second=0, microsecond=0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traces", type=int, default=20000)
    args = parser.parse_args()

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB}")
    var_dir = tempfile.mkdtemp(prefix="sre4ai-bench-retention-drop-")
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
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=REPO,
            check=True,
            stdout=subprocess.DEVNULL,
        )
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


def load(secret: str, traces: int, seed: int) -> int:
    """Ingest the traces (dated in DAY), give each two scores; returns the spans stored."""
    from django.db import connection
    from django.test import RequestFactory

    from traces.api import otlp_traces

    # bench/payload.py dates spans a few seconds before now: make "now" noon of DAY for it.
    shift = time.time_ns() - int(DAY.timestamp() * 1e9)
    payload.time = types.SimpleNamespace(time_ns=lambda: time.time_ns() - shift)  # type: ignore[assignment]
    factory = RequestFactory()
    stream = payload.request_stream(seed)
    spans = 0
    while spans < traces * 3:
        body, count = next(stream)
        request = factory.post(
            "/v1/traces",
            data=body,
            content_type="application/x-protobuf",
            headers={"Authorization": f"Bearer {secret}"},
        )
        assert otlp_traces(request).status_code == 200
        spans += count
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO evals_score (project_id, trace_id, key, service, trace_start, name, value, label, passed, "
            "explanation, evidence, evaluator, evaluator_version, source, comment, created_at, updated_at, superseded) "
            "SELECT t.project_id, t.id, 'bench:' || t.id || ':' || n, t.service, t.start_time, n, 1, '', true, "
            "'', '{}', n, 1, 'evaluator', '', now(), now(), false FROM traces_trace t, unnest(ARRAY['a', 'b']) AS n"
        )
        cursor.execute("DELETE FROM traces_followupoutbox")  # no worker here: scoring is not what is measured
        cursor.execute("VACUUM ANALYZE")
    return spans


def run(args: argparse.Namespace) -> None:
    from django.db import connection

    from accounts import retention
    from accounts.models import DataRemoval
    from accounts.services import api_key_issue, project_create, project_retention_set
    from sre4ai_web.lib import partitions

    project = project_create(slug="bench", name="retention drop")
    secret = api_key_issue(project=project, name="bench").secret_key
    results: dict[str, float] = {}
    timings = {"count": 0.0, "drop": 0.0}
    real_count, real_drop = partitions._per_project, retention._partitions_drop

    def counted(spec: partitions.PartitionedTable, partition: partitions.Partition) -> list[Any]:
        began = time.perf_counter()
        try:
            return real_count(spec, partition)
        finally:
            timings["count"] += time.perf_counter() - began

    real_partitions_drop = retention.partitions_drop

    def dropping(group: str, before: datetime) -> list[partitions.Dropped]:
        began = time.perf_counter()
        try:
            return real_partitions_drop(group, before)
        finally:
            timings["drop"] += time.perf_counter() - began

    partitions._per_project = counted
    retention.partitions_drop = dropping
    for mode in ("batched", "drop"):
        project_retention_set(project=project, raw_days=60, aggregate_days=400)
        began = time.monotonic()
        spans = load(secret, args.traces, seed=21)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c WHERE c.relname LIKE %s",
                [f"%_p{DAY:%Y%m%d}"],
            )
            size = int(cursor.fetchone()[0] or 0)
        print(
            f"{mode}: loaded {spans:,} spans of {DAY:%Y-%m-%d} in {time.monotonic() - began:.0f} s; "
            f"the day's partitions with their indexes: {size / 1e6:.0f} MB",
            flush=True,
        )
        project_retention_set(project=project, raw_days=30, aggregate_days=400)
        # Batched: the sweep as without partitions (no drop, every project deleted up to its cutoff).
        retention._partitions_drop = real_drop if mode == "drop" else lambda *a: (None, None)
        DataRemoval.objects.all().delete()
        timings.update(count=0.0, drop=0.0)
        began = time.perf_counter()
        result = retention.retention_sweep(seconds=3600)
        took = time.perf_counter() - began
        assert result.finished
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM traces_span")
            assert cursor.fetchone()[0] == 0, "the day's spans are gone"
        results[mode] = took
        print(
            f"{mode}: {result.rows:,} rows removed in {took:.2f} s ({result.rows / took:,.0f} rows/s; load "
            f"{os.getloadavg()[0]:.1f})"
        )
        for (_, table), removed in sorted(result.removed.items(), key=lambda item: -item[1].rows):
            print(f"  {table:28} {removed.rows:>9,} rows")
        if mode == "drop":
            print(
                f"  of which partitions_drop {timings['drop']:.2f} s (counting each project's rows "
                f"{timings['count']:.2f} s, DROP TABLE of {len(partitions.registered(partitions.RAW))} tables "
                f"{timings['drop'] - timings['count']:.2f} s); the rest of the sweep (the other targets, the "
                f"record) {took - timings['drop']:.2f} s"
            )
    print(f"\nbatched delete / partition drop: {results['batched'] / results['drop']:.0f}×")


if __name__ == "__main__":
    sys.exit(main())
