"""What of a project's ingest data expires with its raw retention (accounts.retention)."""

from __future__ import annotations

from datetime import UTC, datetime

from accounts.models import Project, RemovalKind
from accounts.retention import Target
from traces.models import FollowupOutbox, PendingLogEvent, Trace

NANOS = 1_000_000_000


def _from_nanos(value: int) -> datetime:
    return datetime.fromtimestamp(value / NANOS, tz=UTC)


def retention_targets(project: Project, raw_before: datetime, aggregate_before: datetime) -> list[Target]:
    return [
        # A trace goes with its spans, their retrieved documents and its scores (cascades), by the trace list's
        # (project, start time) index; batches are cut by span count, so a batch removes about BATCH_ROWS spans.
        Target(
            RemovalKind.RAW,
            Trace.objects.filter(project=project, start_time__lt=raw_before),
            "start_time",
            weight_field="span_count",
        ),
        # gen_ai log events, kept per span (also those whose span never came).
        Target(
            RemovalKind.RAW,
            PendingLogEvent.objects.filter(project=project, time_unix_nano__lt=int(raw_before.timestamp()) * NANOS),
            "time_unix_nano",
            time_of=_from_nanos,
        ),
        # Follow-up work of an ingest that expired before the broker ever took it: its traces are gone too.
        Target(
            RemovalKind.RAW, FollowupOutbox.objects.filter(project=project, created_at__lt=raw_before), "created_at"
        ),
    ]
