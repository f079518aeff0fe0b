"""/metrics' counters never go down when retention removes the day rollups they sum (rollups.retention): what
goes is added to RetiredTotal in the removing transaction, from row batches and, on PostgreSQL, from a month's
partition dropped whole. A counter that went down would read to Prometheus as a restart from zero (a spike in every
rate() once a day)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.test import Client

from accounts.models import DataRemoval
from accounts.retention import retention_sweep
from accounts.services import project_retention_set
from rollups.models import Dimension, Granularity, RetiredTotal, ScoreRollup, TrafficRollup
from sre4ai_web.lib.partitions import floor, partition_name, partitions, partitions_upkeep
from tests.conftest import SQLITE, Tenant

pytestmark = pytest.mark.django_db
NOW = datetime.now(UTC)
DAY = NOW.replace(hour=0, minute=0, second=0, microsecond=0)
COUNTERS = (
    "sre4ai_traces_total",
    "sre4ai_trace_errors_total",
    "sre4ai_cost_dollars_total",
    "sre4ai_tokens_total",
    "sre4ai_safety_judged_traces_total",
    "sre4ai_safety_flagged_traces_total",
    "sre4ai_scores_judged_total",
    "sre4ai_scores_passed_total",
)


def scrape(tenant: Tenant) -> dict[str, float]:
    response = Client().get("/metrics", headers=tenant.bearer)
    assert response.status_code == 200, response.content
    series = {}
    for line in response.content.decode().splitlines():
        if line.startswith(COUNTERS):
            name, value = line.rsplit(" ", 1)
            series[name] = float(value)
    return series


def day_of_rollups(tenant: Tenant, bucket: datetime, n: int) -> None:
    """One day's rollups of two environments: all traces (counted), a model slice, an hour and a minute (not
    counted)."""
    for environment in ("production", "staging"):
        common = {"project": tenant.project, "service": "bot", "environment": environment}
        counted = {"granularity": Granularity.DAY, "bucket": bucket, "dimension": Dimension.ALL, "value": ""}
        TrafficRollup.objects.create(
            **common,
            **counted,
            traces=10 * n,
            errors=n,
            cost=Decimal("0.25") * n,
            input_tokens=100 * n,
            output_tokens=20 * n,
            safety_judged=3 * n,
            safety_flagged=n,
        )
        TrafficRollup.objects.create(
            **common, granularity=Granularity.DAY, bucket=bucket, dimension=Dimension.MODEL, value="m", traces=99
        )
        for granularity in (Granularity.HOUR, Granularity.MINUTE):
            TrafficRollup.objects.create(
                **common, granularity=granularity, bucket=bucket, dimension=Dimension.ALL, value="", traces=99
            )
        ScoreRollup.objects.create(**common, **counted, name="grounding", good=7 * n, total=9 * n)
        ScoreRollup.objects.create(**common, **counted, name="pii", good=n, total=n)


def test_counters_stay_when_retention_removes_the_rollups_they_sum(tenant: Tenant) -> None:
    project = tenant.project
    long_ago, weeks_ago, recent = DAY - timedelta(days=100), DAY - timedelta(days=40), DAY - timedelta(days=2)
    for n, bucket in enumerate((long_ago, weeks_ago, recent), start=1):
        day_of_rollups(tenant, bucket, n)
    if not SQLITE:
        partitions_upkeep(NOW)  # the old days leave the default partition for their months' partitions
        month = partition_name("rollups_trafficrollup", floor(long_ago, "month"), "month")
        assert month in {p.name for p in partitions("rollups_trafficrollup")}
    before = scrape(tenant)
    production = '{environment="production",project="acme",service="bot"}'
    assert before[f"sre4ai_traces_total{production}"] == 60  # 10 + 20 + 30
    assert (
        before['sre4ai_scores_judged_total{environment="staging",name="grounding",project="acme",service="bot"}'] == 54
    )

    project_retention_set(project=project, raw_days=7, aggregate_days=30)
    result = retention_sweep(now=NOW)

    assert result.finished
    assert not TrafficRollup.objects.filter(project=project, bucket__lt=DAY - timedelta(days=30)).exists()
    assert not ScoreRollup.objects.filter(project=project, bucket__lt=DAY - timedelta(days=30)).exists()
    assert TrafficRollup.objects.filter(project=project, bucket=recent).count() == 8
    assert scrape(tenant) == before
    retired = RetiredTotal.objects.get(project=project, service="bot", environment="production", name="")
    assert (retired.traces, retired.errors, retired.cost, retired.input_tokens) == (30, 3, Decimal("0.75"), 300)
    grounding = RetiredTotal.objects.get(project=project, environment="staging", name="grounding")
    assert (grounding.good, grounding.total) == (21, 27)
    if not SQLITE:  # the oldest month went as a whole partition, the other day in a batch: both kept their counts
        assert month not in {p.name for p in partitions("rollups_trafficrollup")}
        assert DataRemoval.objects.filter(project=project, table="rollups.TrafficRollup").exists()

    assert retention_sweep(now=NOW + timedelta(hours=1)).finished  # nothing more to remove: nothing added twice
    assert scrape(tenant) == before
