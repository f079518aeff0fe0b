"""Trace-list benchmark: the list page and GET /api/v1/traces over one million spans in PostgreSQL.

Usage (from the repository root, with the project's virtual environment):

    .venv/bin/python bench/trace_list.py                      # fill (if needed) and measure
    .venv/bin/python bench/trace_list.py --spans 1000000 --refill --repeat 15 --json /tmp/list.json
    .venv/bin/python bench/trace_list.py --drop                # remove the benchmark database

Fill: a database ``sre4ai_bench_list`` is created and migrated; a few hundred template traces of three
services (a RAG bot: embedding, retrieval with three documents, LLM; a tool-using agent: five LLM/tool
spans under an agent root; a summariser: Langfuse root + generation) are sent through the real OTLP
endpoint, so their Span, RetrievedDocument and Trace rows are exactly what ingest writes. SQL
(INSERT ... SELECT over generate_series) then copies them into the benchmark project with new trace
and span ids, spread over 30 days: the Trace summary columns stay consistent with their spans because
they are copied from the ingested template and only the times are shifted.

Measure: Django's test Client, in-process, times each request (median of --repeat after two warm-up
requests; the server time, without network). Pages: the first page, a page ~2000 pages deep reached by
following next cursors, the oldest page, and filters (service, model, a rare model, status=error, text
search, minimum latency, a combination), each first and deep; then the same for GET /api/v1/traces.
The key queries are shown with EXPLAIN (ANALYZE, BUFFERS).
"""

from __future__ import annotations

import argparse
import atexit
import base64
import json
import os
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BROKER_URL, PG_ADMIN_URL, PG_BASE_URL, flush_broker, machine, snapshot
from payload import key_values, resource_attributes

# BENCH_LIST_DB names another database, so people sharing one PostgreSQL do not refill each other's copy.
DB = os.environ.get("BENCH_LIST_DB", "sre4ai_bench_list")
SLUG = "bench"
TEMPLATE_SLUG = "bench-templates"
USERNAME = "bench"
DAYS = 30
RARE_WORD = "chargeback"  # in one template in 400: a selective text search
RARE_MODEL = "o3-pro"  # one template in 400: a selective model filter


# --- templates: realistic traces sent through the real OTLP endpoint ---------------------------------


def _span(trace_id: bytes, parent: bytes, name: str, start_ns: int, ms: float, attrs: dict[str, Any], error: str = ""):
    from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

    span = Span(
        trace_id=trace_id,
        span_id=random.randbytes(8),
        parent_span_id=parent,
        name=name,
        kind=Span.SPAN_KIND_INTERNAL,
        start_time_unix_nano=start_ns,
        end_time_unix_nano=start_ns + int(ms * 1e6),
        status=Status(code=Status.STATUS_CODE_ERROR, message=error) if error else Status(code=Status.STATUS_CODE_OK),
    )
    span.attributes.extend(key_values(attrs))
    return span


def _messages(role_texts: list[tuple[str, str]]) -> str:
    return json.dumps([{"role": r, "parts": [{"type": "text", "content": t}]} for r, t in role_texts])


TOPICS = ["refunds", "shipping", "pricing", "passwords", "cancellations", "invoices", "exports", "sso"]
FILLER = (
    "The policy applies to every order placed through the web shop or the mobile app, in every region where "
    "the service is sold, unless a local regulation requires a longer period. "
)


def rag_trace(i: int, rng: random.Random, start_ns: int) -> list[Any]:
    """Chain root, embedding, retrieval with three documents, LLM call: 4 spans."""
    trace_id = rng.randbytes(16)
    topic = RARE_WORD if i == 9 else TOPICS[i % len(TOPICS)]
    model = RARE_MODEL if i == 13 else ("gpt-4o-mini" if i % 3 else "claude-3-5-haiku-20241022")
    error = "LLM call failed" if i % 50 == 3 else ""
    question = f"How do {topic} work for my account (case {i})?"
    answer = "" if error else f"About {topic}: " + FILLER[: 150 + rng.randint(0, 150)]
    llm_ms, ret_ms = rng.lognormvariate(6.6, 0.5), rng.uniform(15, 90)
    root = _span(
        trace_id,
        b"",
        "answer_question",
        start_ns,
        ret_ms + llm_ms + 30,
        {
            "openinference.span.kind": "CHAIN",
            "input.value": question,
            "output.value": answer,
            "session.id": f"sess-{i % 97:03d}",
            "user.id": f"user-{i % 61:03d}",
            "tag.tags": ["rag", topic],
        },
        error,
    )
    ms = 1_000_000
    embed = _span(
        trace_id,
        root.span_id,
        "embeddings text-embedding-3-small",
        start_ns + 2 * ms,
        8,
        {
            "gen_ai.operation.name": "embeddings",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "text-embedding-3-small",
            "gen_ai.usage.input_tokens": 14,
        },
    )
    docs: dict[str, Any] = {"openinference.span.kind": "RETRIEVER", "input.value": question}
    for n in range(3):
        docs[f"retrieval.documents.{n}.document.id"] = f"kb-{topic}-{n}"
        docs[f"retrieval.documents.{n}.document.content"] = f"Article {n} about {topic}. " + FILLER * 2
        docs[f"retrieval.documents.{n}.document.score"] = round(0.9 - n * 0.07, 3)
    retrieval = _span(trace_id, root.span_id, "retrieve_kb", start_ns + 12 * ms, ret_ms, docs)
    llm_attrs: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic" if model.startswith("claude") else "openai",
        "gen_ai.request.model": model,
        "gen_ai.response.model": model,
        "gen_ai.input.messages": _messages([("system", "Answer from the context.\n" + FILLER * 3), ("user", question)]),
    }
    if not error:
        llm_attrs.update(
            {
                "gen_ai.output.messages": _messages([("assistant", answer)]),
                "gen_ai.usage.input_tokens": 600 + rng.randint(0, 200),
                "gen_ai.usage.output_tokens": len(answer) // 4,
            }
        )
    llm = _span(trace_id, root.span_id, f"chat {model}", start_ns + int((ret_ms + 15) * ms), llm_ms, llm_attrs, error)
    return [embed, retrieval, llm, root]


def agent_trace(i: int, rng: random.Random, start_ns: int) -> list[Any]:
    """Agent root with LLM, tool, LLM, tool, LLM: 6 spans."""
    trace_id = rng.randbytes(16)
    model = "gpt-4o" if i % 2 else "gpt-4.1-mini"
    city = ["Lisbon", "Kyoto", "Oslo", "Lima", "Nairobi"][i % 5]
    failed = i % 40 == 5
    request = f"Plan a weekend in {city}: weather and a hotel under $200."
    ms = 1_000_000
    spans = []
    root = _span(
        trace_id,
        b"",
        "invoke_agent trip-planner",
        start_ns,
        0,
        {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": "trip-planner",
            "gen_ai.conversation.id": f"conv-{i % 89:03d}",
            "user.id": f"user-{i % 61:03d}",
            "gen_ai.input.messages": _messages([("user", request)]),
        },
    )
    t = start_ns + ms
    for step, tool in enumerate(["get_weather", "search_hotels", None]):
        llm_ms = rng.lognormvariate(6.5, 0.4)
        reply = f"For {city}: mild weather, Hotel Central at $165." if tool is None else f"calling {tool}"
        spans.append(
            _span(
                trace_id,
                root.span_id,
                f"chat {model}",
                t,
                llm_ms,
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": model,
                    "gen_ai.input.messages": _messages([("user", request)] * (step + 1)),
                    "gen_ai.output.messages": _messages([("assistant", reply)]),
                    "gen_ai.usage.input_tokens": 420 + 90 * step,
                    "gen_ai.usage.output_tokens": rng.randint(20, 80),
                },
            )
        )
        t += int(llm_ms * ms)
        if tool:
            tool_ms = rng.uniform(40, 400)
            error = "HTTP 502 from hotels API" if failed and tool == "search_hotels" else ""
            spans.append(
                _span(
                    trace_id,
                    root.span_id,
                    f"execute_tool {tool}",
                    t,
                    tool_ms,
                    {
                        "gen_ai.operation.name": "execute_tool",
                        "gen_ai.tool.name": tool,
                        "gen_ai.tool.call.arguments": json.dumps({"city": city}),
                        "gen_ai.tool.call.result": "" if error else json.dumps({"city": city, "ok": True}),
                    },
                    error,
                )
            )
            t += int(tool_ms * ms)
    root.end_time_unix_nano = t + ms
    root.attributes.extend(key_values({"gen_ai.output.messages": _messages([("assistant", reply)])}))
    return [*spans, root]


def summariser_trace(i: int, rng: random.Random, start_ns: int) -> list[Any]:
    """Langfuse root + generation: 2 spans."""
    trace_id = rng.randbytes(16)
    model = ["claude-3-5-haiku-20241022", "gpt-4o-mini", "acme-summarizer-7b"][i % 3]
    article = f"Article {i}: " + FILLER * 3
    summary = article[:120]
    ms = rng.lognormvariate(7.0, 0.4)
    root = _span(
        trace_id,
        b"",
        "summarise",
        start_ns,
        ms + 8,
        {
            "langfuse.observation.type": "span",
            "langfuse.trace.name": "summarise-article",
            "langfuse.observation.input": json.dumps({"article": article}),
            "langfuse.observation.output": summary,
            "user.id": f"user-{i % 61:03d}",
        },
    )
    gen = _span(
        trace_id,
        root.span_id,
        "summary-generation",
        start_ns + 4_000_000,
        ms,
        {
            "langfuse.observation.type": "generation",
            "langfuse.observation.model.name": model,
            "langfuse.observation.input": json.dumps([{"role": "user", "content": article}]),
            "langfuse.observation.output": json.dumps({"role": "assistant", "content": summary}),
            "langfuse.observation.usage_details": json.dumps({"input": 60 + len(article) // 4, "output": 30}),
        },
    )
    return [gen, root]


SERVICES = [("support-bot", rag_trace), ("travel-agent", agent_trace), ("summariser", summariser_trace)]


def send_templates(client: Any, secret: str, count: int) -> None:
    """Template traces through POST /v1/traces: support-bot 50%, travel-agent 25%, summariser 25%."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    rng = random.Random(11)
    random.seed(12)
    base_ns = time.time_ns() - 3600 * 10**9
    per_service: dict[str, list[Any]] = {name: [] for name, _ in SERVICES}
    for i in range(count):
        name, build = SERVICES[[0, 0, 1, 2][i % 4]]
        per_service[name].extend(build(i, rng, base_ns + i * 10**9))
    request = ExportTraceServiceRequest()
    for name, spans in per_service.items():
        resource_spans = request.resource_spans.add()
        resource_spans.resource.attributes.extend(resource_attributes(name))
        scope = resource_spans.scope_spans.add()
        scope.scope.name = "bench.templates"
        scope.spans.extend(spans)
    response = client.post(
        "/v1/traces",
        data=request.SerializeToString(),
        content_type="application/x-protobuf",
        headers={"Authorization": f"Bearer {secret}"},
    )
    if response.status_code != 200:
        raise RuntimeError(f"template ingest answered {response.status_code}: {response.content[:300]!r}")


# --- fill: copy the templates with SQL -----------------------------------------------------------------


def _columns(cursor: Any, table: str) -> list[str]:
    cursor.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = %s AND column_name <> 'id' "
        "ORDER BY ordinal_position",
        [table],
    )
    return [row[0] for row in cursor.fetchall()]


def _select_list(columns: list[str], overrides: dict[str, str], alias: str) -> str:
    return ", ".join(overrides.get(c, f"{alias}.{c}") for c in columns)


def fill(project_id: int, template_project_id: int, spans_target: int, log: Any) -> None:
    """Copy template traces into the project until it holds about `spans_target` spans."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO off")
        cursor.execute(
            "SELECT id, start_time, span_count FROM traces_trace WHERE project_id = %s ORDER BY id",
            [template_project_id],
        )
        templates = cursor.fetchall()
        spans_per_trace = sum(t[2] for t in templates) / len(templates)
        traces_total = round(spans_target / spans_per_trace)
        log(f"{len(templates)} templates, {spans_per_trace:.2f} spans per trace: {traces_total} traces to write")
        cursor.execute("DROP TABLE IF EXISTS bench_tmpl")
        cursor.execute(
            "CREATE UNLOGGED TABLE bench_tmpl AS SELECT row_number() OVER (ORDER BY id) - 1 AS n, id, start_time "
            "FROM traces_trace WHERE project_id = %s",
            [template_project_id],
        )
        trace_cols = _columns(cursor, "traces_trace")
        span_cols = _columns(cursor, "traces_span")
        doc_cols = _columns(cursor, "traces_retrieveddocument")
        new_span_id = "substr(md5(m.i::text || s.span_id), 1, 16)"
        # Conversations as people have them: 20 consecutive copies (about 3.5 minutes of traffic) share a
        # session, so a session has ~10 turns (the RAG half of the traces carries a session id); 4,000 users,
        # each with a few sessions a month. The templates' own ids would make 97 sessions of ~1,300 turns.
        session_sql = "CASE WHEN {alias}.session_id = '' THEN '' ELSE 'sess-' || (m.i / 20)::text END"
        user_sql = "CASE WHEN {alias}.user_id = '' THEN '' ELSE 'user-' || ((m.i / 20) %% 4000)::text END"
        # A canary: over the last day, half of the traffic runs release 1.6.0 (the canary page compares them).
        release_sql = "CASE WHEN m.i >= %(total)s * 29 / 30 AND m.i %% 2 = 1 THEN '1.6.0' ELSE {alias}.release END"
        trace_select = _select_list(
            trace_cols,
            {
                "project_id": "%(project)s",
                "trace_id": "m.trace_id",
                "start_time": "t.start_time + m.shift",
                "end_time": "t.end_time + m.shift",
                "root_span_id": "substr(md5(m.i::text || t.root_span_id), 1, 16)",
                "session_id": session_sql.format(alias="t"),
                "user_id": user_sql.format(alias="t"),
                "release": release_sql.format(alias="t"),
                "updated_at": "now()",
            },
            "t",
        )
        span_select = _select_list(
            span_cols,
            {
                "project_id": "%(project)s",
                "trace_id": "nt.id",
                "span_id": new_span_id,
                "parent_span_id": "CASE WHEN s.parent_span_id = '' THEN '' "
                "ELSE substr(md5(m.i::text || s.parent_span_id), 1, 16) END",
                "start_time": "s.start_time + m.shift",
                "end_time": "s.end_time + m.shift",
                "completion_start_time": "s.completion_start_time + m.shift",
                "session_id": session_sql.format(alias="s"),
                "user_id": user_sql.format(alias="s"),
                "release": release_sql.format(alias="s"),
                "updated_at": "now()",
            },
            "s",
        )
        doc_select = _select_list(doc_cols, {"span_id": "ns.id"}, "d")
        chunk = 25_000
        started = time.monotonic()
        for low in range(0, traces_total, chunk):
            high = min(low + chunk, traces_total)
            params = {
                "days": DAYS,
                "project": project_id,
                "low": low,
                "high": high,
                "total": traces_total,
                "count": len(templates),
            }
            cursor.execute("DROP TABLE IF EXISTS bench_map")
            # Newest traces get the highest ids, as with live ingest; a few seconds of jitter.
            cursor.execute(
                "CREATE TEMP TABLE bench_map AS SELECT g.i, tm.id AS template_id, "
                "md5('bench-trace-' || g.i::text) AS trace_id, "
                "(now() - interval '1 day' * %(days)s + (interval '1 day' * %(days)s * g.i / %(total)s) "
                "+ interval '1 second' * (random() * 30)) - tm.start_time AS shift "
                "FROM generate_series(%(low)s, %(high)s - 1) AS g(i) JOIN bench_tmpl tm ON tm.n = g.i %% %(count)s",
                params,
            )
            cursor.execute(
                f"INSERT INTO traces_trace ({', '.join(trace_cols)}) SELECT {trace_select} "  # noqa: S608
                "FROM bench_map m JOIN traces_trace t ON t.id = m.template_id ORDER BY m.i",
                params,
            )
            cursor.execute(
                f"INSERT INTO traces_span ({', '.join(span_cols)}) SELECT {span_select} "  # noqa: S608
                "FROM bench_map m JOIN traces_trace nt ON nt.project_id = %(project)s AND nt.trace_id = m.trace_id "
                "JOIN traces_span s ON s.trace_id = m.template_id ORDER BY m.i, s.start_time",
                params,
            )
            cursor.execute(
                f"INSERT INTO traces_retrieveddocument ({', '.join(doc_cols)}) SELECT {doc_select} "  # noqa: S608
                "FROM bench_map m JOIN traces_trace nt ON nt.project_id = %(project)s AND nt.trace_id = m.trace_id "
                "JOIN traces_span s ON s.trace_id = m.template_id JOIN traces_retrieveddocument d ON d.span_id = s.id "
                f"JOIN traces_span ns ON ns.trace_id = nt.id AND ns.span_id = {new_span_id}",
                params,
            )
            connection.commit() if not connection.get_autocommit() else None
            rate = high / max(time.monotonic() - started, 1e-9)
            log(f"  {high}/{traces_total} traces ({rate:.0f} traces/s)")
        cursor.execute("DROP TABLE IF EXISTS bench_map")
        cursor.execute("DROP TABLE IF EXISTS bench_tmpl")
    for table in ("traces_trace", "traces_span", "traces_retrieveddocument"):
        with psycopg.connect(f"{PG_BASE_URL}/{DB}", autocommit=True) as conn:
            conn.execute(f"VACUUM ANALYZE {table}")


# --- measure ---------------------------------------------------------------------------------------


def timed(fn: Any, repeat: int) -> dict[str, float]:
    times = []
    for _ in range(2):
        fn()  # warm-up: caches, first-request imports
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return {
        "median_ms": round(statistics.median(times), 1),
        "min_ms": round(min(times), 1),
        "max_ms": round(max(times), 1),
    }


def explorer_selectors() -> Any:
    """The explorer's reads of the code under test: front.selectors, traces.selectors before the front app."""
    try:
        from front import selectors
    except ImportError:
        from traces import selectors  # type: ignore[no-redef]
    return selectors


def cursor_at(stamp: datetime, pk: int) -> str:
    """A newest-first cursor at a moment, in the format of the code under test: since the list sorts by other
    columns too, a cursor also names its sort ("-time|<iso>|<pk>"; before, "<iso>|<pk>")."""
    selectors = explorer_selectors()
    if hasattr(selectors, "TraceSort"):
        return base64.urlsafe_b64encode(f"-time|{stamp.isoformat()}|{pk}".encode()).decode()
    return base64.urlsafe_b64encode(f"{stamp.isoformat()}|{pk}".encode()).decode()


def explain(sql: str) -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
        return "\n".join(row[0] for row in cursor.fetchall())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=1_000_000, help="Spans in the benchmark project.")
    parser.add_argument("--templates", type=int, default=400, help="Distinct template traces.")
    parser.add_argument("--refill", action="store_true", help="Drop and refill the database even if it is full.")
    parser.add_argument("--drop", action="store_true", help="Drop the benchmark database and exit.")
    parser.add_argument("--repeat", type=int, default=15, help="Timed requests per case (median reported).")
    parser.add_argument("--deep-pages", type=int, default=2000, help="Next cursors to follow for the deep page.")
    parser.add_argument("--explain", action="store_true", help="Print the EXPLAIN ANALYZE plans in full.")
    parser.add_argument("--json", type=Path, help="Also write the results as JSON to this file.")
    parser.add_argument(
        "--source",
        default="worktree",
        help="Code to benchmark: 'worktree' (a copy of the working tree, the default) or a git revision such as HEAD.",
    )
    args = parser.parse_args()
    if args.json:
        args.json = args.json.resolve()  # the script later changes directory to the code snapshot

    def log(message: str) -> None:
        print(message, flush=True)

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        if args.drop:
            conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
            log(f"dropped {DB}")
            return 0
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB]).fetchone() is not None
        if args.refill and exists:
            conn.execute(f"DROP DATABASE {DB} WITH (FORCE)")
            exists = False
        if not exists:
            conn.execute(f"CREATE DATABASE {DB}")

    info = machine(args.source)
    log(f"machine: {info}")
    var_dir = tempfile.mkdtemp(prefix="sre4ai-bench-list-")
    atexit.register(shutil.rmtree, var_dir, True)
    os.environ.update(
        {
            "DATABASE_URL": f"{PG_BASE_URL}/{DB}",
            "DJANGO_SETTINGS_MODULE": "sre4ai_web.settings",
            "DJANGO_ALLOWED_HOSTS": "testserver,127.0.0.1,localhost",
            "DJANGO_DEBUG": "0",
            "SRE4AI_VAR_DIR": var_dir,
            "LOG_LEVEL": "WARNING",
            "CELERY_BROKER_URL": BROKER_URL,
        }
    )
    atexit.register(flush_broker)
    src = snapshot(Path(var_dir) / "src", args.source)  # edits made by others during the run do not leak in
    for command in (["migrate", "--noinput"], ["collectstatic", "--noinput"]):  # the page needs the manifest
        subprocess.run([sys.executable, "manage.py", *command, "-v", "0"], cwd=src, check=True, env=os.environ)
    sys.path.insert(0, str(src))
    os.chdir(src)  # Celery's autodiscovery puts the working directory on sys.path: make it the snapshot
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connection, reset_queries
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from accounts.models import Project
    from accounts.services import api_key_issue, project_create, user_create
    from traces.models import Span, Trace

    TraceFilters, trace_page = explorer_selectors().TraceFilters, explorer_selectors().trace_page

    user = get_user_model().objects.filter(username=USERNAME).first() or user_create(
        username=USERNAME, password=secrets.token_urlsafe(16)
    )
    project = Project.objects.filter(slug=SLUG).first() or project_create(slug=SLUG, name="List bench", owner=user)
    secret = api_key_issue(project=project, name="bench", scopes=["ingest", "read"]).secret_key
    client = Client()
    client.force_login(user)

    spans_now = Span.objects.filter(project=project).count()
    if spans_now < args.spans * 0.95:
        started = time.monotonic()
        template_project = Project.objects.filter(slug=TEMPLATE_SLUG).first() or project_create(
            slug=TEMPLATE_SLUG, name="templates", owner=user
        )
        if not Trace.objects.filter(project=template_project).exists():
            send_templates(client, api_key_issue(project=template_project, name="t").secret_key, args.templates)
        Trace.objects.filter(project=project).delete()
        fill(project.pk, template_project.pk, args.spans, log)
        log(f"filled in {time.monotonic() - started:.0f} s")
    counts = {
        "traces": Trace.objects.filter(project=project).count(),
        "spans": Span.objects.filter(project=project).count(),
    }
    with connection.cursor() as sql:
        sql.execute("SELECT pg_size_pretty(pg_database_size(current_database()))")
        counts["database_size"] = sql.fetchone()[0]
    log(f"data: {counts}")

    # Walk next cursors from the first page: the deep page a user reaches by clicking "next".
    walk_started = time.perf_counter()
    cursor = ""
    for _ in range(args.deep_pages):
        page = trace_page(project=project, filters=TraceFilters(), cursor=cursor)
        cursor = page.next_cursor or ""
    walk_s = time.perf_counter() - walk_started
    deep_cursor = cursor
    oldest = Trace.objects.filter(project=project).order_by("start_time", "id").only("start_time").first()
    newest = Trace.objects.filter(project=project).order_by("-start_time", "-id").only("start_time").first()
    assert oldest is not None
    assert newest is not None
    middle = oldest.start_time + (newest.start_time - oldest.start_time) / 2
    middle_cursor = cursor_at(middle, 2**62)
    oldest_cursor = cursor_at(oldest.start_time + timedelta(minutes=20), 2**62)
    with connection.cursor() as sql:
        sql.execute(
            "SELECT percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_ms) FROM traces_trace WHERE project_id = %s",
            [project.pk],
        )
        p99_duration = round(sql.fetchone()[0])
    log(
        f"followed {args.deep_pages} next cursors in {walk_s:.1f} s ({walk_s / args.deep_pages * 1000:.1f} ms per page);"
        f" p99 trace duration {p99_duration} ms"
    )

    cases: list[tuple[str, dict[str, str]]] = [
        ("first page", {}),
        (f"deep page ({args.deep_pages} pages by next cursor)", {"cursor": deep_cursor}),
        ("deep page (middle of 30 days)", {"cursor": middle_cursor}),
        ("oldest page", {"cursor": oldest_cursor}),
        ("service=support-bot", {"service": "support-bot"}),
        ("service=support-bot, deep", {"service": "support-bot", "cursor": middle_cursor}),
        ("model=gpt-4o-mini", {"model": "gpt-4o-mini"}),
        ("model=gpt-4o-mini, deep", {"model": "gpt-4o-mini", "cursor": middle_cursor}),
        (f"model={RARE_MODEL} (0.25% of traces)", {"model": RARE_MODEL}),
        ("status=error", {"status": "error"}),
        ("status=error, deep", {"status": "error", "cursor": middle_cursor}),
        ("q=refunds", {"q": "refunds"}),
        (f"q={RARE_WORD} (0.25% of traces)", {"q": RARE_WORD}),
        ("q=no-such-text (matches nothing)", {"q": "no-such-text"}),
        (f"min_duration_ms={p99_duration} (p99)", {"min_duration_ms": str(p99_duration)}),
        ("min_duration_ms, deep", {"min_duration_ms": str(p99_duration), "cursor": middle_cursor}),
        ("service + status=error + range=7d", {"service": "travel-agent", "status": "error", "range": "7d"}),
    ]
    results: list[dict[str, Any]] = []
    page_url = f"/p/{SLUG}/traces/"
    api_headers = {"Authorization": f"Bearer {secret}"}
    # Code with the trace explorer (issue 16): sorted lists (first and a deep page by next cursors), and the
    # session and user pages and lists. The page also counts the matching traces (up to 10,000) in every case.
    explorer: list[tuple[str, str, dict[str, str]]] = []
    selectors = explorer_selectors()
    if hasattr(selectors, "TraceSort"):
        for token in ("-latency", "-cost", "-tokens", "latency"):
            sort = selectors.TraceSort.parse(token)
            cursor = ""
            for _ in range(args.deep_pages // 10):
                cursor = (
                    selectors.trace_page(project=project, filters=TraceFilters(), cursor=cursor, sort=sort).next_cursor
                    or ""
                )
            explorer.append((f"sort={token}", page_url, {"sort": token}))
            explorer.append(
                (f"sort={token}, {args.deep_pages // 10} pages deep", page_url, {"sort": token, "cursor": cursor})
            )
        explorer.append(("sort=-cost, service=support-bot", page_url, {"sort": "-cost", "service": "support-bot"}))
        busy = Trace.objects.filter(project=project).exclude(session_id="").order_by("-start_time").first()
        assert busy is not None
        for name, url, params in (
            ("sessions list (24 h)", f"/p/{SLUG}/sessions/", {}),
            ("sessions list (7 d, by cost)", f"/p/{SLUG}/sessions/", {"range": "7d", "sort": "cost"}),
            ("users list (24 h)", f"/p/{SLUG}/users/", {}),
            ("users list (7 d, by traces)", f"/p/{SLUG}/users/", {"range": "7d", "sort": "traces"}),
            ("session page (newest session)", f"/p/{SLUG}/session/", {"id": busy.session_id}),
            ("user page (newest user)", f"/p/{SLUG}/user/", {"id": busy.user_id}),
        ):
            explorer.append((name, url, params))
    runs: list[tuple[str, str, dict[str, str], str, dict[str, str]]] = [
        ("page", page_url, {}, name, params) for name, params in cases
    ]
    runs += [("api", "/api/v1/traces", api_headers, name, params) for name, params in cases]
    runs += [("page", url, {}, name, params) for name, url, params in explorer]
    for kind, url, headers, name, params in runs:

        def get(url: str = url, params: dict[str, str] = params, headers: dict[str, str] = headers) -> Any:
            response = client.get(url, params, headers=headers)
            assert response.status_code == 200, (url, params, response.status_code, response.content[:300])
            return response

        timing = timed(get, args.repeat)
        with CaptureQueriesContext(connection) as queries:
            response = get()
        sql_ms = sum(float(q["time"]) * 1000 for q in queries.captured_queries)
        slowest = max(queries.captured_queries, key=lambda q: float(q["time"]))
        rows = len(json.loads(response.content)["items"]) if kind == "api" else None
        result: dict[str, Any] = {
            "kind": kind,
            "case": name,
            **timing,
            "queries": len(queries.captured_queries),
            "sql_ms": round(sql_ms, 1),
            "slowest_query_ms": round(float(slowest["time"]) * 1000, 1),
            "slowest_query": slowest["sql"],
            "rows": rows,
            "query_ms": [
                [round(float(q["time"]) * 1000, 1), " ".join(q["sql"].split())[:160]] for q in queries.captured_queries
            ],
        }
        results.append(result)
        log(
            f"{kind:4} {name:45} median {timing['median_ms']:7.1f} ms  (min {timing['min_ms']:.1f}, max "
            f"{timing['max_ms']:.1f})  {result['queries']} queries, {result['sql_ms']:.1f} ms SQL, "
            f"slowest {result['slowest_query_ms']:.1f} ms"
        )
    reset_queries()
    for result in results[:1] + results[len(cases) : len(cases) + 1]:
        log(f"\nqueries of {result['kind']} '{result['case']}' (ms, SQL):")
        for ms, statement in result["query_ms"]:
            log(f"  {ms:6.1f}  {statement}")

    # EXPLAIN ANALYZE of the list query for the key cases, and of the filter drop-down facets.
    plans: dict[str, str] = {}
    for name, params in [c for c in cases if c[0].split(" (")[0] in ("first page", "deep page", "status=error")] + [
        c for c in cases if "model=" in c[0] or c[0].startswith("q=") or c[0].startswith("min_duration_ms=")
    ]:
        with CaptureQueriesContext(connection) as queries:
            client.get("/api/v1/traces", params, headers=api_headers)
        list_sql = [q["sql"] for q in queries.captured_queries if 'FROM "traces_trace"' in q["sql"]][-1]
        plans[name] = explain(list_sql)
    with CaptureQueriesContext(connection) as queries:
        client.get(page_url)
    for q in queries.captured_queries:
        if "DISTINCT" in q["sql"]:
            plans["facets: " + q["sql"][:60]] = explain(q["sql"])
        if "COUNT(*)" in q["sql"] and "traces_trace" in q["sql"]:
            plans["count (first page)"] = explain(q["sql"])
    for name, url, params in explorer:
        if name.startswith("sort="):
            with CaptureQueriesContext(connection) as queries:
                client.get(url, params)
            sorted_sql = [
                q["sql"] for q in queries.captured_queries if "ORDER BY" in q["sql"] and "traces_trace" in q["sql"]
            ]
            plans[name] = explain(sorted_sql[0])
    for name, plan in plans.items():
        lines = plan.splitlines()
        summary = [line for line in lines if "Execution Time" in line or "Planning Time" in line]
        log(f"\nEXPLAIN {name}: {' '.join(s.strip() for s in summary)}")
        for line in lines if args.explain else lines[:6]:
            log("  " + line)

    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": {**info, "generated_at": datetime.now(UTC).isoformat()},
                    "data": counts,
                    "walk": {"pages": args.deep_pages, "seconds": round(walk_s, 2)},
                    "results": results,
                    "plans": plans,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
