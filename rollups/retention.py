"""What of a project's rollups expires with its aggregate retention (accounts.retention). Minutes of the raw
retention's last stretch are never recomputed (rollups.services.minutes_recompute), so removing raw rows leaves
the rollups of the days in between as they were."""

from __future__ import annotations

from datetime import datetime

from accounts.models import Project, RemovalKind
from accounts.retention import Target
from rollups.models import Dimension, Granularity, ScoreRollup, TrafficRollup


def retention_targets(project: Project, raw_before: datetime, aggregate_before: datetime) -> list[Target]:
    # One target per granularity and dimension: each walks its (project, granularity, dimension, bucket) index.
    return [
        Target(
            RemovalKind.AGGREGATE,
            model.objects.filter(
                project=project, granularity=granularity, dimension=dimension, bucket__lt=aggregate_before
            ),
            "bucket",
        )
        for model in (TrafficRollup, ScoreRollup)
        for granularity in Granularity.values
        for dimension in Dimension.values
    ]
