"""Server time of a canary comparison at the cohort cap: the canary page and GET /api/v1/canary, in-process.

    .venv/bin/python bench/canary_page.py [--traces 20000] [--repeat 7] [--json out.json]

Fills its own database ``sre4ai_bench_canary`` (dropped and re-created) with one service whose three releases
have ``--traces`` traces each in the last 24 h, one LLM span per trace (prompt, a span attribute, a resource
attribute) and three evaluator scores per trace: by default four times the 5,000-trace cohort cap. Then it
requests the page and the API for each kind of attribute (release, model, prompt, span attribute) with Django's
test Client (server time, no network): median and max of --repeat requests after one warm-up, and the SQL query
count. No timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PG_BASE_URL, REPO, machine, pg_execute

sys.path.insert(0, str(REPO))

DB = "sre4ai_bench_canary"
RELEASES = [("v1", "gpt-4o-mini", "3", "blue"), ("v2", "gpt-4.1-mini", "4", "green"), ("v3", "gpt-4o", "5", "red")]


def seed(project: Any, n: int) -> None:
    from django.utils import timezone

    from evals.models import Score
    from traces.models import Span, Trace

    rng = random.Random(1)
    now = timezone.now()
    for release, model, prompt_version, colour in RELEASES:
        for start in range(0, n, 5000):
            traces = []
            for _ in range(min(5000, n - start)):
                at = now - timedelta(seconds=rng.uniform(60, 86_000))
                ms = rng.lognormvariate(6.6, 0.5)
                traces.append(
                    Trace(
                        project=project,
                        trace_id=f"{rng.getrandbits(128):032x}",
                        service="bot",
                        environment="production",
                        start_time=at,
                        end_time=at + timedelta(milliseconds=ms),
                        duration_ms=ms,
                        status="error" if rng.random() < 0.02 else "ok",
                        model_names=[model],
                        cost=Decimal("0.002"),
                        release=release,
                        span_count=1,
                    )
                )
            Trace.objects.bulk_create(traces)
            Span.objects.bulk_create(
                [
                    Span(
                        project=project,
                        trace=t,
                        span_id=f"{rng.getrandbits(64):016x}",
                        name="chat",
                        kind="llm",
                        start_time=t.start_time,
                        end_time=t.end_time,
                        duration_ms=t.duration_ms,
                        service="bot",
                        model=model,
                        prompt_name="answer",
                        prompt_version=prompt_version,
                        attributes={"gen_ai.request.model": model, "app.colour": colour},
                        resource={"service.name": "bot", "service.version": release},
                    )
                    for t in traces
                ],
                batch_size=2000,
            )
            Score.objects.bulk_create(
                [
                    Score(
                        project=project,
                        trace=t,
                        key=f"eval:{t.pk}::{name}:1:{name}",
                        service="bot",
                        trace_start=t.start_time,
                        name=name,
                        passed=rng.random() < 0.9,
                        value=1.0,
                        evaluator=name,
                        evaluator_version=1,
                        source="evaluator",
                    )
                    for t in traces
                    for name in ("grounding", "refusal", "pii")
                ],
                batch_size=5000,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traces", type=int, default=20_000, help="Traces per release (three releases).")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    pg_execute(f"DROP DATABASE IF EXISTS {DB}")
    pg_execute(f"CREATE DATABASE {DB}")
    env = {"DATABASE_URL": f"{PG_BASE_URL}/{DB}", "DJANGO_SETTINGS_MODULE": "sre4ai_web.settings"}
    os.environ.update(env)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=REPO, env=os.environ, check=True)
    os.environ["DJANGO_ALLOWED_HOSTS"] = "testserver"
    import django

    django.setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from accounts.services import api_key_issue, membership_set, project_create, user_create

    project = project_create(slug="bench")
    user = user_create(username="bench", password=secrets.token_urlsafe())  # force_login below: never typed
    membership_set(project=project, user=user, role="admin")
    secret = api_key_issue(project=project, name="bench", scopes=["ingest", "read"]).secret_key
    started = time.monotonic()
    seed(project, args.traces)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(
        f"seeded {3 * args.traces} traces, {3 * args.traces} spans, {9 * args.traces} scores "
        f"in {time.monotonic() - started:.0f} s"
    )
    client = Client()
    client.force_login(user)
    cases = [
        ("release", "v1", "v2"),
        ("model", "gpt-4o-mini", "gpt-4.1-mini"),
        ("prompt", "answer v3", "answer v4"),
        ("app.colour", "blue", "green"),
    ]
    result: dict[str, Any] = {"machine": machine(), "traces_per_release": args.traces, "rows": []}
    print(f"{'request':<34} {'median ms':>10} {'max ms':>8} {'queries':>8}")
    for attribute, baseline, canary in cases:
        params = {"service": "bot", "attribute": attribute, "baseline": baseline, "canary": canary, "since": "1d"}
        for name, path, headers in (
            ("page", "/p/bench/canary/", {}),
            ("api", "/api/v1/canary", {"Authorization": f"Bearer {secret}"}),
        ):
            assert client.get(path, params, headers=headers).status_code == 200
            times, queries = [], 0
            for _ in range(args.repeat):
                with CaptureQueriesContext(connection) as captured:
                    t0 = time.perf_counter()
                    response = client.get(path, params, headers=headers)
                    times.append((time.perf_counter() - t0) * 1000)
                assert response.status_code == 200
                queries = len(captured)
            row = {
                "request": f"{name} {attribute}",
                "median_ms": round(statistics.median(times), 1),
                "max_ms": round(max(times), 1),
                "queries": queries,
            }
            result["rows"].append(row)
            print(f"{row['request']:<34} {row['median_ms']:>10} {row['max_ms']:>8} {row['queries']:>8}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
