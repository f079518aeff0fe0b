"""What of a project's evaluation data expires with its raw retention (accounts.retention). Scores go with their
traces (a cascade of the traces' target); datasets, probes and their runs are never removed."""

from __future__ import annotations

from datetime import datetime

from accounts.models import Project, RemovalKind
from accounts.retention import Target
from evals.models import PendingEvaluation


def retention_targets(project: Project, raw_before: datetime, aggregate_before: datetime) -> list[Target]:
    # Evaluation events still waiting for a span that never arrived.
    rows = PendingEvaluation.objects.filter(project=project, received_at__lt=raw_before)
    return [Target(RemovalKind.RAW, rows, "received_at")]
