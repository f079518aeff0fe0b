"""Day rollups (rollups.services): each day row is the sum of that day's hour rows, kept so by every recompute; a
window's totals read from day rows for its whole days and hour rows for the rest equal the totals of its own
buckets; the migration gives installations with data the day rows the recompute would have written."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from importlib import import_module
from typing import Any

import pytest
from django.apps import apps
from django.test import Client
from django.utils import timezone

from evals.services import ExternalScore, score_record
from rollups.histogram import merge
from rollups.models import Granularity, ScoreRollup, TrafficRollup
from rollups.selectors import Series, _series, counter_totals, overview, window_for
from rollups.services import dirty_process
from sre4ai_web.lib.timebuckets import floor_day
from tests.conftest import Tenant
from tests.rollups.test_rollups import ingest, trace
from traces.models import Trace

pytestmark = pytest.mark.django_db
NOW = (timezone.now() - timedelta(hours=1)).replace(minute=17, second=30, microsecond=0)
TRAFFIC = ("traces", "errors", "latency_sum_ms", "input_tokens", "output_tokens", "cost", "unpriced")


def spread(client: Client, tenant: Tenant, first: int = 0, hours: int = 84) -> None:
    """Traces every 2 hours over the last ``hours`` (four UTC days at least), two models and two environments,
    errors and latencies, and two checks on each."""
    batch = []
    for i in range(first, first + hours // 2):
        t = trace(i, 0, 40.0 * (1 + i % 17), model=("gpt-4o-mini", "o3")[i % 2], status="error" if i % 5 == 0 else "ok")
        t["environment"] = ("production", "staging")[i % 3 == 0]
        start = NOW - timedelta(hours=2 * (i - first), minutes=i % 50)
        for span in t["spans"]:
            span["start_time"], span["end_time"] = start.isoformat(), (start + timedelta(seconds=1)).isoformat()
        batch.append(t)
    ingest(client, tenant, batch)
    for index, stored in enumerate(
        Trace.objects.filter(project=tenant.project, trace_id__in=[t["trace_id"] for t in batch])
    ):
        for name, passed in (("grounding", index % 3 != 0), ("pii", index % 4 != 0)):
            score_record(score=ExternalScore(trace=stored, span=None, name=name, value=None, label="", passed=passed,
                                             comment="", external_id=""))  # fmt: skip
    dirty_process()


def by_day(granularity: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Traffic and score sums per (day, service, environment, slice), from rows of one granularity."""
    sums: dict[tuple[Any, ...], dict[str, Any]] = defaultdict(lambda: defaultdict(int))
    for row in TrafficRollup.objects.filter(granularity=granularity):
        cell = sums[("traffic", floor_day(row.bucket), row.service, row.environment, row.dimension, row.value)]
        for column in TRAFFIC:
            cell[column] += getattr(row, column)
        cell.setdefault("hists", []).append(row.latency_hist)
    for score in ScoreRollup.objects.filter(granularity=granularity):
        key = ("score", floor_day(score.bucket), score.service, score.environment, score.dimension, score.value)
        cell = sums[(*key, score.name)]
        cell["good"] += score.good
        cell["total"] += score.total
    for cell in sums.values():
        if "hists" in cell:
            cell["hists"] = merge(cell["hists"])  # the day's histogram, merged from one row or from 24
    return {key: dict(cell) for key, cell in sums.items()}


def test_day_rows_are_the_sum_of_their_hours_and_follow_late_data(client: Client, tenant: Tenant) -> None:
    spread(client, tenant)
    days = by_day(Granularity.DAY)
    assert days == by_day(Granularity.HOUR)
    # Not vacuous: four days or more, slices, both checks.
    assert len({key[1] for key in days}) >= 4 and any(key[4] == "model" for key in days)
    assert any(key[-1] == "grounding" and cell["total"] for key, cell in days.items())
    # Late traces land in days already rolled up: the day rows follow.
    spread(client, tenant, first=1000, hours=30)
    assert by_day(Granularity.DAY) == by_day(Granularity.HOUR) != days


def totals(series: Series) -> tuple[Any, ...]:
    hist = series._merged(None)
    checks = {name: (sum(series.good[name].values()), sum(per.values())) for name, per in series.total.items()}
    return series.traffic(), sum(series.errors.values()), series.spend(), sum(series.tokens.values()), hist, checks


def test_a_windows_totals_from_day_rows_equal_its_hour_buckets(client: Client, tenant: Tenant) -> None:
    spread(client, tenant)
    # Not aligned on days: a partial first day, whole days, a partial last day, all with traces.
    window = window_for(range_key="", now=NOW, since=NOW - timedelta(hours=80, minutes=40), until=NOW)
    assert window.granularity == Granularity.HOUR
    for environment in ("", "staging"):
        for dimension in ("", "model"):
            whole = _series(tenant.project, window, environment, None, dimension, whole=True)
            buckets = _series(tenant.project, window, environment, None, dimension)
            assert {k: totals(s) for k, s in whole.items()} == {k: totals(s) for k, s in buckets.items()}
            assert sum(s.traffic() for s in whole.values()) > 0
    # The day rows are what was read: without them the whole-window totals lose the whole days.
    TrafficRollup.objects.filter(granularity=Granularity.DAY).delete()
    less = _series(tenant.project, window, "", None, whole=True)[("bot", "")].traffic()
    assert 0 < less < _series(tenant.project, window, "", None)[("bot", "")].traffic()


def test_metrics_counters_sum_the_day_rows(client: Client, tenant: Tenant) -> None:
    spread(client, tenant)
    traffic, checks = counter_totals(project=tenant.project)
    expected: dict[tuple[str, str], int] = defaultdict(int)
    for row in TrafficRollup.objects.filter(granularity=Granularity.HOUR, dimension=""):
        expected[(row.service, row.environment)] += row.traces
    assert {key: series["traces"] for key, series in traffic.items()} == dict(expected)
    assert sum(expected.values()) == 42
    assert checks[("bot", "production", "grounding")][1] > 0


def test_the_overviews_spend_today_is_the_days_traces_cost(client: Client, tenant: Tenant) -> None:
    spread(client, tenant)
    today = Trace.objects.filter(project=tenant.project, start_time__gte=floor_day(NOW), start_time__lte=NOW)
    spent = sum(t.cost or 0 for t in today)
    rows = overview(project=tenant.project, environment="", window=window_for(range_key="24h", now=NOW), now=NOW)
    assert {row.service: row.spend_today for row in rows} == {"bot": spent}
    assert spent > 0


def test_the_migration_gives_existing_hours_their_day_rows(client: Client, tenant: Tenant) -> None:
    spread(client, tenant)
    written = by_day(Granularity.DAY)
    TrafficRollup.objects.filter(granularity=Granularity.DAY).delete()
    ScoreRollup.objects.filter(granularity=Granularity.DAY).delete()
    import_module("rollups.migrations.0006_day_rollups").add_day_rows(apps, None)
    assert by_day(Granularity.DAY) == written
    assert TrafficRollup.objects.filter(granularity=Granularity.DAY, bucket=floor_day(NOW)).exists()
