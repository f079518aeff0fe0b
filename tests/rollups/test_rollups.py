"""Rollups on PostgreSQL: exact counts, costs and percentiles within the histogram's error; late spans and late
scores land in the right buckets; a rebuild from raw rows gives the same rows as the incremental path."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client

from evals.services import ExternalScore, score_record
from rollups.histogram import RELATIVE_ERROR, merge, quantile
from rollups.models import ScoreRollup, TrafficRollup
from rollups.services import dirty_process
from tests.conftest import Tenant
from traces.models import DirtyBucket, Trace

# Two days ago: within the raw retention (30 days by default) that ingest and rollups respect.
T0 = (datetime.now(UTC) - timedelta(days=2)).replace(hour=10, minute=0, second=0, microsecond=0)


def trace(index: int, minute: int, duration_ms: float, *, model: str = "gpt-4o-mini", release: str = "v1",
          status: str = "ok", tokens: tuple[int, int] = (1000, 100), service: str = "bot") -> dict[str, Any]:  # fmt: skip
    start = T0 + timedelta(minutes=minute, seconds=index % 50)
    return {
        "trace_id": f"{index + 1:032x}", "service": service, "environment": "production", "release": release,
        "name": "answer",
        "spans": [{"span_id": f"{index + 1:016x}", "name": "chat", "kind": "llm", "model": model,
                   "start_time": start.isoformat(), "end_time": (start + timedelta(milliseconds=duration_ms)).isoformat(),
                   "status": status, "input_tokens": tokens[0], "output_tokens": tokens[1],
                   "prompt_name": "answer", "prompt_version": "3", "input": "How long do refunds take?",
                   "output": "Refunds take 14 days."}],
    }  # fmt: skip


def ingest(client: Client, tenant: Tenant, traces: list[dict[str, Any]]) -> None:
    response = client.post("/api/v1/traces", data=json.dumps({"traces": traces}), content_type="application/json",
                           headers=tenant.bearer)  # fmt: skip
    assert response.status_code == 200, response.content


def rows(**filters: Any) -> list[TrafficRollup]:
    return list(TrafficRollup.objects.filter(**filters).order_by("bucket", "dimension", "value"))


@pytest.mark.django_db
def test_minute_and_hour_rollups_have_exact_numbers(client: Client, tenant: Tenant) -> None:
    durations = [100.0 * (i + 1) for i in range(20)]  # 100 ms … 2000 ms in minute 0
    traces = [trace(i, 0, d, status="error" if i < 3 else "ok") for i, d in enumerate(durations)]
    traces += [trace(20 + i, 1, 50.0, model="claude-3-5-haiku-20241022", release="v2") for i in range(5)]
    ingest(client, tenant, traces)
    assert DirtyBucket.objects.count() == 2
    assert dirty_process() == 2
    assert not DirtyBucket.objects.exists()

    minute0 = TrafficRollup.objects.get(granularity="m", bucket=T0, dimension="", service="bot")
    assert (minute0.traces, minute0.errors, minute0.input_tokens, minute0.output_tokens) == (20, 3, 20000, 2000)
    assert minute0.cost == Decimal("20") * (Decimal("0.00015") + Decimal("0.00006"))
    merged = merge([minute0.latency_hist])
    for q, exact in ((0.5, 1000.0), (0.95, 1900.0), (0.99, 2000.0)):
        assert quantile(merged, q) == pytest.approx(exact, rel=RELATIVE_ERROR)
    hour = TrafficRollup.objects.get(granularity="h", bucket=T0, dimension="", service="bot")
    assert (hour.traces, hour.errors) == (25, 3)
    # 5 × 50 ms and 100 … 2000 ms: the 13th of 25 values is 800 ms.
    assert quantile(merge([hour.latency_hist]), 0.5) == pytest.approx(800.0, rel=RELATIVE_ERROR)
    by_model = {r.value: r.traces for r in rows(granularity="h", dimension="model")}
    assert by_model == {"claude-3-5-haiku-20241022": 5, "gpt-4o-mini": 20}
    assert {r.value: r.traces for r in rows(granularity="h", dimension="release")} == {"v1": 20, "v2": 5}
    assert {r.value: r.traces for r in rows(granularity="h", dimension="prompt")} == {"answer v3": 25}
    assert {r.value: r.traces for r in rows(granularity="h", dimension="route")} == {"answer": 25}


@pytest.mark.django_db
def test_late_spans_and_late_scores_update_the_right_buckets(client: Client, tenant: Tenant) -> None:
    ingest(client, tenant, [trace(0, 5, 100.0), trace(1, 5, 100.0)])
    dirty_process()
    assert TrafficRollup.objects.get(granularity="m", dimension="", bucket=T0 + timedelta(minutes=5)).traces == 2
    # A late root span starts a minute earlier: the trace moves from minute 5 to minute 4.
    late_root = {"trace_id": f"{1:032x}", "service": "bot", "environment": "production", "spans": [
        {"span_id": "f" * 16, "name": "root", "kind": "chain", "start_time": (T0 + timedelta(minutes=4, seconds=50)).isoformat(),
         "end_time": (T0 + timedelta(minutes=5, seconds=10)).isoformat()}]}  # fmt: skip
    ingest(client, tenant, [late_root])
    dirty_process()
    buckets = {r.bucket: r.traces for r in rows(granularity="m", dimension="")}
    assert buckets == {T0 + timedelta(minutes=4): 1, T0 + timedelta(minutes=5): 1}
    assert TrafficRollup.objects.get(granularity="h", dimension="").traces == 2
    # A late score on the moved trace counts in its new minute.
    moved = Trace.objects.get(trace_id=f"{1:032x}")
    for name, passed in (("grounding", False), ("grounding", False)):  # the same score twice: counted once
        score_record(score=ExternalScore(trace=moved, span=None, name=name, value=0.2, label="", passed=passed,
                                         comment="", external_id="g-1"))  # fmt: skip
    dirty_process()
    cell = ScoreRollup.objects.get(granularity="m", dimension="", name="grounding")
    assert (cell.bucket, cell.good, cell.total, cell.value_sum) == (T0 + timedelta(minutes=4), 0, 1, 0.2)


@pytest.mark.django_db
def test_rebuild_from_raw_rows_matches_the_incremental_rollups(client: Client, tenant: Tenant) -> None:
    ingest(client, tenant, [trace(i, i % 7, 10.0 * (i + 1), status="error" if i % 5 == 0 else "ok") for i in range(40)])
    dirty_process()

    def snapshot() -> list[tuple[Any, ...]]:
        return sorted(TrafficRollup.objects.values_list("granularity", "bucket", "dimension", "value", "traces",
                                                         "errors", "latency_hist", "cost"))  # fmt: skip

    incremental = snapshot()
    TrafficRollup.objects.all().delete()
    call_command("rollups_rebuild", "--project", "acme", verbosity=0)
    assert snapshot() == incremental
    assert len(incremental) > 10


@pytest.mark.django_db
def test_overview_and_service_pages_render_from_rollups(client: Client, tenant: Tenant) -> None:
    from django.utils import timezone

    from evals.services import traces_score
    from tests.conftest import PASSWORD

    now = timezone.now().replace(second=0, microsecond=0)
    fresh = [trace(i, 0, 100.0 + i, release="v1" if i < 6 else "v2") for i in range(12)]
    for t in fresh:
        for span in t["spans"]:
            span["start_time"] = (now - timedelta(minutes=30)).isoformat()
            span["end_time"] = (now - timedelta(minutes=30) + timedelta(milliseconds=100)).isoformat()
    fresh[0]["service"] = "<script>alert(1)</script>"
    ingest(client, tenant, fresh)
    traces_score(project_id=tenant.project.pk, trace_pks=list(Trace.objects.values_list("pk", flat=True)))
    dirty_process()
    assert client.login(username="alice", password=PASSWORD)
    html = client.get("/p/acme/", {"range": "1h"}).content.decode()
    assert 'data-service="bot"' in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert(1)" not in html
    page = client.get("/p/acme/service/", {"name": "bot", "range": "1h"})
    assert page.status_code == 200
    figures = page.context["figures"]
    assert sum(figures["traffic"]["data"][0]["y"]) == 11
    assert figures["traffic"]["data"][0]["meta"] == {"href": "/p/acme/traces/?service=bot", "step_s": 60}
    assert {t["name"] for t in figures["safety"]["data"]} >= {"pii", "prompt_injection"}
    assert sum(figures["cost_distribution"]["data"][0]["y"]) == 11  # every request of the service in a bin
    route_rows = page.context["breakdowns"]["route"]
    assert [(r["value"], r["traffic"]) for r in route_rows] == [("answer", 11)]
    assert 'href="/p/acme/traces/?service=bot&name=answer&since=' in page.content.decode()  # with the range
    assert client.get("/p/acme/service/", {"name": "nope"}).status_code == 404
    assert client.get("/p/acme/service/", {"name": "<script>alert(1)</script>", "range": "1h"}).status_code == 200
    assert (
        client.get(
            "/p/acme/", {"range": "custom", "since": "2026-02-01T00:00Z", "until": "2026-01-01T00:00Z"}
        ).status_code
        == 200
    )


@pytest.mark.django_db
@pytest.mark.parametrize("traces_per_minute", [1, 8])
def test_panel_selectors_have_bounded_query_counts(
    client: Client, tenant: Tenant, django_assert_max_num_queries: Any, traces_per_minute: int
) -> None:
    """The query count of each panel does not grow with the data (one query per table, not per row)."""
    from django.utils import timezone

    from evals.services import traces_score
    from front.selectors import TraceFilters, trace_page
    from rollups.selectors import overview, service_detail, trace_facets, window_for

    now = timezone.now()
    batch = []
    for i in range(6 * traces_per_minute):
        t = trace(i, 0, 100.0, model=("gpt-4o-mini", "gpt-4o")[i % 2], release=("v1", "v2")[i % 2])
        start = now - timedelta(minutes=1 + i // traces_per_minute)
        for span in t["spans"]:
            span["start_time"], span["end_time"] = start.isoformat(), (start + timedelta(seconds=1)).isoformat()
        batch.append(t)
    ingest(client, tenant, batch)
    traces_score(project_id=tenant.project.pk, trace_pks=list(Trace.objects.values_list("pk", flat=True)))
    dirty_process()
    window = window_for(range_key="1h", now=now)
    with django_assert_max_num_queries(5):
        rows = overview(project=tenant.project, environment="", window=window, now=now)
    assert rows[0].now.traffic() == 6 * traces_per_minute
    with django_assert_max_num_queries(20):
        detail = service_detail(project=tenant.project, service="bot", environment="", window=window)
    assert set(detail.breakdowns["model"]) == {"gpt-4o-mini", "gpt-4o"}
    with django_assert_max_num_queries(2):
        page = trace_page(project=tenant.project, filters=TraceFilters(service="bot"))
    assert len(page.items) == 6 * traces_per_minute
    with django_assert_max_num_queries(4):
        assert trace_facets(project=tenant.project)["services"] == ["bot"]


def test_picker_values_come_from_the_days_whose_traces_are_kept(tenant: Tenant) -> None:
    """The pickers offer what a list can still show: a service, environment, model or check seen only in rollups
    older than the raw retention (its traces are gone) is not offered; one seen within it is."""
    from rollups.models import Granularity
    from rollups.selectors import anything_counted, environments, trace_facets

    project = tenant.project
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    kept = day - timedelta(days=project.raw_retention_days - 1)
    expired = day - timedelta(days=project.raw_retention_days + 2)
    assert not anything_counted(project=project)
    rows = ((expired, "old-bot", "legacy", "gpt-3", "tone"), (kept, "bot", "production", "gpt-4o", "grounding"))
    for bucket, service, environment, model, check in rows:
        common = {"project": project, "service": service, "environment": environment, "granularity": Granularity.DAY}
        TrafficRollup.objects.create(**common, bucket=bucket, dimension="", value="", traces=1)
        TrafficRollup.objects.create(**common, bucket=bucket, dimension="model", value=model, traces=1)
        ScoreRollup.objects.create(**common, bucket=bucket, dimension="", value="", name=check, good=1, total=1)
        assert anything_counted(project=project)  # the overview is no longer the first-trace panel
    assert environments(project=project) == ["production"]
    facets = trace_facets(project=project)
    assert facets == {
        "services": ["bot"],
        "environments": ["production"],
        "models": ["gpt-4o"],
        "score_names": ["grounding"],
    }


def test_a_histograms_quantile_is_the_bucket_of_the_ranked_duration() -> None:
    """The q-quantile is the bucket of the ceil(q * n)-th smallest duration (nearest rank), for any histogram,
    with empty buckets, one bucket, and q at 0 and 1; an empty histogram has none."""
    import random

    from rollups.histogram import bucket_of, bucket_value, histogram

    rng = random.Random(7)
    for size in (1, 2, 3, 10, 99, 1000):
        durations = sorted(rng.lognormvariate(5, 1.5) for _ in range(size))
        merged = merge([histogram(durations), {"400": 0}])
        for q in (0.0, 0.01, 0.5, 0.95, 0.99, 1.0):
            ranked = durations[max(1, math.ceil(q * size)) - 1]
            assert quantile(merged, q) == bucket_value(bucket_of(ranked)), (size, q)
    assert quantile({}, 0.5) is None and quantile({3: 0}, 0.5) is None
