"""Reads of traces and spans alone: the rows the counting layers sum, one trace with its span tree, the list
settings of a person. The explorer's reads, which also filter and chip by scores, are in front.selectors."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TypedDict

from django.db.models import Prefetch

from accounts.models import Project
from sre4ai_web.lib.sql import AnyOf
from traces.models import DEFAULT_LIST_COLUMNS, ListPreference, RetrievedDocument, SavedView, Span, Trace


class TraceRow(TypedDict):
    """A trace as the counting layers read it (rollups, SLIs, triage): ``.values(*TRACE_ROW_FIELDS)``."""

    pk: int
    service: str
    environment: str
    start_time: datetime
    duration_ms: float
    status: str
    model_names: list[str]
    release: str
    name: str
    input_tokens: int
    output_tokens: int
    cost: Decimal | None
    has_unpriced: bool


TRACE_ROW_FIELDS = tuple(TraceRow.__annotations__)
# A score carries its trace's start as of its scoring (an earlier span arriving later moves the trace by seconds):
# reads of a page's scores bound them by this much around the page's traces, so they skip other days' partitions.
SCORE_START_SLACK = timedelta(days=1)


def trace_prompts(trace_pks: Sequence[int], *, since: datetime | None = None) -> dict[int, set[str]]:
    """The prompt versions each trace's LLM calls used ("name v3", or the name alone): one definition for the
    dashboards' prompt slices and the triage page. ``since``: no later than the earliest of these traces' starts
    (a trace starts with its first span), so PostgreSQL searches only the partitions from that day on."""
    found: dict[int, set[str]] = defaultdict(set)
    spans = Span.objects.filter(AnyOf("trace_id", trace_pks), kind="llm")
    if since is not None:
        spans = spans.filter(start_time__gte=since)
    rows = spans.exclude(prompt_name="").values_list("trace_id", "prompt_name", "prompt_version").distinct()
    for trace_id, name, version in rows:
        found[trace_id].add(prompt_label(name, version))
    return found


def prompt_label(name: str, version: str) -> str:
    """How a prompt version is named in slices and on the triage page: "name v3", or the name alone."""
    return f"{name} v{version}" if version else name


def prompt_of(kind: str, name: str, version: str) -> str | None:
    """The prompt label a span counts for in ``trace_prompts`` (an LLM span with a prompt name), else None: for a
    reader that has the spans' rows already."""
    return prompt_label(name, version) if kind == "llm" and name else None


def services_with_traces(*, project_ids: Sequence[int], since: datetime) -> set[tuple[int, str]]:
    """(project id, service) of every service with a trace that started at or after ``since``; per project, so
    each reads a range of the (project, start_time) list index."""
    pairs: set[tuple[int, str]] = set()
    for project_id in project_ids:
        services = Trace.objects.filter(project_id=project_id, start_time__gte=since).values_list("service", flat=True)
        pairs.update((project_id, service) for service in services.distinct())
    return pairs


def latest_trace(*, project: Project) -> Trace | None:
    """The project's newest trace by start time (the trace list's index), or None when none arrived yet."""
    return Trace.objects.filter(project=project).order_by("-start_time", "-id").only("service", "start_time").first()


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


# --- the person's list settings ----------------------------------------------------------------------------


def list_columns_for(*, user_id: int, project: Project) -> list[str]:
    """The trace-list columns this person chose in this project, or the default set."""
    chosen = ListPreference.objects.filter(user_id=user_id, project=project).values_list("columns", flat=True).first()
    return list(chosen) if chosen is not None else list(DEFAULT_LIST_COLUMNS)


def saved_views_for(*, project: Project) -> list[SavedView]:
    return list(SavedView.objects.filter(project=project).order_by("name")[:100])
