"""SLOs: the evaluation tick, the SLO and incident pages, /metrics, and what the SLI hook adds to rollups.

    .venv/bin/python bench/slo_bench.py [--ticks 20] [--repeat 9] [--recompute-repeat 7] [--source worktree|REV] [--keep]
                                   [--json out.json]

Fills its own database ``sre4ai_bench_slos`` (dropped and re-created at the start, dropped at the end unless
--keep), all data seeded (fixed seeds; times are relative to the minute the run starts):

- one project with a service ``support-bot``: 2,000 traces in the hour before the run (a busy hour in which
  release v2 takes half the traffic and fails grounding on 60% of its answers) and 2,000 over the 24 hours
  before that, three spans each (answer → retrieve with 3 documents, chat), sent through ``POST /api/v1/traces``,
  then three evaluator scores per trace (grounding, refusal, pii) and the rollups;
- 50 SLOs with the default policy (``default_rule_rows(30)``): 10 on support-bot (every SLI kind the traces can
  judge) and 40 on eight other services. Each has a 30-day window of per-minute SliMinute rows (43,200 per SLO,
  2.16 M in all): support-bot's last 25 hours come from its traces (``sli_history_rebuild``), everything else is
  synthetic, written with COPY (SliMinute rows are derived data);
- the Celery broker is ``memory://``: the scoring and notification tasks that ingest and incidents enqueue stay
  in this process and vanish with it (no Redis, no worker).

Measured, in this order:

1. rollup recompute (``minutes_recompute``) of a busy hour (60 minutes, 2,000 traces) and a quiet batch (500
   minutes, the dirty-claim batch size) with 0, 10 and 50 SLOs in the project, interleaved (the SLOs are moved
   to a parking project between runs), and the SLI hook alone on the same traces; measured before the SLI
   history is loaded and again at the end, with 2.16 M SliMinute rows in the table (the first round of that
   second pass replaces the synthetic minutes of the other services' SLOs in those batches, and is dropped);
2. the evaluation tick ``slos_evaluate(now=...)`` with 1, 10 and 50 SLOs whose history is ready: the first tick
   (creates the rule states; at 1 SLO it opens the incident) and --ticks steady ticks, with median, p95, the
   split between SQL and Python (every query timed through an execute wrapper) and the CPU of this process
   and of its PostgreSQL backend; then the plan of the tick's purge, and the queries behind each slow spot as the
   code runs them beside what a suggested fix would run (``what_if``);
3. the pages, in-process with Django's test Client (server time, no network): median and max of --repeat
   requests after one warm-up, with the query count and the time spent in SQL.

No timing is asserted anywhere; this prints and optionally writes JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PG_BASE_URL, REPO, machine, pg_execute, snapshot

DB = "sre4ai_bench_slos"
SLUG = "bench"
SERVICE = "support-bot"
WINDOW_MINUTES = 30 * 24 * 60
BUSY_TRACES = 2000  # in the hour before the run: the incident window the triage page reads
BASELINE_TRACES = 2000  # over the 24 hours before that: the triage page's baseline
QUIET_BATCH = 500  # rollups.services.CLAIM_BATCH: minutes recomputed per dirty claim
OTHER_SERVICES = ["search", "summariser", "travel-agent", "coder", "translator", "sql-bot", "mailer", "voice"]
# (name, sli_kind, evaluator, comparator, threshold, objective, environment, model, route) on support-bot.
SUPPORT_SLOS = [
    ("Grounded answers", "score", "grounding", "pass", None, "0.99", "", "", ""),
    ("No errors", "error", "", "", None, "0.999", "", "", ""),
    ("Fast answers", "latency", "", "", "2000", "0.99", "", "", ""),
    ("Cheap answers", "cost", "", "", "0.01", "0.99", "", "", ""),
    ("No safety flag", "safety", "", "", None, "0.999", "", "", ""),
    ("Grounding score at least 0.7", "score", "grounding", ">=", "0.7", "0.98", "", "", ""),
    ("No refusals", "score", "refusal", "pass", None, "0.995", "", "", ""),
    ("Fast on gpt-4o-mini in production", "latency", "", "", "2000", "0.99", "production", "gpt-4o-mini", ""),
    ("No PII", "score", "pii", "pass", None, "0.999", "", "", ""),
    ("Answer route without errors", "error", "", "", None, "0.995", "", "", "answer"),
]
OTHER_KINDS = [
    ("errors", "error", "", "", None, "0.999"),
    ("latency", "latency", "", "", "3000", "0.99"),
    ("grounding", "score", "grounding", "pass", None, "0.98"),
    ("cost", "cost", "", "", "0.05", "0.995"),
    ("safety", "safety", "", "", None, "0.999"),
]
OTHER_RATES = [3, 8, 15, 30, 60]  # mean events per minute of the synthetic SLIs, by SLO
MINUTE = timedelta(minutes=1)


# --------------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------------


class QueryLog:
    """Every query of the default connection with its wall time (an execute wrapper: no DEBUG needed)."""

    def __init__(self) -> None:
        self.queries: list[tuple[str, float]] = []

    def __call__(self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.queries.append((sql, time.perf_counter() - started))

    @property
    def seconds(self) -> float:
        return sum(t for _, t in self.queries)


@contextmanager
def logged_queries() -> Iterator[QueryLog]:
    """Queries and COMMITs (which Django sends outside the execute wrappers) of the default connection."""
    from django.db import connection

    log = QueryLog()
    commit = connection.commit

    def timed_commit() -> None:
        started = time.perf_counter()
        try:
            commit()
        finally:
            log.queries.append(("COMMIT", time.perf_counter() - started))

    setattr(connection, "commit", timed_commit)  # noqa: B010 - an instance attribute shadows the method
    try:
        with connection.execute_wrapper(log):
            yield log
    finally:
        delattr(connection, "commit")  # back to the class method


def backend_cpu() -> float | None:
    """CPU seconds used so far by this connection's PostgreSQL backend (None when /proc cannot tell)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def p95(values: list[float]) -> float:
    """Nearest-rank 95th percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


# --------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------


def trace_payload(rng: random.Random, start: datetime, release: str, failing: bool) -> dict[str, Any]:
    """One support-bot answer: a chain with a retrieval (3 documents) and an LLM call."""
    duration = rng.lognormvariate(math.log(800), 0.35)
    error = rng.random() < 0.0005
    stale = release == "v2" and failing
    sources = ["kb/refunds-2023.md" if stale else "kb/refunds.md", "kb/shipping.md", f"kb/faq-{rng.randrange(40)}.md"]
    question = f"How long do refunds take for order {rng.randrange(10**6)}?"
    answer = "Refunds take 30 days." if stale else "Refunds take 14 days."
    return {
        "trace_id": f"{rng.getrandbits(128) | 1:032x}",
        "name": "answer",
        "service": SERVICE,
        "environment": "production",
        "release": release,
        "session_id": f"s{rng.randrange(300)}",
        "user_id": f"u{rng.randrange(500)}",
        "spans": [
            {
                "name": "answer",
                "kind": "chain",
                "start_time": start.isoformat(),
                "end_time": (start + timedelta(milliseconds=duration)).isoformat(),
                "status": "error" if error else "ok",
                "input": question,
                "output": answer,
                "children": [
                    {
                        "name": "retrieve",
                        "kind": "retriever",
                        "start_time": start.isoformat(),
                        "end_time": (start + timedelta(milliseconds=50)).isoformat(),
                        "documents": [
                            {
                                "id": f"doc-{i}-{rng.randrange(1000)}",
                                "content": f"Policy text {i}.",
                                "score": 0.8,
                                "metadata": {"source": source},
                            }
                            for i, source in enumerate(sources)
                        ],
                    },
                    {
                        "name": "chat",
                        "kind": "llm",
                        "start_time": (start + timedelta(milliseconds=60)).isoformat(),
                        "end_time": (start + timedelta(milliseconds=duration)).isoformat(),
                        "model": "gpt-4o-mini",
                        "provider": "openai",
                        "input_tokens": 600,
                        "output_tokens": 80,
                        "cost": "0.0021",
                        "prompt_name": "answer",
                        "prompt_version": "4" if release == "v2" else "3",
                        "input": question,
                        "output": answer,
                    },
                ],
            }
        ],
    }


def seed_traces(secret: str, t0: datetime) -> dict[str, bool]:
    """Send the support-bot traces through the native API; returns trace id → fails grounding."""
    from django.test import Client

    rng = random.Random(7)
    traces: list[dict[str, Any]] = []
    failing: dict[str, bool] = {}
    for busy, count, first, span in (
        (True, BUSY_TRACES, t0 - timedelta(hours=1), 3600),
        (False, BASELINE_TRACES, t0 - timedelta(hours=25), 24 * 3600),
    ):
        for _ in range(count):
            start = first + timedelta(seconds=rng.uniform(0, span - 1))
            release = "v2" if busy and rng.random() < 0.5 else "v1"
            fails = rng.random() < (0.6 if release == "v2" else 0.005)
            payload = trace_payload(rng, start, release, fails)
            failing[payload["trace_id"]] = fails
            traces.append(payload)
    client = Client()
    for i in range(0, len(traces), 250):
        response = client.post(
            "/api/v1/traces",
            json.dumps({"traces": traces[i : i + 250]}),
            content_type="application/json",
            headers={"Authorization": f"Bearer {secret}"},
        )
        assert response.status_code == 200, response.content[:500]
    return failing


def seed_scores(project: Any, failing: dict[str, bool]) -> int:
    """Three evaluator scores per trace, as the scoring worker writes them (one upsert key per judgement)."""
    from evals.models import Score
    from evals.services import score_key_evaluator
    from traces.models import Trace

    rng = random.Random(11)
    rows = []
    for pk, trace_id, start in (
        Trace.objects.filter(project=project).order_by("trace_id").values_list("pk", "trace_id", "start_time")
    ):
        fails = failing[trace_id]
        for name, passed, value in (
            ("grounding", not fails, 0.2 if fails else 0.85),
            ("refusal", rng.random() >= 0.002, None),
            ("pii", rng.random() >= 0.0001, None),
        ):
            rows.append(
                Score(
                    project=project,
                    trace_id=pk,
                    key=score_key_evaluator(pk, "", name, 1, name),
                    service=SERVICE,
                    trace_start=start,
                    name=name,
                    value=value,
                    passed=passed,
                    evaluator=name,
                    evaluator_version=1,
                    source="evaluator",
                )
            )
    Score.objects.bulk_create(rows, batch_size=2000)
    return len(rows)


def create_slos(project: Any, channel: Any, ready_at: datetime) -> list[Any]:
    """10 SLOs on support-bot, then 5 per other service: 50 in pk order, the incident SLO first."""
    from slos.forms import default_rule_rows
    from slos.models import SLO

    policy = default_rule_rows(30)
    rows = []
    for name, kind, evaluator, comparator, threshold, objective, environment, model, route in SUPPORT_SLOS:
        rows.append(
            SLO(
                project=project,
                name=name,
                service=SERVICE,
                sli_kind=kind,
                evaluator=evaluator,
                comparator=comparator,
                threshold=None if threshold is None else Decimal(threshold),
                objective=Decimal(objective),
                environment=environment,
                model=model,
                route=route,
                window_days=30,
                policy=policy,
                runbook="Roll back the last release; check the retriever.",
                history_ready_at=ready_at,
            )
        )
    for service in OTHER_SERVICES:
        for label, kind, evaluator, comparator, threshold, objective in OTHER_KINDS:
            rows.append(
                SLO(
                    project=project,
                    name=f"{service} {label}",
                    service=service,
                    sli_kind=kind,
                    evaluator=evaluator,
                    comparator=comparator,
                    threshold=None if threshold is None else Decimal(threshold),
                    objective=Decimal(objective),
                    window_days=30,
                    policy=policy,
                    history_ready_at=ready_at,
                )
            )
    slos = SLO.objects.bulk_create(rows)
    for slo in slos[: len(SUPPORT_SLOS)]:
        slo.channels.add(channel)
    return slos


def synthetic_counts(index: int, objective: Decimal, rate: float, minutes: int) -> tuple[Any, Any]:
    """Per-minute (good, total) of one SLO: Poisson traffic with a daily cycle, at least one event a minute,
    bad events at 0.3× the budget; every third SLO also has a 15-minute outage (day 9) and an 8-hour slow burn
    (day 20) in its history, so the backtest has alerts to show."""
    import numpy as np

    rng = np.random.default_rng(1000 + index)
    m = np.arange(minutes)
    totals = np.maximum(1, rng.poisson(rate * (1 + 0.6 * np.sin(2 * np.pi * m / 1440))))
    budget = float(1 - objective)
    p_bad = np.full(minutes, 0.3 * budget)
    if index % 3 == 0 and minutes > 21 * 1440:
        p_bad[9 * 1440 : 9 * 1440 + 15] = min(1.0, 40 * budget)
        p_bad[20 * 1440 : 20 * 1440 + 480] = min(1.0, 4 * budget)
    bad = rng.binomial(totals, p_bad)
    return totals - bad, totals


def copy_synthetic(slos: list[Any], window_start: datetime, real_from: datetime) -> int:
    """COPY 30 days of SliMinute rows per SLO; support-bot SLOs only before their traces (real_from)."""
    from django.db import connection

    stamps = [(window_start + MINUTE * i).isoformat() for i in range(WINDOW_MINUTES)]
    rows = 0
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy("COPY slos_sliminute (slo_id, minute, good, total) FROM STDIN") as copy,
    ):
        for index, slo in enumerate(slos):
            support = slo.service == SERVICE
            minutes = (real_from - window_start) // MINUTE if support else WINDOW_MINUTES
            rate = 1.4 if support else OTHER_RATES[index % len(OTHER_RATES)]
            good, total = synthetic_counts(index, slo.objective, rate, minutes)
            copy.write(
                "".join(f"{slo.pk}\t{stamps[i]}\t{g}\t{t}\n" for i, (g, t) in enumerate(zip(good, total, strict=True)))
            )
            rows += minutes
    return rows


# --------------------------------------------------------------------------------------------------
# Benchmarks
# --------------------------------------------------------------------------------------------------


def bench_recompute(project: Any, parking: Any, slos: list[Any], t0: datetime, repeat: int) -> dict[str, Any]:
    """minutes_recompute of two batches with 0, 10 and 50 SLOs in the project, interleaved; the hook alone."""
    from django.db import transaction

    from evals.selectors import trace_verdicts
    from rollups.services import minutes_recompute
    from slos.models import SLO
    from slos.services import sli_minutes_recompute
    from sre4ai_web.lib.timebuckets import floor_minute
    from traces.models import Trace
    from traces.selectors import TRACE_ROW_FIELDS

    support = [s.pk for s in slos[: len(SUPPORT_SLOS)]]
    others = [s.pk for s in slos[len(SUPPORT_SLOS) :]]
    batches = {
        "busy hour (60 min)": [t0 - timedelta(hours=1) + MINUTE * i for i in range(60)],
        f"quiet ({QUIET_BATCH} min)": [t0 - timedelta(hours=25) + MINUTE * i for i in range(QUIET_BATCH)],
    }
    configs = {0: ([], support + others), 10: (support, others), 50: (support + others, [])}
    times: dict[tuple[str, int], list[float]] = {(b, n): [] for b in batches for n in configs}
    hook: dict[tuple[str, int], list[float]] = {(b, n): [] for b in batches for n in (10, 50)}
    inputs = {}
    for batch, minutes in batches.items():
        wanted = set(minutes)
        traces = [
            t
            for t in Trace.objects.filter(
                project=project, start_time__gte=minutes[0], start_time__lt=minutes[-1] + MINUTE
            ).values(*TRACE_ROW_FIELDS)
            if floor_minute(t["start_time"]) in wanted
        ]
        inputs[batch] = (minutes, traces, trace_verdicts([t["pk"] for t in traces]))
    for _ in range(repeat + 1):  # the first round warms up and is dropped
        for n, (inside, parked) in configs.items():
            SLO.objects.filter(pk__in=inside).update(project=project)
            SLO.objects.filter(pk__in=parked).update(project=parking)
            for batch, (minutes, traces, verdicts) in inputs.items():
                started = time.perf_counter()
                minutes_recompute(project_id=project.pk, minutes=minutes)
                times[(batch, n)].append(time.perf_counter() - started)
                if n:
                    started = time.perf_counter()
                    with transaction.atomic():
                        sli_minutes_recompute(project_id=project.pk, minutes=minutes, traces=traces, verdicts=verdicts)
                    hook[(batch, n)].append(time.perf_counter() - started)
    SLO.objects.filter(pk__in=support + others).update(project=project)
    rows = []
    for batch, (_, traces, _) in inputs.items():
        base = statistics.median(times[(batch, 0)][1:])
        for n in configs:
            median = statistics.median(times[(batch, n)][1:])
            row: dict[str, Any] = {
                "batch": batch,
                "traces": len(traces),
                "slos": n,
                "median_ms": ms(median),
                "max_ms": ms(max(times[(batch, n)][1:])),
                "vs_0_slos": round(median / base, 3),
            }
            if n:
                alone = statistics.median(hook[(batch, n)][1:])
                row["hook_alone_ms"] = ms(alone)
                row["hook_us_per_trace"] = round(alone / max(1, len(traces)) * 1e6, 1)
            rows.append(row)
            print(
                f"  recompute {batch:<20} {len(traces):>5} traces  {n:>2} SLOs  {row['median_ms']:>8} ms"
                f"  ×{row['vs_0_slos']}  hook alone {row.get('hook_alone_ms', '-')} ms"
            )
    return {"rows": rows}


def _classify(sql: str) -> str:
    head = sql.lstrip().split(None, 1)[0].upper()
    if head == "DELETE" and "slos_sliminute" in sql:
        return "purge old SliMinute rows"
    if head == "SELECT" and ('FROM "slos_sliminute"' in sql or 'FROM "slos_slihour"' in sql):
        return "read SLI minutes"
    if "slos_rulestate" in sql and head in ("UPDATE", "INSERT"):
        return "write rule states"
    if head == "COMMIT":
        return "COMMIT"
    return "other SQL"


def bench_tick(slos: list[Any], now: datetime, ticks: int) -> list[dict[str, Any]]:
    from slos.models import SLO, Incident
    from slos.services import slos_evaluate

    rows: list[dict[str, Any]] = []
    for n in (1, 10, 50):
        SLO.objects.update(history_ready_at=None)
        SLO.objects.filter(pk__in=[s.pk for s in slos[:n]]).update(history_ready_at=now)
        with logged_queries() as first_log:
            started = time.perf_counter()
            first = slos_evaluate(now=now)
            first_seconds = time.perf_counter() - started
        assert first.evaluated == n
        walls, sql, groups = (
            [],
            [],
            dict.fromkeys(
                ["read SLI minutes", "write rule states", "COMMIT", "purge old SliMinute rows", "other SQL"], 0.0
            ),
        )
        queries = 0
        cpu_before, pg_before = time.process_time(), backend_cpu()
        for _ in range(ticks):
            with logged_queries() as log:
                started = time.perf_counter()
                result = slos_evaluate(now=now)
                walls.append(time.perf_counter() - started)
            assert result.evaluated == n, result
            assert result.changes == 0, result
            sql.append(log.seconds)
            queries = len(log.queries)
            for text, seconds in log.queries:
                groups[_classify(text)] += seconds / ticks
        cpu = (time.process_time() - cpu_before) / ticks
        pg_after = backend_cpu()
        median = statistics.median(walls)
        row = {
            "slos": n,
            "first_tick_ms": ms(first_seconds),
            "first_tick_changes": first.changes,
            "first_tick_queries": len(first_log.queries),
            "median_ms": ms(median),
            "p95_ms": ms(p95(walls)),
            "max_ms": ms(max(walls)),
            "per_slo_ms": round(median * 1000 / n, 2),
            "share_of_minute_pct": round(median / 60 * 100, 3),
            "queries": queries,
            "sql_ms": ms(statistics.median(sql)),
            "sql_groups_ms": {k: ms(v) for k, v in groups.items()},
            "python_cpu_ms": ms(cpu),
            "pg_cpu_ms": None if pg_before is None or pg_after is None else ms((pg_after - pg_before) / ticks),
        }
        rows.append(row)
        print(
            f"  tick {n:>2} SLOs: median {row['median_ms']} ms, p95 {row['p95_ms']} ms, {row['per_slo_ms']} ms/SLO,"
            f" {queries} queries, SQL {row['sql_ms']} ms {row['sql_groups_ms']}, CPU python {row['python_cpu_ms']}"
            f" / PG {row['pg_cpu_ms']} ms; first tick {row['first_tick_ms']} ms ({first.changes} changes)"
        )
    slope = (rows[-1]["median_ms"] - rows[0]["median_ms"]) / (rows[-1]["slos"] - rows[0]["slos"])
    rows.append({"marginal_ms_per_slo": round(slope, 2)})
    print(f"  each SLO beyond the first adds {slope:.1f} ms to the tick")
    assert Incident.objects.filter(slo=slos[0]).exists(), "the busy hour should have opened an incident"
    SLO.objects.update(history_ready_at=now)
    return rows


def bench_pages(user: Any, secret: str, slos: list[Any], repeat: int) -> list[dict[str, Any]]:
    from django.test import Client

    from slos.models import Incident

    client = Client()
    client.force_login(user)
    incident = Incident.objects.filter(slo=slos[0]).get()
    # An SLO of another service: 43,200 synthetic minutes with two past alerts (index 12: a multiple of 3).
    typical = slos[len(SUPPORT_SLOS) + 2]
    bearer = {"Authorization": f"Bearer {secret}"}
    cases = [
        ("SLO list (50 SLOs)", f"/p/{SLUG}/slos/", {}, {}),
        ("SLO page ?range=1d", f"/p/{SLUG}/slos/{typical.pk}/", {"range": "1d"}, {}),
        ("SLO page ?range=7d", f"/p/{SLUG}/slos/{typical.pk}/", {"range": "7d"}, {}),
        ("SLO page ?range=window", f"/p/{SLUG}/slos/{typical.pk}/", {"range": "window"}, {}),
        ("SLO page ?backtest=1", f"/p/{SLUG}/slos/{typical.pk}/", {"backtest": "1"}, {}),
        ("incident list", f"/p/{SLUG}/incidents/", {}, {}),
        ("incident (triage) page", f"/p/{SLUG}/incidents/{incident.pk}/", {}, {}),
        ("/metrics (50 SLOs)", "/metrics", {}, bearer),
    ]
    rows = []
    for name, path, params, headers in cases:
        assert client.get(path, params, headers=headers).status_code == 200, path
        walls, sql, queries = [], [], 0
        for _ in range(repeat):
            with logged_queries() as log:
                started = time.perf_counter()
                response = client.get(path, params, headers=headers)
                walls.append(time.perf_counter() - started)
            assert response.status_code == 200, (path, response.status_code)
            sql.append(log.seconds)
            queries = len(log.queries)
        row = {
            "page": name,
            "median_ms": ms(statistics.median(walls)),
            "max_ms": ms(max(walls)),
            "sql_ms": ms(statistics.median(sql)),
            "queries": queries,
        }
        rows.append(row)
        print(f"  {name:<28} {row['median_ms']:>8} ms (max {row['max_ms']}), SQL {row['sql_ms']} ms, {queries} queries")
    return rows


def explain_purge(now: datetime) -> str:
    """The plan of the tick's purge of old SLI minutes, with its real time."""
    from django.db import connection

    from sre4ai_web.lib.timebuckets import floor_minute

    with connection.cursor() as cursor:
        cursor.execute(
            "EXPLAIN (ANALYZE, COSTS OFF) DELETE FROM slos_sliminute WHERE minute < %s",
            [floor_minute(now) - timedelta(days=31)],
        )
        return "\n".join(row[0] for row in cursor.fetchall())


def _median_ms(run: Callable[[], Any], repeat: int) -> float:
    run()  # warm-up
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return ms(statistics.median(times))


def what_if(slos: list[Any], t0: datetime, now: datetime, repeat: int) -> dict[str, float]:
    """The reads and writes behind the slow spots as the code does them, beside the alternatives (the minute-row
    reads the code did before SliHour); median of --repeat runs each; writes are rolled back."""
    from django.db import connection, transaction
    from django.db.models import Q, Sum

    from slos import burn
    from slos.models import SliMinute
    from slos.selectors import evaluation_minute, sli_series, window_counts
    from slos.services import sli_hours_refresh

    ids = [s.pk for s in slos]
    typical = slos[len(SUPPORT_SLOS) + 2]
    end = evaluation_minute(now)
    quiet = [t0 - timedelta(hours=25) + MINUTE * i for i in range(QUIET_BATCH)]
    windows = [5, 30, 60, 120, 360, 1440, 4320]  # the default policy's long and short windows, in minutes

    def rolled_back(delete: Callable[[], Any]) -> Callable[[], None]:
        def run() -> None:
            with transaction.atomic():
                delete()
                transaction.set_rollback(True)

        return run

    def window_sums(slo_ids: list[int]) -> list[Any]:
        sums = {
            f"{k}{w}": Sum(k, filter=Q(minute__gt=end - MINUTE * w)) for w in windows[:-1] for k in ("good", "total")
        }
        rows = SliMinute.objects.filter(slo_id__in=slo_ids, minute__gt=end - MINUTE * windows[-1], minute__lte=end)
        return list(rows.values("slo_id").annotate(g=Sum("good"), t=Sum("total"), **sums))

    def list_sums(table: str, column: str) -> Callable[[], None]:
        days = ", ".join(
            f"SUM(good) FILTER (WHERE {column} > %s), SUM(total) FILTER (WHERE {column} > %s)" for _ in (7, 28)
        )
        statement = (
            f"SELECT slo_id, {days}, SUM(good), SUM(total) FROM {table} "  # noqa: S608 - names are constants here
            f"WHERE slo_id = ANY(%s) AND {column} > %s AND {column} <= %s GROUP BY slo_id"
        )
        params: list[Any] = [end - timedelta(days=d) for d in (7, 7, 28, 28)] + [ids, end - timedelta(days=30), end]

        def run() -> None:
            with connection.cursor() as cursor:
                cursor.execute(statement, params)
                cursor.fetchall()

        return run

    found: dict[str, float] = {}
    found["hook DELETE, 500 minutes x 50 SLOs, as written"] = _median_ms(
        rolled_back(SliMinute.objects.filter(slo_id__in=ids, minute__in=quiet).delete), repeat
    )
    found["hook DELETE, same, plus minute range"] = _median_ms(
        rolled_back(
            SliMinute.objects.filter(
                slo_id__in=ids, minute__in=quiet, minute__gte=quiet[0], minute__lte=quiet[-1]
            ).delete
        ),
        repeat,
    )
    found["tick read, 1 SLO: 4,320 rows into PrefixSums"] = _median_ms(
        lambda: burn.PrefixSums(sli_series(slo=typical, start=end - MINUTE * (windows[-1] - 1), end=end)), repeat
    )
    found["tick read, 1 SLO: window sums in SQL"] = _median_ms(lambda: window_sums([typical.pk]), repeat)
    found["tick read, 50 SLOs: window sums in SQL, one query"] = _median_ms(lambda: window_sums(ids), repeat)
    found["list sums, 50 SLOs, from minute rows"] = _median_ms(list_sums("slos_sliminute", "minute"), repeat)
    found["list sums, 50 SLOs, from hour rows"] = _median_ms(list_sums("slos_slihour", "hour"), repeat)
    found["window_counts, 50 SLOs, 30 d (hours + partial hours)"] = _median_ms(
        lambda: window_counts(slos=slos, end=end, windows=[30 * 24 * 60]), repeat
    )
    started = time.perf_counter()
    with transaction.atomic():
        sli_hours_refresh(slo_ids=ids)
        transaction.set_rollback(True)
    found["(sli_hours_refresh of every hour of 50 SLOs, rolled back)"] = ms(time.perf_counter() - started)
    for name, value in found.items():
        print(f"  {name:<56} {value:>8} ms")
    return found


# --------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ticks", type=int, default=20, help="Steady ticks measured per SLO count.")
    parser.add_argument("--repeat", type=int, default=9, help="Requests per page after a warm-up.")
    parser.add_argument("--recompute-repeat", type=int, default=7, help="Rounds of the recompute comparison.")
    parser.add_argument("--keep", action="store_true", help=f"Keep the database {DB} at the end.")
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--source",
        default="worktree",
        help="Code to measure: 'worktree' (a copy of the working tree taken at the start, the default) or a git "
        "revision such as HEAD.",
    )
    args = parser.parse_args()
    result: dict[str, Any] = {"machine": machine(args.source), "source": args.source}
    status = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True, check=False)
    result["uncommitted"] = status.stdout.splitlines() if args.source == "worktree" else []
    pg_execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    pg_execute(f"CREATE DATABASE {DB}")
    var_dir = tempfile.mkdtemp(prefix="sre4ai-bench-slos-")
    # Edits that others make to the working tree during the run do not leak into what is measured.
    src = snapshot(Path(var_dir) / "src", args.source)
    env = {
        "DATABASE_URL": f"{PG_BASE_URL}/{DB}",
        "DJANGO_SETTINGS_MODULE": "sre4ai_web.settings",
        "CELERY_BROKER_URL": "memory://",
        "DATABASE_CONN_MAX_AGE": "600",  # one connection for the whole run, as a long-lived worker keeps
        "SRE4AI_VAR_DIR": var_dir,
        "SRE4AI_STATIC_ROOT": str(REPO / "staticfiles"),  # the pages need the collected files' manifest
    }
    os.environ.update(env)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=src, env=os.environ, check=True)
    os.environ["DJANGO_ALLOWED_HOSTS"] = "testserver"
    sys.path.insert(0, str(src))
    os.chdir(src)
    import django

    django.setup()
    from django.db import connection, connections
    from django.utils import timezone

    from accounts.services import api_key_issue, membership_set, project_create, user_create
    from rollups.services import dirty_process
    from slos.models import Channel, SliMinute
    from slos.services import sli_history_rebuild, sli_hours_refresh
    from sre4ai_web.lib.timebuckets import floor_minute

    try:
        project = project_create(slug=SLUG)
        parking = project_create(slug="parking")
        user = user_create(username="bench", password=os.urandom(16).hex())  # force_login below: never typed
        membership_set(project=project, user=user, role="admin")
        secret = api_key_issue(project=project, name="bench", scopes=["ingest", "read"]).secret_key
        t0 = floor_minute(timezone.now())
        now = t0 + timedelta(seconds=10)  # the tick judges minute t0 - 1, the last minute with traces

        started = time.monotonic()
        failing = seed_traces(secret, t0)
        scores = seed_scores(project, failing)
        while dirty_process():
            pass
        seeded = round(time.monotonic() - started, 1)
        print(
            f"seeded {len(failing)} traces ({3 * len(failing)} spans), {scores} scores and their rollups in {seeded} s"
        )

        channel = Channel.objects.create(
            project=project, name="oncall", kind="webhook", config={"url": "https://hooks.example.com/sre4ai"}
        )
        slos = create_slos(project, channel, now)
        print("rollup recompute with 0 / 10 / 50 SLOs (interleaved):")
        result["recompute"] = bench_recompute(project, parking, slos, t0, args.recompute_repeat)

        started = time.monotonic()
        events = sum(sli_history_rebuild(slo_id=s.pk, now=now) for s in slos[: len(SUPPORT_SLOS)])
        history = time.monotonic() - started
        window_start = t0 - timedelta(days=30)
        started = time.monotonic()
        copied = copy_synthetic(slos, window_start, t0 - timedelta(hours=25))
        sli_hours_refresh(slo_ids=[s.pk for s in slos])  # the COPY bypassed the services that keep the hours
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        total_rows = SliMinute.objects.count()
        print(
            f"SLI history of the 10 support-bot SLOs from their traces: {events} events in {history:.1f} s; "
            f"COPY of {copied} synthetic rows + ANALYZE in {time.monotonic() - started:.1f} s; "
            f"{total_rows} SliMinute rows"
        )
        result["data"] = {
            "traces": len(failing),
            "scores": scores,
            "slos": len(slos),
            "sli_minute_rows": total_rows,
            "seed_seconds": seeded,
            "history_rebuild_seconds": round(history, 1),
        }

        print("evaluation tick:")
        result["tick"] = bench_tick(slos, now, args.ticks)
        result["purge_plan"] = explain_purge(now)
        print(result["purge_plan"])
        print("slow spots, as written and as a fix would do them:")
        result["what_if"] = what_if(slos, t0, now, args.repeat)
        print("pages:")
        result["pages"] = bench_pages(user, secret, slos, args.repeat)
        # Again with 30 days of SLI minutes in the table: what the hook's DELETE costs in the steady state.
        print(f"rollup recompute again, with {total_rows} SliMinute rows in the table:")
        result["recompute_full_table"] = bench_recompute(project, parking, slos, t0, args.recompute_repeat)
        result["loadavg_after"] = Path("/proc/loadavg").read_text().split()[:3]
        print(f"load average before {result['machine']['loadavg_before']}, after {result['loadavg_after']}")
    finally:
        connections.close_all()
        shutil.rmtree(var_dir, ignore_errors=True)
        if not args.keep:
            pg_execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=str))


if __name__ == "__main__":
    main()
