"""Retention: each project keeps its raw rows (spans, traces, documents, scores, …) for ``raw_retention_days`` and
its aggregates (rollups, SLI counts) for ``aggregate_retention_days``; a beat task removes what is older.

The apps own their tables, so each one says what expires: in its ``AppConfig.ready`` it registers a function that,
for a project and its two cutoffs, returns ``Target``s (a queryset of expired rows and the indexed time column to
remove them in order of). ``retention_sweep`` removes every target's rows oldest first, in batches of at most
``BATCH_ROWS`` rows, each batch its own short transaction (select the oldest primary keys by the time index, then
delete those keys), so ingest never waits on it. It goes round the projects and targets one batch at a time, so a
project with a long backlog does not hold up the others, until nothing has expired or its time is up (the next run
goes on). What it removed is recorded per project, table and day (``DataRemoval``), for the Settings page.

On PostgreSQL the big tables are partitioned by time (sre4ai_web.lib.partitions): a sweep first drops whole the
partitions whose period has expired for every project (the longest retention), recording each project's rows, and
the projects of that longest retention then have nothing older to delete row by row (their rows go with the
partitions, up to a period after their cutoff); only projects with a shorter retention are deleted in batches.

SLOs, incidents, datasets and everything else that is configuration or history is never a target. SLI counts
are not one either: the SLO tick drops those older than the longest window (31 days, below ``AGGREGATE_DAYS_MIN``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import DataRemoval, Project, RemovalKind
from sre4ai_web.lib.partitions import AGGREGATE, RAW, oldest_kept, partitions_drop
from sre4ai_web.lib.sql import AnyOf

logger = logging.getLogger(__name__)

# Rows selected and deleted per statement. A target with a weight (a trace and its spans) takes fewer parent rows,
# so that the rows its children add stay about this many too.
BATCH_ROWS = 5000
# Rollups are never recomputed for minutes this close to the raw cutoff (``raw_kept_since``): a recompute running
# while a sweep passes its minute would read half-removed rows and overwrite good counts with smaller ones.
RECOMPUTE_MARGIN = timedelta(minutes=10)
# Days a person can choose (the form's bounds): aggregates are kept at least as long as the longest SLO window
# (30 days) and a monthly budget (31), so neither ever reads a removed minute.
RAW_DAYS_MAX = 3650
AGGREGATE_DAYS_MIN = 31


def _identity(value: Any) -> datetime:
    return value


@dataclass(frozen=True)
class Target:
    """Rows of one table that have expired, for one project."""

    kind: str  # RemovalKind
    rows: QuerySet[Any]  # filtered by project and cutoff: removed entirely, oldest first
    time_field: str  # the time column, indexed together with the project (or its parent)
    # A column counting the rows each row takes with it (a trace's spans): batches are cut by their sum.
    weight_field: str | None = None
    # The time column's value as an aware datetime (for columns that store nanoseconds).
    time_of: Callable[[Any], datetime] = _identity
    # Called with each batch's rows in the removing transaction, before they go (rollups keep what /metrics counted).
    before_remove: Callable[[QuerySet[Any]], None] | None = None


TargetsFunction = Callable[[Project, datetime, datetime], list[Target]]
_TARGETS: list[TargetsFunction] = []


def targets_register(function: TargetsFunction) -> None:
    """Called by an app's ``ready()``: ``function(project, raw_before, aggregate_before)`` lists its expired rows.
    A new table that grows with traffic registers here, or it grows for ever."""
    if function not in _TARGETS:
        _TARGETS.append(function)


def raw_cutoff(project: Project, now: datetime) -> datetime:
    """Raw rows that started before this minute have expired."""
    return (now - timedelta(days=project.raw_retention_days)).astimezone(UTC).replace(second=0, microsecond=0)


def aggregate_cutoff(project: Project, now: datetime) -> datetime:
    """Aggregates of buckets before this hour have expired (an hour goes with its minutes)."""
    moment = now - timedelta(days=project.aggregate_retention_days)
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def raw_kept_since(project: Project, now: datetime) -> datetime:
    """Rollups recompute only minutes from here on: older ones keep their counts while their raw rows go."""
    return raw_cutoff(project, now) + RECOMPUTE_MARGIN


@dataclass
class Removed:
    """Rows removed from one table of one project by one sweep, and the range of their times."""

    kind: str
    rows: int
    oldest: datetime
    newest: datetime
    estimated: bool = False  # some of the rows are an estimate (a partition dropped whole)

    def add(self, rows: int, oldest: datetime, newest: datetime, estimated: bool = False) -> None:
        self.rows += rows
        self.oldest, self.newest = min(self.oldest, oldest), max(self.newest, newest)
        self.estimated = self.estimated or estimated


@dataclass
class SweepResult:
    removed: dict[tuple[int, str], Removed] = field(default_factory=dict)  # (project id, table label) → rows
    finished: bool = True  # False: time ran out with rows left; the next run goes on

    @property
    def rows(self) -> int:
        return sum(r.rows for r in self.removed.values())


def _batch_remove(target: Target) -> tuple[dict[str, int], datetime, datetime, bool] | None:
    """Remove the oldest batch of a target's rows in one transaction: rows removed per model label (cascades
    included), the time range of the batch, and whether rows are left. None when nothing has expired."""
    columns = ["pk", target.time_field, *([target.weight_field] if target.weight_field else [])]
    with transaction.atomic():
        keys = list(target.rows.order_by(target.time_field).values_list(*columns)[:BATCH_ROWS])
        if not keys:
            return None
        more = len(keys) == BATCH_ROWS
        if target.weight_field:
            taken, weight = 0, 0
            for key in keys:
                weight += 1 + (key[2] or 0)
                if taken and weight > BATCH_ROWS:
                    more = True
                    break
                taken += 1
            keys = keys[:taken]
        batch = target.rows.model._base_manager.filter(AnyOf("pk", [k[0] for k in keys]))
        if target.before_remove is not None:
            target.before_remove(batch)
        _, per_model = batch.only("pk").delete()
    return per_model, target.time_of(keys[0][1]), target.time_of(keys[-1][1]), more


def _record(project_id: int, day: date, table: str, removed: Removed, now: datetime) -> None:
    with transaction.atomic():
        row = DataRemoval.objects.select_for_update().filter(project_id=project_id, day=day, table=table).first()
        if row is None:
            DataRemoval.objects.create(
                project_id=project_id,
                day=day,
                table=table,
                kind=removed.kind,
                oldest=removed.oldest,
                newest=removed.newest,
                rows=removed.rows,
                estimated=removed.estimated,
                first_at=now,
                last_at=now,
            )
            return
        row.rows += removed.rows
        row.oldest, row.newest = min(row.oldest, removed.oldest), max(row.newest, removed.newest)
        row.estimated = row.estimated or removed.estimated
        row.last_at = now
        row.save(update_fields=["rows", "oldest", "newest", "estimated", "last_at"])


def _longest(projects: list[Project], kind: str) -> int:
    return max(getattr(p, f"{kind}_retention_days") for p in projects)


def _partitions_drop(projects: list[Project], now: datetime, result: SweepResult) -> tuple[datetime | None, ...]:
    """PostgreSQL with partitioned tables (sre4ai_web.lib.partitions): drop whole the partitions whose period has
    expired for every project (the longest retention), and record what each project lost. Returns, per kind (raw,
    aggregate), where row by row deletion stops for the projects of the longest retention (their older rows went
    with the partitions; None: delete up to the cutoff as without partitions). Shorter retentions are still
    deleted in batches."""
    if not projects:
        return None, None
    kept: list[datetime | None] = []
    for group, kind, cutoff in (
        (RAW, RemovalKind.RAW, raw_cutoff),
        (AGGREGATE, RemovalKind.AGGREGATE, aggregate_cutoff),
    ):
        longest = next(p for p in projects if getattr(p, f"{kind}_retention_days") == _longest(projects, kind))
        moment = cutoff(longest, now)
        oldest = oldest_kept(group, moment)
        kept.append(oldest)
        if oldest is None:
            continue
        known = {p.pk for p in projects}
        for dropped in partitions_drop(group, oldest):
            if dropped.project_id not in known:
                continue
            key = (dropped.project_id, dropped.label)
            if key in result.removed:
                result.removed[key].add(dropped.rows, dropped.oldest, dropped.newest, dropped.estimated)
            else:
                result.removed[key] = Removed(kind, dropped.rows, dropped.oldest, dropped.newest, dropped.estimated)
    return tuple(kept)


def retention_sweep(*, now: datetime | None = None, seconds: float = 240.0) -> SweepResult:
    """Remove every project's expired rows (see the module's docstring) for at most ``seconds``, and record them."""
    now = now or timezone.now()
    deadline = time.monotonic() + seconds
    result = SweepResult()
    projects = list(Project.objects.order_by("pk"))
    raw_kept, aggregate_kept = _partitions_drop(projects, now, result) if seconds > 0 else (None, None)
    pending: list[tuple[Project, Target]] = []
    for project in projects:
        raw_before, aggregate_before = raw_cutoff(project, now), aggregate_cutoff(project, now)
        # A project of the longest retention: its older rows went (or go next run) with whole partitions.
        if raw_kept and project.raw_retention_days == _longest(projects, "raw"):
            raw_before = raw_kept
        if aggregate_kept and project.aggregate_retention_days == _longest(projects, "aggregate"):
            aggregate_before = aggregate_kept
        pending += [(project, t) for function in _TARGETS for t in function(project, raw_before, aggregate_before)]
    while pending and result.finished:
        left: list[tuple[Project, Target]] = []
        for project, target in pending:
            if time.monotonic() >= deadline:
                result.finished = False
                break
            try:
                batch = _batch_remove(target)
            except Exception:  # one table's failure (a lock timeout, a race with a late write) spares the others
                logger.exception("retention: removing %s rows of project %s failed", target.rows.model, project.pk)
                continue
            if batch is None:
                continue
            per_model, oldest, newest, more = batch
            for label, rows in per_model.items():
                if not rows:
                    continue
                if (project.pk, label) in result.removed:
                    result.removed[(project.pk, label)].add(rows, oldest, newest)
                else:
                    result.removed[(project.pk, label)] = Removed(target.kind, rows, oldest, newest)
            if more:
                left.append((project, target))
        pending = left
    day = now.astimezone(UTC).date()
    for (project_id, label), removed in result.removed.items():
        _record(project_id, day, label, removed, now)
    if result.rows:
        logger.info("retention: removed %d rows (%s)", result.rows, "done" if result.finished else "more left")
    return result
