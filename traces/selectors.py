"""Reads behind the trace pages and the read API. Every query is scoped to one project."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import connection
from django.db.models import Exists, OuterRef, Prefetch, QuerySet

from accounts.models import Project
from evals.models import Score
from rollups.models import Granularity, ScoreRollup, TrafficRollup
from traces.models import RetrievedDocument, Span, Trace

LIST_COLUMNS = (
    "id",
    "trace_id",
    "service",
    "environment",
    "name",
    "start_time",
    "duration_ms",
    "status",
    "span_count",
    "error_count",
    "model_names",
    "total_tokens",
    "cost",
    "has_unpriced",
    "input_preview",
    "output_preview",
    "session_id",
    "user_id",
    "release",
)


class InvalidCursor(ValueError):
    pass


@dataclass(frozen=True)
class TraceFilters:
    service: str = ""
    environment: str = ""
    model: str = ""
    status: str = ""
    since: datetime | None = None
    until: datetime | None = None
    text: str = ""
    min_duration_ms: float | None = None
    min_cost: Decimal | None = None
    session_id: str = ""
    user_id: str = ""
    release: str = ""
    failing: str = ""  # a score name: only traces whose current score of that name failed
    name: str = ""  # the trace name, i.e. the route


@dataclass
class TracePage:
    items: list[Trace]
    next_cursor: str | None


def encode_cursor(trace: Trace) -> str:
    return base64.urlsafe_b64encode(f"{trace.start_time.isoformat()}|{trace.pk}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        stamp, _, pk = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        return datetime.fromisoformat(stamp), int(pk)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidCursor("The cursor is not valid: use the next_cursor value of a previous page.") from exc


def _filtered(project: Project, filters: TraceFilters) -> QuerySet[Trace]:
    qs = Trace.objects.filter(project=project)
    if filters.service:
        qs = qs.filter(service=filters.service)
    if filters.environment:
        qs = qs.filter(environment=filters.environment)
    if filters.status:
        qs = qs.filter(status=filters.status)
    if filters.since:
        qs = qs.filter(start_time__gte=filters.since)
    if filters.until:
        qs = qs.filter(start_time__lte=filters.until)
    if filters.min_duration_ms is not None:
        qs = qs.filter(duration_ms__gte=filters.min_duration_ms)
    if filters.min_cost is not None:
        qs = qs.filter(cost__gte=filters.min_cost)
    if filters.session_id:
        qs = qs.filter(session_id=filters.session_id)
    if filters.user_id:
        qs = qs.filter(user_id=filters.user_id)
    if filters.release:
        qs = qs.filter(release=filters.release)
    if filters.text:
        # PostgreSQL: a trigram index on UPPER(search_text) serves this ILIKE-style match.
        qs = qs.filter(search_text__icontains=filters.text)
    if filters.model:
        qs = qs.filter(Exists(Span.objects.filter(project=project, model=filters.model, trace=OuterRef("pk"))))
    if filters.name:
        qs = qs.filter(name=filters.name)
    if filters.failing:
        qs = qs.filter(Exists(Score.objects.current().filter(trace=OuterRef("pk"), name=filters.failing, passed=False)))
    return qs


def trace_page(*, project: Project, filters: TraceFilters, cursor: str = "", limit: int = 50) -> TracePage:
    """Newest first, keyset-paginated on (start_time, id): a deep page costs what the first one does."""
    qs = _filtered(project, filters).only(*LIST_COLUMNS).order_by("-start_time", "-id")
    if cursor:
        stamp, pk = decode_cursor(cursor)
        # Raw SQL gets the value as the backend stores it: SQLite compares datetimes as text in its own format.
        stamp_value = connection.ops.adapt_datetimefield_value(stamp)
        qs = qs.extra(where=["(traces_trace.start_time, traces_trace.id) < (%s, %s)"], params=[stamp_value, pk])
    rows = list(qs[: limit + 1])
    next_cursor = encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    items = rows[:limit]
    failing: dict[int, list[str]] = {}
    for trace_pk, name in (
        Score.objects.current()
        .filter(trace__in=[t.pk for t in items], passed=False)
        .order_by("name")
        .values_list("trace_id", "name")
    ):
        failing.setdefault(trace_pk, []).append(name)
    for trace in items:
        trace.failing_scores = sorted(set(failing.get(trace.pk, [])))  # type: ignore[attr-defined]
    return TracePage(items=items, next_cursor=next_cursor)


def trace_facets(*, project: Project) -> dict[str, list[str]]:
    """Values for the filter drop-downs, read from the hourly rollups (a DISTINCT over raw traces and spans
    scans the whole table: 30-120 ms each at a million spans, see docs/benchmarks.md)."""
    hourly = TrafficRollup.objects.filter(project=project, granularity=Granularity.HOUR)
    overall = hourly.filter(dimension="")
    scores = ScoreRollup.objects.filter(project=project, granularity=Granularity.HOUR, dimension="")
    return {
        "services": sorted(set(overall.values_list("service", flat=True).distinct())),
        "environments": sorted(set(overall.values_list("environment", flat=True).distinct())),
        "models": sorted(set(hourly.filter(dimension="model").values_list("value", flat=True).distinct())),
        "score_names": sorted(set(scores.values_list("name", flat=True).distinct())),
    }


def trace_detail(*, project: Project, trace_id: str) -> Trace | None:
    spans = Span.objects.order_by("start_time", "span_id").prefetch_related(
        Prefetch("documents", queryset=RetrievedDocument.objects.order_by("position"))
    )
    return (
        Trace.objects.filter(project=project, trace_id=trace_id.lower())
        .prefetch_related(Prefetch("spans", queryset=spans))
        .first()
    )


@dataclass
class SpanNode:
    span: Span
    depth: int
    offset_pct: float
    width_pct: float
    orphan: bool


def span_tree(trace: Trace) -> list[SpanNode]:
    """Spans in depth-first order with waterfall geometry; spans whose parent never arrived are marked."""
    spans: list[Span] = list(trace.spans.all())
    ids = {s.span_id for s in spans}
    children: dict[str, list[Span]] = {}
    roots: list[Span] = []
    for span in spans:
        if span.parent_span_id and span.parent_span_id in ids:
            children.setdefault(span.parent_span_id, []).append(span)
        else:
            roots.append(span)
    total_ms = max(trace.duration_ms, 0.001)
    out: list[SpanNode] = []

    def visit(span: Span, depth: int) -> None:
        offset = (span.start_time - trace.start_time).total_seconds() * 1000.0
        out.append(
            SpanNode(
                span=span,
                depth=depth,
                offset_pct=min(max(offset / total_ms * 100.0, 0.0), 100.0),
                width_pct=max(min(span.duration_ms / total_ms * 100.0, 100.0), 0.3),
                orphan=bool(span.parent_span_id) and span.parent_span_id not in ids,
            )
        )
        for child in children.get(span.span_id, []):
            visit(child, depth + 1)

    for root in roots:
        visit(root, 0)
    return out
