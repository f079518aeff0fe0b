"""Server time of the overview and service pages, rendered from rollups, on the trace-list benchmark's data
(one million spans in ``sre4ai_bench_list``; run ``bench/trace_list.py`` first to fill it), of the SLO pages, SLO
form and drift pages of the SLOs and drift runs the project has, of the first-trace status that an empty project's
overview polls, and of the API docs and OpenAPI schema.

    .venv/bin/python bench/dashboards.py [--repeat 9] [--rebuild] [--db NAME] [--source worktree|REV] [--json out.json]

``--rebuild`` first recomputes the project's rollups from raw rows (``rollups_rebuild``) and reports how
long that takes. ``--db`` reads another copy of the data; ``--source REV`` measures a git revision's code (a
snapshot, like ``slo_bench.py``), so two revisions can be compared on the same data. Each page is requested
in-process with Django's test Client (server time, no network): the median of --repeat requests after one
warm-up, with the median CPU time of this process (Python; PostgreSQL's share is not in it) and the number
of SQL queries.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PG_BASE_URL, REPO, machine, snapshot

DB = "sre4ai_bench_list"
SLUG = "bench"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--db", default=DB, help=f"Database to read (default {DB}).")
    parser.add_argument("--source", default="worktree", help="Code to measure: 'worktree' or a git revision.")
    args = parser.parse_args()
    src = (
        REPO
        if args.source == "worktree"
        else snapshot(Path(tempfile.mkdtemp(prefix="sre4ai-dash-")) / "src", args.source)
    )
    sys.path.insert(0, str(src))
    os.chdir(src)
    env = {
        **os.environ,
        "DATABASE_URL": f"{PG_BASE_URL}/{args.db}",
        "DJANGO_SETTINGS_MODULE": "sre4ai_web.settings",
        "ALLOWED_HOSTS": "testserver",
        "SRE4AI_STATIC_ROOT": str(REPO / "staticfiles"),
    }
    result: dict[str, Any] = {"machine": machine(args.source), "source": args.source, "pages": []}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=src, env=env, check=True)
    if args.rebuild:
        started = time.monotonic()
        subprocess.run(
            [sys.executable, "manage.py", "rollups_rebuild", "--project", SLUG, "-v0"], cwd=src, env=env, check=True
        )
        result["rebuild_seconds"] = round(time.monotonic() - started, 1)
        print(f"rollups_rebuild: {result['rebuild_seconds']} s")
    os.environ.update(env)
    os.environ["DJANGO_ALLOWED_HOSTS"] = "testserver"
    import django

    django.setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from accounts.models import Project
    from evals.models import DriftRun
    from rollups.models import TrafficRollup
    from slos.models import SLO

    project = Project.objects.get(slug=SLUG)
    owner = project.memberships.select_related("user").first()
    assert owner is not None, "the benchmark project has no member: run bench/trace_list.py first"
    client = Client()
    client.force_login(owner.user)
    services = sorted(
        set(TrafficRollup.objects.filter(project=project, dimension="").values_list("service", flat=True))
    )
    cases = [(f"overview {r}", f"/p/{SLUG}/", {"range": r}) for r in ("1h", "24h", "7d", "30d")]
    cases += [
        (f"service {s} {r}", f"/p/{SLUG}/service/", {"name": s, "range": r}) for s in services for r in ("24h", "30d")
    ]
    cases += [("trace list", f"/p/{SLUG}/traces/", {})]
    # Polled by an empty project's "send your first trace" panel; on a full project it answers at once.
    cases += [("first-trace status", f"/p/{SLUG}/first-trace/", {})]
    cases += [("SLO form new", f"/p/{SLUG}/slos/new/", {})]
    first_slo = SLO.objects.filter(project=project).order_by("pk").first()
    if first_slo is not None:
        cases += [(f"SLO form edit {first_slo.pk}", f"/p/{SLUG}/slos/{first_slo.pk}/edit/", {})]
    cases += [
        (f"SLO page {slo.pk} {r}", f"/p/{SLUG}/slos/{slo.pk}/", {"range": r})
        for slo in SLO.objects.filter(project=project).order_by("pk")
        for r in ("1d", "7d", "window")
    ]
    cases += [("API docs", "/api/docs/", {}), ("OpenAPI schema", "/api/schema/", {"format": "json"})]
    drifted = DriftRun.objects.filter(project=project, status="done").values_list("service", flat=True).distinct()
    cases += [(f"drift {s}", f"/p/{SLUG}/drift/", {"service": s}) for s in sorted(drifted)]
    # CPU time of this process beside the wall time: on a shared machine the wall time follows the others' load.
    print(f"{'page':<38} {'median ms':>10} {'max ms':>8} {'cpu ms':>8} {'queries':>8}")
    for name, path, params in cases:
        client.get(path, params)
        times, cpu = [], []
        for _ in range(args.repeat):
            with CaptureQueriesContext(connection) as queries:
                started, started_cpu = time.perf_counter(), time.process_time()
                response = client.get(path, params)
                times.append((time.perf_counter() - started) * 1000)
                cpu.append((time.process_time() - started_cpu) * 1000)
            assert response.status_code == 200, (path, response.status_code)
        row = {
            "page": name,
            "median_ms": round(statistics.median(times), 1),
            "max_ms": round(max(times), 1),
            "cpu_ms": round(statistics.median(cpu), 1),
            "queries": len(queries),
        }
        result["pages"].append(row)
        print(f"{name:<38} {row['median_ms']:>10} {row['max_ms']:>8} {row['cpu_ms']:>8} {row['queries']:>8}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
