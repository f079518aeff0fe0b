"""In-process profile of one OTLP ingest request: where the time of a 100-span batch goes.

Usage (from the repository root):

    .venv/bin/python bench/profile_ingest.py --requests 200
    .venv/bin/python bench/profile_ingest.py --requests 200 --server-side-binding   # psycopg binds params
    .venv/bin/python bench/profile_ingest.py --requests 200 --texts repeated   # the 48 variants of before
    .venv/bin/python bench/profile_ingest.py --requests 200 --drop-index trace_search_trgm   # what an index costs

The OTLP view is called directly (RequestFactory, no HTTP, one thread) with the payloads of
bench/ingest.py against a fresh PostgreSQL database ``sre4ai_bench_profile``. It reports the time per
request, the CPU time per span of this process (Python) and of the PostgreSQL backend serving it (from
/proc), then cProfile's cumulative time of the ingest stages as a share of the total, the SQL statements
per request (COPY is not captured there) and the top functions by own time. Before cProfile, it times the
ingest stages without a profiler (``process_time`` around each stage's function, inside 30 real requests, and the
pure-Python stages again on their own), since cProfile inflates code made of many small calls.

``--server-side-binding`` only changes this process's copy of the settings (DATABASES OPTIONS), to
measure the effect of psycopg's server-side parameter binding without touching the application code.
"""

from __future__ import annotations

import argparse
import atexit
import cProfile
import io
import os
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import psycopg.sql

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BROKER_URL, PG_ADMIN_URL, PG_BASE_URL, flush_broker, snapshot
from payload import request_stream

DB = os.environ.get("BENCH_DB_PREFIX", "sre4ai_bench") + "_profile"
CHUNK = 10  # requests per CPU-time sample
STAGES = [
    ("authenticate key", "accounts/authentication.py", "authenticate_project_key"),
    ("decode protobuf", "traces/ingest/otlp.py", "decode_traces"),
    ("normalise spans", "traces/ingest/normalize.py", "normalise_span"),
    ("  price usage (genai-prices)", "traces/ingest/pricing.py", "price_usage"),
    ("locks + log events + stored traces + keys", "traces/services.py", "_lock_and_read"),
    ("store (_store)", "traces/services.py", "_store"),
    ("  summarise traces", "traces/services.py", "summarise_trace"),
    ("  COPY rows (encode + send)", "traces/ingest/bulk.py", "_copy"),
    ("    JSON encoding", "traces/ingest/bulk.py", "_json_text"),
    ("  stored traces rewritten (bulk_create)", "django/db/models/query.py", "bulk_create"),
    ("all SQL execute", "psycopg/cursor.py", "execute"),
    ("psycopg: waiting for PostgreSQL", "psycopg/connection.py", "wait"),
    ("follow-up tasks (send_task after commit)", "traces/followups.py", "followups_send"),
]


def backend_cpu_seconds(pid: int) -> float:
    """User + system CPU of one process (the PostgreSQL backend serving this connection), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


STAGE_REQUESTS = 30
# (label, module, attribute): functions timed with process_time inside real requests, through their module global
# (the name the caller looks up at call time), so nested stages are inclusive.
STAGE_FUNCTIONS = [
    ("authenticate key", "traces.api", "authenticate_project_key"),
    ("decode protobuf", "traces.ingest.otlp", "decode_traces"),
    ("locks + log events + stored traces + keys", "traces.services", "_lock_and_read"),
    ("normalise spans", "traces.services", "normalise_span"),
    ("store (_store)", "traces.services", "_store"),
    ("  summarise traces", "traces.services", "summarise_trace"),
    ("  insert new rows (COPY: encode, format, send)", "traces.services", "rows_insert"),
    ("  update stored rows", "traces.services", "rows_update"),
    ("  follow-up jobs (outbox rows)", "traces.services", "followups_add"),
    ("follow-up messages (send_task after commit)", "traces.followups", "followups_send"),
]


def stage_cpu(run: Callable[[], None]) -> tuple[float, dict[str, float]]:
    """Process CPU of ``run()`` and of each of STAGE_FUNCTIONS within it."""
    import importlib

    spent: dict[str, float] = {}
    originals = []
    for label, module_name, attr in STAGE_FUNCTIONS:
        module = importlib.import_module(module_name)
        original = getattr(module, attr, None)
        if original is None:  # a --source revision without it
            continue
        spent[label] = 0.0

        def timed(*a: Any, _f: Any = original, _label: str = label, **kw: Any) -> Any:
            started = time.process_time()
            try:
                return _f(*a, **kw)
            finally:
                spent[_label] += time.process_time() - started

        originals.append((module, attr, original))
        setattr(module, attr, timed)
    started = time.process_time()
    try:
        run()
    finally:
        for module, attr, original in originals:
            setattr(module, attr, original)
    return time.process_time() - started, spent


def python_stages(bodies: list[bytes], project: Any) -> dict[str, float]:
    """CPU seconds of the pure-Python stages of ingest over ``bodies``, each stage timed on its own: cProfile
    inflates code made of many small calls (normalisation) against code that waits in C (psycopg), so its shares
    alone mislead. The rest of the request (SQL, COPY formatting, Django, locks) is what the total has beyond these."""
    from datetime import UTC, datetime

    from traces.ingest import otlp
    from traces.ingest.bulk import _json_text
    from traces.ingest.limits import IngestLimits
    from traces.ingest.normalize import normalise_span
    from traces.services import SPAN_COLUMNS, _span_values, summarise_trace

    limits = IngestLimits.from_settings(project)
    fmt = otlp.wire_format("application/x-protobuf")
    now = datetime.now(tz=UTC)
    json_columns = [c.attname for c in SPAN_COLUMNS if c.is_json]
    cpu: dict[str, float] = dict.fromkeys(
        ["decode protobuf", "normalise spans", "span rows (values)", "summarise traces", "JSON encoding (spans)"], 0.0
    )
    for body in bodies:
        started = time.process_time()
        decoded = otlp.decode_traces(body, fmt, limits)
        cpu["decode protobuf"] += time.process_time() - started
        started = time.process_time()
        records = [normalise_span(span, ()) for span in decoded.spans]
        cpu["normalise spans"] += time.process_time() - started
        started = time.process_time()
        rows = [_span_values(record, project, now) for record in records]
        cpu["span rows (values)"] += time.process_time() - started
        started = time.process_time()
        by_trace: dict[str, list[dict[str, Any]]] = {}
        for record, row in zip(records, rows, strict=True):
            by_trace.setdefault(record.trace_id, []).append({**row, "trace_id": record.trace_id})
        for spans in by_trace.values():
            summarise_trace(spans)
        cpu["summarise traces"] += time.process_time() - started
        started = time.process_time()
        for row in rows:
            for name in json_columns:
                _json_text(row[name])
        cpu["JSON encoding (spans)"] += time.process_time() - started
    return cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--spans-per-request", type=int, default=100)
    parser.add_argument("--server-side-binding", action="store_true")
    parser.add_argument("--texts", choices=["distinct", "repeated"], default="distinct", help="bench/payload.py")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--drop-index",
        action="append",
        default=[],
        metavar="NAME",
        help="Drop this index after migrating (repeatable), to measure what it costs ingest, e.g. trace_search_trgm.",
    )
    parser.add_argument(
        "--source",
        default="worktree",
        help="Code to benchmark: 'worktree' (a copy of the working tree, the default) or a git revision such as HEAD.",
    )
    args = parser.parse_args()

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB}")
    var_dir = tempfile.mkdtemp(prefix="sre4ai-bench-profile-")
    atexit.register(shutil.rmtree, var_dir, True)
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
    atexit.register(flush_broker)
    src = snapshot(Path(var_dir) / "src", args.source)  # edits made by others during the run do not leak in
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=src, check=True, env=os.environ
    )
    with psycopg.connect(f"{PG_BASE_URL}/{DB}", autocommit=True) as conn:
        for name in args.drop_index:  # a partitioned table's index: dropping it drops every partition's
            conn.execute(f"DROP INDEX {psycopg.sql.Identifier(name).as_string(conn)}")
    sys.path.insert(0, str(src))
    os.chdir(src)  # Celery's autodiscovery puts the working directory on sys.path: make it the snapshot
    import django
    from django.conf import settings

    django.setup()
    if args.server_side_binding:
        settings.DATABASES["default"].setdefault("OPTIONS", {})["server_side_binding"] = True
    from django.db import connection
    from django.test import RequestFactory

    from accounts.services import api_key_issue, project_create
    from traces.api import otlp_traces

    project = project_create(slug="bench", name="profile")
    secret = api_key_issue(project=project, name="bench").secret_key
    factory = RequestFactory()
    stream = request_stream(4242, args.spans_per_request, distinct=args.texts == "distinct")
    bodies = [next(stream)[0] for _ in range(args.requests + 10 + STAGE_REQUESTS)]

    def send(body: bytes) -> None:
        request = factory.post(
            "/v1/traces",
            data=body,
            content_type="application/x-protobuf",
            headers={"Authorization": f"Bearer {secret}"},
        )
        response = otlp_traces(request)
        assert response.status_code == 200, response.content[:300]

    for body in bodies[:10]:
        send(body)  # warm-up: price table, connection
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    times = []
    timed = bodies[10 : 10 + args.requests // 2]
    # CPU time is the figure to compare A/B, but other jobs on the machine still inflate it (shared caches and
    # cores): it is taken per chunk of requests, and the least disturbed chunk is reported beside the total.
    chunks: list[tuple[float, float]] = []
    for start in range(0, len(timed), CHUNK):
        python_cpu, pg_cpu = time.process_time(), backend_cpu_seconds(backend)
        for body in timed[start : start + CHUNK]:
            started = time.perf_counter()
            send(body)
            times.append((time.perf_counter() - started) * 1000)
        chunks.append((time.process_time() - python_cpu, backend_cpu_seconds(backend) - pg_cpu))
    from django.test.utils import CaptureQueriesContext

    sql_phase = bodies[10 + args.requests // 2 : 10 + args.requests // 2 + 20]
    statements: dict[str, list[float]] = {}
    with CaptureQueriesContext(connection) as captured:
        for body in sql_phase:
            send(body)
    for query in captured.captured_queries:
        sql = query["sql"]
        match = re.search(r'(INSERT INTO|UPDATE|DELETE FROM|FROM) "(\w+)"', sql)
        verb = sql.split(None, 1)[0].upper()
        key = f"{verb} {match.group(2)}" if match else sql[:40]
        if verb in ("SAVEPOINT", "RELEASE", "ROLLBACK"):
            key = f"{verb} (nested atomic block)"
        statements.setdefault(key, []).append(float(query["time"]) * 1000)
    staged = bodies[10 + args.requests :]

    def send_staged() -> None:
        for body in staged:
            send(body)

    request_cpu, inside = stage_cpu(send_staged)
    profiler = cProfile.Profile()
    profiler.enable()
    for body in bodies[10 + args.requests // 2 : 10 + args.requests]:
        send(body)
    profiler.disable()
    connection.close()

    try:
        stages = python_stages(bodies[10 : 10 + args.requests // 2], project)
    except (ImportError, AttributeError, KeyError) as exc:  # a --source revision from before these functions
        print(f"Python stages not measured for this revision: {exc!r}")
        stages = {}

    median = statistics.median(times)
    binding = "server-side" if args.server_side_binding else "client-side (Django's default)"
    dropped = f"; indexes dropped: {', '.join(args.drop_index)}" if args.drop_index else ""
    print(f"parameter binding: {binding}; {args.texts} texts{dropped}")
    print(
        f"{len(times)} requests of {args.spans_per_request} spans, one thread, no HTTP: median {median:.1f} ms, "
        f"p90 {sorted(times)[int(len(times) * 0.9)]:.1f} ms -> {args.spans_per_request / median * 1000:.0f} spans/s "
        "per core"
    )

    def cpu_line(label: str, python_cpu: float, pg_cpu: float, requests: int) -> None:
        spans = requests * args.spans_per_request
        print(
            f"CPU per span, {label}: Python {python_cpu / spans * 1e6:.0f} µs + PostgreSQL backend "
            f"{pg_cpu / spans * 1e6:.0f} µs = {(python_cpu + pg_cpu) / spans * 1e6:.0f} µs -> "
            f"{spans / (python_cpu + pg_cpu):.0f} spans/s per core"
        )

    cpu_line("all requests", sum(c[0] for c in chunks), sum(c[1] for c in chunks), len(timed))
    cpu_line(f"least disturbed {CHUNK}", *min(chunks, key=sum), CHUNK)
    print("(PostgreSQL's WAL writer and checkpointer not counted)")
    spans = len(timed) * args.spans_per_request
    print("\nPython stages alone, CPU per span without a profiler (the same requests again, no database):")
    for label, seconds in stages.items():
        print(f"  {label:45} {seconds / spans * 1e6:5.0f} µs")
    spans = len(staged) * args.spans_per_request
    print(
        f"\nPython CPU per span inside the request, by stage (inclusive, {len(staged)} requests, no profiler): "
        f"whole request {request_cpu / spans * 1e6:.0f} µs"
    )
    for label, seconds in inside.items():
        print(f"  {label:45} {seconds / spans * 1e6:5.0f} µs")
    stats = pstats.Stats(profiler)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]

    def cumulative(path: str, func: str) -> float:
        return sum(v[3] for (filename, _, name), v in raw.items() if name == func and filename.endswith(path))

    total = cumulative("traces/api.py", "view")
    print(
        f"\nstage (cumulative time, share of the request; {total / len(bodies[10 + args.requests // 2 :]) * 1000:.0f} ms"
        " per request under cProfile):"
    )
    for label, path, func in STAGES:
        print(f"  {label:45} {100 * cumulative(path, func) / total:5.1f}%")
    print(f"\nSQL statements per request (client-observed, includes parameter adaptation; {len(sql_phase)} requests):")
    for key, values in sorted(statements.items(), key=lambda kv: -sum(kv[1])):
        print(f"  {key:45} {len(values) / len(sql_phase):4.1f} per request, {sum(values) / len(sql_phase):6.1f} ms")
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(args.top)
    print("\ntop functions by own time:")
    print("\n".join(line for line in out.getvalue().splitlines() if line.strip())[:6000])
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
