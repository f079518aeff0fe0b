"""What of a project's rollups expires with its aggregate retention (accounts.retention). Minutes of the raw
retention's last stretch are never recomputed (rollups.services.minutes_recompute), so removing raw rows leaves
the rollups of the days in between as they were.

The day rollups of all traces are what /metrics' counters sum (rollups.selectors.counter_totals); before they go,
their totals are added to ``RetiredTotal`` in the removing transaction, row batches and dropped partitions alike,
so no counter goes down."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import F, QuerySet, Sum

from accounts.models import Project, RemovalKind
from accounts.retention import Target
from rollups.models import Dimension, Granularity, RetiredTotal, ScoreRollup, TrafficRollup
from sre4ai_web.lib.partitions import PartitionedTable, partitions


def _add(rows: QuerySet[Any], group: tuple[str, ...], columns: tuple[str, ...]) -> None:
    """Add the sums of ``columns`` of the counted rows (day rows of all traces: what /metrics sums) per ``group``."""
    counted = rows.filter(granularity=Granularity.DAY, dimension=Dimension.ALL)
    for row in counted.values(*group).annotate(**{f"sum_{c}": Sum(c) for c in columns}).order_by():
        key = {"name": "", **{g: row[g] for g in group}}
        totals = {c: row[f"sum_{c}"] or 0 for c in columns}
        if not RetiredTotal.objects.filter(**key).update(**{c: F(c) + v for c, v in totals.items()}):
            RetiredTotal.objects.create(**key, **totals)


def retire(rows: QuerySet[Any]) -> None:
    """Add the counted part of these TrafficRollup or ScoreRollup rows to the retired totals (before they go)."""
    series = ("project_id", "service", "environment")
    if rows.model is TrafficRollup:
        _add(rows, series, RetiredTotal.TRAFFIC)
    else:
        _add(rows, (*series, "name"), RetiredTotal.CHECKS)


def retire_partition(table: PartitionedTable, partition: str) -> None:
    """sre4ai_web.lib.partitions' drop hook: the rows of a rollup partition about to be dropped."""
    models: dict[str, type[TrafficRollup] | type[ScoreRollup]] = {
        TrafficRollup._meta.db_table: TrafficRollup,
        ScoreRollup._meta.db_table: ScoreRollup,
    }
    model = models.get(table.table)
    if model is None:
        return
    (bounds,) = [p for p in partitions(table.table) if p.name == partition]
    rows: QuerySet[Any] = model.objects.all()
    if bounds.low is not None:
        rows = rows.filter(bucket__gte=bounds.low)
    if bounds.high is not None:
        rows = rows.filter(bucket__lt=bounds.high)
    retire(rows)


def retention_targets(project: Project, raw_before: datetime, aggregate_before: datetime) -> list[Target]:
    # One target per granularity and dimension: each walks its (project, granularity, dimension, bucket) index.
    return [
        Target(
            RemovalKind.AGGREGATE,
            model.objects.filter(
                project=project, granularity=granularity, dimension=dimension, bucket__lt=aggregate_before
            ),
            "bucket",
            before_remove=retire if granularity == Granularity.DAY and dimension == Dimension.ALL else None,
        )
        for model in (TrafficRollup, ScoreRollup)
        for granularity in Granularity.values
        for dimension in Dimension.values
    ]
