"""What of a project's evaluation data expires with its raw retention (accounts.retention). Scores go with their
traces (a cascade of the traces' target); datasets, probes and their runs are never removed."""

from __future__ import annotations

from datetime import datetime

from django.db import connection

from accounts.models import Project, RemovalKind
from accounts.retention import Target
from evals.models import PendingEvaluation, ProbeResult
from sre4ai_web.lib.partitions import PartitionedTable


def retention_targets(project: Project, raw_before: datetime, aggregate_before: datetime) -> list[Target]:
    # Evaluation events still waiting for a span that never arrived.
    rows = PendingEvaluation.objects.filter(project=project, received_at__lt=raw_before)
    return [Target(RemovalKind.RAW, rows, "received_at")]


def probe_results_unlink(spec: PartitionedTable, partition: str) -> None:
    """A dropped partition of traces takes its traces without the ORM's SET_NULL: probe results that pointed at
    them keep their answer and verdict, and lose the link."""
    if spec.label != "traces.Trace":
        return
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            # Probe results are few: each is looked up in the partition's index, never the partition scanned.
            f"UPDATE {ProbeResult._meta.db_table} r SET trace_id = NULL WHERE r.trace_id IS NOT NULL "  # noqa: S608
            f"AND EXISTS (SELECT 1 FROM {quote(partition)} t WHERE t.id = r.trace_id)"
        )
