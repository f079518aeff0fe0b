"""Server time of every page a user reaches, on the trace-list benchmark's data (one million spans; run
``bench/trace_list.py`` first to fill it, ``bench/synthetic_scores.sql`` for eight scores per trace), as the
browser asks for them: the overview and service pages (from rollups), the trace list (filters, search, sorts),
trace, session and user pages, the SLO list, form and pages (each range, the backtest), incidents and their triage
page, channels, budgets, guard policies, evaluators, eval runs, drift, canary, datasets, probes, settings, and
the API docs, plus ``/metrics`` and the JSON endpoints that pages poll. Django starts as a web process does
(``sre4ai_web/wsgi.py`` of the code measured: views imported, ``gc.freeze()``).

    .venv/bin/python bench/dashboards.py [--setup] [--rebuild] [--repeat 9] [--db NAME] [--source worktree|REV]
                                         [--only TEXT] [--slow-queries N] [--profile N] [--json out.json]

``--setup`` adds what the traces alone do not make, once (it skips what exists): nine SLOs (errors, latency
and grounding on each service, the default 30-day policy, SLI history rebuilt from the traces), the incidents the
first evaluation tick opens (one acknowledged, assigned and annotated), a webhook channel, a dataset of 300 traces
with a probe and 24 runs of results, a drift run per service, an eval run, three cost budgets (by service, user
and trace attribute), a guard policy, a project secret and two saved trace-list views. Run it after the rollups
exist (``--rebuild``, or an earlier run) and an ``ANALYZE``: the SLI histories read every score of 30 days.
``--rebuild`` first recomputes the project's rollups from raw rows (``rollups_rebuild``) and reports how
long that takes. ``--db`` reads another copy of the data (default: ``BENCH_LIST_DB`` or ``sre4ai_bench_list``);
``--source REV`` measures a git revision's code (a snapshot, like ``slo_bench.py``), so two revisions can be
compared on the same data; ``--only a,b`` keeps the pages whose name contains one of the texts. Each page is requested
in-process with Django's test Client (server time, no network): one warm-up, then --repeat requests; the median
and p95 (nearest rank) of the wall time, the median CPU time of this process (Python; PostgreSQL's share is not
in it), the SQL time and query count of the last request, and the load average when the page was measured.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import math
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PG_BASE_URL, REPO, machine, snapshot

DB = os.environ.get("BENCH_LIST_DB", "sre4ai_bench_list")
SLUG = "bench"
SERVICES = ("support-bot", "travel-agent", "summariser")


def setup(project: Any, user: Any) -> None:
    """The objects a project in use has beside its traces; each group is skipped when it exists already."""
    from django.utils import timezone

    from accounts.services import project_secret_set
    from evals.drift.runs import drift_run_create, drift_run_execute
    from evals.models import DriftRun, EvalRun, Probe, ProbeResult, ProbeRun
    from evals.services import dataset_create, eval_run_create, probe_save, traces_add_to_dataset
    from guard.models import GuardPolicy
    from guard.policy import CheckRule, PolicySpec
    from guard.services import guard_policy_save
    from slos.forms import default_rule_rows
    from slos.models import SLO, Budget, Channel, Incident
    from slos.services import (
        incident_acknowledge,
        incident_assign,
        incident_note,
        sli_history_rebuild,
        slos_evaluate,
    )
    from traces.explorer_services import saved_view_create
    from traces.models import SavedView, Trace

    now = timezone.now()

    def step(name: str, started: float) -> None:
        print(f"setup: {name} in {time.monotonic() - started:.1f} s", flush=True)

    if not SLO.objects.filter(project=project).exists():
        started = time.monotonic()
        channel, _ = Channel.objects.get_or_create(
            project=project,
            name="oncall",
            defaults={"kind": "webhook", "config": {"url": "https://hooks.example.com/sre4ai"}},
        )
        policy = default_rule_rows(30)
        for service in SERVICES:
            for name, kind, extra in (
                ("errors", "error", {}),
                ("latency under 3 s", "latency", {"threshold": Decimal(3000)}),
                ("grounded answers", "score", {"evaluator": "grounding", "comparator": "pass"}),
            ):
                slo = SLO.objects.create(
                    project=project,
                    name=f"{service} {name}",
                    service=service,
                    sli_kind=kind,
                    objective=Decimal("0.95") if kind == "score" else Decimal("0.99"),
                    window_days=30,
                    policy=policy,
                    owner=user,
                    runbook="Roll back the last release; check the retriever.",
                    **extra,
                )
                slo.channels.add(channel)
                sli_history_rebuild(slo_id=slo.pk, now=now)
        step("9 SLOs with their 30-day SLI history", started)
        started = time.monotonic()
        slos_evaluate(now=now)
        incident = Incident.objects.filter(project=project).order_by("pk").first()
        if incident is not None:
            incident_acknowledge(incident_id=incident.pk, user=user)
            incident_assign(incident_id=incident.pk, assignee=user, user=user)
            incident_note(
                incident_id=incident.pk, user=user, text="Grounding fell after the 1.6.0 canary; rolling back."
            )
        step(f"evaluation tick: {Incident.objects.filter(project=project).count()} incidents", started)
    if not Probe.objects.filter(project=project).exists():
        started = time.monotonic()
        dataset = dataset_create(project=project, name="support regressions", user=user)
        sample = list(Trace.objects.filter(project=project, service="support-bot").order_by("-start_time")[:300])
        traces_add_to_dataset(dataset=dataset, traces=sample)
        probe = probe_save(
            probe=Probe(
                project=project,
                name="golden answers",
                dataset=dataset,
                service="support-bot",
                target_kind="http_endpoint",
                target_config={"url": "http://127.0.0.1:9/answer"},
                evaluators=["grounding"],
                interval_minutes=60,
            ),
            user=user,
        )
        items = list(dataset.items.all())
        for hour in range(24):
            at = now - timedelta(hours=24 - hour)
            run = ProbeRun.objects.create(
                probe=probe,
                project=project,
                trigger="schedule",
                scheduled_for=at,
                status="done",
                total=len(items),
                done=len(items),
                started_at=at,
                finished_at=at + timedelta(minutes=2),
                passed=len(items) - 7,
                changed=3,
                flipped=1,
                latency_ms_total=812.0 * len(items),
                cost=Decimal("0.42"),
            )
            ProbeResult.objects.bulk_create(
                [
                    ProbeResult(
                        run=run,
                        item=item,
                        question=str(item.input)[:500],
                        expected=item.expected,
                        answer=item.expected,
                        passed=(i + hour) % 40 != 0,
                        latency_ms=812.0,
                        scores={"grounding": {"passed": (i + hour) % 40 != 0, "value": 0.9, "explanation": ""}},
                        has_previous=hour > 0,
                        previous_answer=item.expected,
                        previous_passed=True,
                    )
                    for i, item in enumerate(items)
                ]
            )
        step(f"dataset of {len(items)} items, probe with 24 runs", started)
    if not DriftRun.objects.filter(project=project).exists():
        started = time.monotonic()
        for service in SERVICES:
            drift_run_execute(run_id=drift_run_create(project=project, service=service, now=now).pk)
        step("drift runs", started)
    if not EvalRun.objects.filter(project=project).exists():
        eval_run = eval_run_create(
            project=project,
            service="support-bot",
            since=now - timedelta(days=1),
            until=now,
            evaluators=["grounding"],
            user=user,
        )
        EvalRun.objects.filter(pk=eval_run.pk).update(status="done", done=eval_run.total, finished_at=now)
    if not Budget.objects.filter(project=project).exists():
        Budget.objects.create(
            project=project,
            name="support-bot monthly",
            scope="service",
            value="support-bot",
            window="month",
            warning_usd=Decimal(400),
            limit_usd=Decimal(500),
        )
        Budget.objects.create(
            project=project,
            name="per user daily",
            scope="user",
            window="day",
            warning_usd=Decimal("0.5"),
            limit_usd=Decimal(1),
        )
        # Keyed by a trace attribute (a tenant), looked up in the spans of every trace of the month.
        Budget.objects.create(
            project=project,
            name="per tenant monthly",
            scope="attribute",
            attribute="tenant",
            window="month",
            limit_usd=Decimal(100),
        )
    if not GuardPolicy.objects.filter(project=project).exists():
        guard_policy_save(
            project=project,
            service="support-bot",
            spec=PolicySpec(
                checks=[CheckRule(check="pii", action="redact"), CheckRule(check="user_budget")],
                deadline_ms=100,
                fail="open",
            ),
        )
        project_secret_set(project=project, name="PROBE_TOKEN", value="bench-token", user=user)
    if not SavedView.objects.filter(project=project).exists():
        saved_view_create(
            project=project, name="support-bot errors", query="service=support-bot&status=error", user=user
        )
        saved_view_create(project=project, name="expensive", query="sort=-cost&range=7d", user=user)


def cases_for(project: Any, secret: str) -> list[tuple[str, str, dict[str, str], dict[str, str]]]:
    """(name, path, query, headers) of every page a member reaches, with the data the project has."""
    from evals.models import Dataset, DriftRun, EvalRun, Probe, ProbeRun
    from rollups.models import TrafficRollup
    from slos.models import SLO, Channel, Incident
    from traces.models import Trace

    p = f"/p/{SLUG}"
    services = sorted(
        set(TrafficRollup.objects.filter(project=project, dimension="").values_list("service", flat=True))
    )
    # "/" only redirects to the first project's overview; the login page and the admin are not measured.
    cases: list[tuple[str, str, dict[str, str], dict[str, str]]] = []
    cases += [(f"overview {r}", f"{p}/", {"range": r}, {}) for r in ("1h", "24h", "7d", "30d")]
    # Polled by an empty project's "send your first trace" panel; on a full project it answers at once.
    cases += [("first-trace status", f"{p}/first-trace/", {}, {})]
    cases += [
        (f"service {s} {r}", f"{p}/service/", {"name": s, "range": r}, {}) for s in services for r in ("24h", "30d")
    ]
    list_cases = [
        ("", {}),
        ("service", {"service": "support-bot"}),
        ("model", {"model": "gpt-4o-mini"}),
        ("model=o3-pro 30d (rare)", {"model": "o3-pro", "range": "30d"}),
        ("status=error", {"status": "error"}),
        ("q=refunds", {"q": "refunds"}),
        ("q=chargeback (rare)", {"q": "chargeback"}),
        ("q=chargeback model=gpt-4o-mini (rare, two filters)", {"q": "chargeback", "model": "gpt-4o-mini"}),
        ("q=refunds service=summariser (none)", {"q": "refunds", "service": "summariser"}),
        ("min latency", {"min_duration_ms": "3000"}),
        ("range=30d service+model", {"range": "30d", "service": "support-bot", "model": "gpt-4o-mini"}),
        ("sort=-latency", {"sort": "-latency"}),
        ("sort=-cost 7d", {"sort": "-cost", "range": "7d"}),
        ("sort=-tokens", {"sort": "-tokens"}),
        ("sort=-score 1h (grounding)", {"sort": "-score", "score": "grounding", "range": "1h"}),
        ("sort=-score 24h (grounding)", {"sort": "-score", "score": "grounding", "range": "24h"}),
        ("sort=-score 30d (grounding)", {"sort": "-score", "score": "grounding", "range": "30d"}),
        ("sort=score 24h failing=grounding", {"sort": "score", "score": "grounding", "failing": "grounding"}),
        ("failing=grounding 7d", {"failing": "grounding", "range": "7d"}),
        ("score=grounding 24h (filter)", {"score": "grounding"}),
    ]
    cases += [(f"trace list {n}".strip(), f"{p}/traces/", q, {}) for n, q in list_cases]
    # The list's count, which the page asks for once its rows are shown.
    count_cases = [
        ("", {}),
        ("model", {"model": "gpt-4o-mini"}),
        ("model=o3-pro 30d (rare)", {"model": "o3-pro", "range": "30d"}),
        ("min latency", {"min_duration_ms": "3000"}),
        ("score=grounding 24h", {"score": "grounding"}),
        ("failing=grounding 7d", {"failing": "grounding", "range": "7d"}),
    ]
    cases += [(f"trace count {n}".strip(), f"{p}/traces/count/", q, {}) for n, q in count_cases]
    newest = {s: Trace.objects.filter(project=project, service=s).order_by("-start_time").first() for s in services}
    cases += [(f"trace page {s}", f"{p}/traces/{t.trace_id}/", {}, {}) for s, t in newest.items() if t]
    bot = newest.get("support-bot")
    if bot is not None:
        cases += [("add-to-dataset form", f"{p}/traces/{bot.trace_id}/to-dataset/", {}, {})]
    talker = Trace.objects.filter(project=project).exclude(session_id="").order_by("-start_time").first()
    cases += [
        ("sessions list 24h", f"{p}/sessions/", {}, {}),
        ("sessions list 7d by cost", f"{p}/sessions/", {"range": "7d", "sort": "cost"}, {}),
        ("users list 24h", f"{p}/users/", {}, {}),
        ("users list 7d by traces", f"{p}/users/", {"range": "7d", "sort": "traces"}, {}),
    ]
    if talker is not None:
        cases += [
            ("session page", f"{p}/session/", {"id": talker.session_id}, {}),
            ("user page", f"{p}/user/", {"id": talker.user_id}, {}),
        ]
    cases += [("SLO list", f"{p}/slos/", {}, {}), ("SLO form new", f"{p}/slos/new/", {}, {})]
    slos = list(SLO.objects.filter(project=project).order_by("pk"))
    if slos:
        cases += [(f"SLO form edit {slos[0].pk}", f"{p}/slos/{slos[0].pk}/edit/", {}, {})]
    for slo in slos:
        cases += [
            (f"SLO page {slo.pk} {slo.name} {r}", f"{p}/slos/{slo.pk}/", {"range": r}, {})
            for r in ("1d", "7d", "window")
        ]
    if slos:
        cases += [(f"SLO page {slos[-1].pk} backtest", f"{p}/slos/{slos[-1].pk}/", {"backtest": "1"}, {})]
    cases += [("incident list", f"{p}/incidents/", {}, {})]
    cases += [
        (f"incident page {i.pk} ({i.status})", f"{p}/incidents/{i.pk}/", {}, {})
        for i in Incident.objects.filter(project=project).order_by("pk")[:3]
    ]
    cases += [("channels", f"{p}/channels/", {}, {})]
    cases += [
        (f"channel edit {c.pk}", f"{p}/channels/{c.pk}/edit/", {}, {})
        for c in Channel.objects.filter(project=project)[:1]
    ]
    cases += [("budgets", f"{p}/budgets/", {}, {}), ("guard policies", f"{p}/guard/", {}, {})]
    cases += [("evaluator settings", f"{p}/evaluators/", {}, {}), ("eval runs", f"{p}/evaluators/runs/", {}, {})]
    cases += [
        (f"eval run progress {r.pk}", f"{p}/evaluators/runs/{r.pk}/progress/", {}, {})
        for r in EvalRun.objects.filter(project=project)[:1]
    ]
    drifted = DriftRun.objects.filter(project=project, status="done").values_list("service", flat=True).distinct()
    cases += [(f"drift {s}", f"{p}/drift/", {"service": s}, {}) for s in sorted(drifted)]
    cases += [("canary form", f"{p}/canary/", {}, {})]
    cases += [
        (
            "canary support-bot release 1.5.0 vs 1.6.0",
            f"{p}/canary/",
            {"service": "support-bot", "attribute": "release", "baseline": "1.5.0", "canary": "1.6.0"},
            {},
        )
    ]
    cases += [("datasets", f"{p}/datasets/", {}, {})]
    for dataset in Dataset.objects.filter(project=project)[:1]:
        cases += [
            ("dataset page", f"{p}/datasets/{dataset.pk}/", {}, {}),
            ("dataset export jsonl", f"{p}/datasets/{dataset.pk}/export.jsonl", {}, {}),
        ]
    cases += [("probes", f"{p}/probes/", {}, {})]
    for probe in Probe.objects.filter(project=project)[:1]:
        cases += [("probe page", f"{p}/probes/{probe.pk}/", {}, {})]
        run = ProbeRun.objects.filter(probe=probe).order_by("-created_at").first()
        if run is not None:
            cases += [("probe run progress", f"{p}/probes/{probe.pk}/runs/{run.pk}/progress/", {}, {})]
    cases += [
        ("settings", f"{p}/settings/", {}, {}),
        ("settings secrets", f"{p}/settings/secrets/", {}, {}),
        ("settings audit log", f"{p}/settings/audit/", {}, {}),
    ]
    cases += [("API docs", "/api/docs/", {}, {}), ("OpenAPI schema", "/api/schema/", {"format": "json"}, {})]
    bearer = {"Authorization": f"Bearer {secret}"}
    cases += [
        ("/metrics", "/metrics", {}, bearer),
        ("API traces first page", "/api/v1/traces", {}, bearer),
        ("API SLOs", "/api/v1/slos", {}, bearer),
    ]
    return cases


def p95(values: list[float]) -> float:
    """Nearest-rank 95th percentile: with 9 requests, the largest."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--setup", action="store_true")
    parser.add_argument("--only", default="", help="Measure only pages whose name contains one of these (a,b,c).")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--db", default=DB, help=f"Database to read (default {DB}).")
    parser.add_argument("--source", default="worktree", help="Code to measure: 'worktree' or a git revision.")
    parser.add_argument("--slow-queries", type=int, default=0, help="Also print each page's N slowest statements.")
    parser.add_argument(
        "--profile", type=int, default=0, help="Also print each page's N costliest functions (cProfile, one request)."
    )
    args = parser.parse_args()
    if args.json:
        args.json = args.json.resolve()  # the script changes directory to the code snapshot
    src = (
        REPO
        if args.source == "worktree"
        else snapshot(Path(tempfile.mkdtemp(prefix="sre4ai-dash-")) / "src", args.source)
    )
    sys.path.insert(0, str(src))
    os.chdir(src)
    var_dir = tempfile.mkdtemp(prefix="sre4ai-dash-var-")
    env = {
        **os.environ,
        "DATABASE_URL": f"{PG_BASE_URL}/{args.db}",
        "DJANGO_SETTINGS_MODULE": "sre4ai_web.settings",
        "ALLOWED_HOSTS": "testserver",
        "SRE4AI_STATIC_ROOT": str(Path(var_dir) / "static"),
        "SRE4AI_VAR_DIR": os.environ.get("SRE4AI_VAR_DIR", var_dir),
    }
    result: dict[str, Any] = {"machine": machine(args.source), "source": args.source, "pages": []}
    for command in ("migrate", "collectstatic"):  # pages need the static manifest of the code measured
        subprocess.run([sys.executable, "manage.py", command, "--noinput", "-v0"], cwd=src, env=env, check=True)
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

    # Start as a web process does (the measured code's sre4ai_web/wsgi.py: views imported, the grounding model
    # loaded, what is loaded frozen out of the cyclic GC); without it each full GC pass of a request walks all of
    # Django, numpy and scipy, ~100 ms the server does not pay (docs/benchmarks.md §13).
    import sre4ai_web.wsgi  # noqa: F401
    from accounts.models import Project
    from accounts.services import api_key_issue

    project = Project.objects.get(slug=SLUG)
    owner = project.memberships.select_related("user").first()
    assert owner is not None, "the benchmark project has no member: run bench/trace_list.py first"
    if args.setup:
        setup(project, owner.user)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    client = Client()
    client.force_login(owner.user)
    secret = api_key_issue(project=project, name="dashboards bench", scopes=["read"]).secret_key
    cases = [c for c in cases_for(project, secret) if any(part in c[0] for part in args.only.split(","))]
    # CPU time of this process beside the wall time: on a shared machine the wall time follows the others' load.
    print(f"{'page':<52} {'median':>7} {'p95':>7} {'cpu':>6} {'sql':>6} {'q':>4} {'load':>5}")
    for name, path, params, headers in cases:
        if client.get(path, params, headers=headers).status_code == 404:  # a page the measured revision lacks
            print(f"{name:<52} (not in this code)")
            continue
        times, cpu = [], []
        for _ in range(args.repeat):
            with CaptureQueriesContext(connection) as queries:
                started, started_cpu = time.perf_counter(), time.process_time()
                response = client.get(path, params, headers=headers)
                times.append((time.perf_counter() - started) * 1000)
                cpu.append((time.process_time() - started_cpu) * 1000)
            assert response.status_code == 200, (path, params, response.status_code, response.content[:300])
        sql_ms = sum(float(q["time"]) * 1000 for q in queries.captured_queries)
        load = float(Path("/proc/loadavg").read_text().split()[0])
        row = {
            "page": name,
            "path": path,
            "params": params,
            "median_ms": round(statistics.median(times), 1),
            "p95_ms": round(p95(times), 1),
            "max_ms": round(max(times), 1),
            "cpu_ms": round(statistics.median(cpu), 1),
            "sql_ms": round(sql_ms, 1),
            "queries": len(queries),
            "load1": load,
        }
        result["pages"].append(row)
        print(
            f"{name[:52]:<52} {row['median_ms']:>7} {row['p95_ms']:>7} {row['cpu_ms']:>6} {row['sql_ms']:>6} "
            f"{row['queries']:>4} {load:>5}",
            flush=True,
        )
        slowest = sorted(queries.captured_queries, key=lambda q: -float(q["time"]))[: args.slow_queries]
        for query in slowest:  # of the last request
            print(f"    {float(query['time']) * 1000:7.1f} ms  {' '.join(query['sql'].split())[:220]}")
        if args.profile:  # one more request, under the profiler (which slows Python about twofold)
            profiler = cProfile.Profile()
            profiler.runcall(client.get, path, params, headers=headers)
            pstats.Stats(profiler).sort_stats(os.environ.get("PROFILE_SORT", "tottime")).print_stats(args.profile)
    result["machine"]["loadavg_after"] = Path("/proc/loadavg").read_text().split()[:3]
    over = [r["page"] for r in result["pages"] if r["median_ms"] >= 300 or r["p95_ms"] >= 300]
    print(f"pages at or over 300 ms (median or p95): {over or 'none'}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
