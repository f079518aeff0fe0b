"""Writes for traces and spans: the durable half of ingest.

Spans arrive in any order and across requests. Each write upserts its spans, then recomputes the whole
trace row from all of that trace's stored spans, under a per-trace lock, so totals never depend on the
order of arrival. Follow-up work (scoring) is enqueued only after the commit.
"""

from __future__ import annotations

import hashlib
import json
import logging
import zlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Field, JSONField

from accounts.models import Project
from rollups.services import minutes_mark_dirty
from sre4ai_web.celery import app as celery_app
from traces.ingest.normalize import (
    SEARCH_TEXT_CHARS,
    RawEvent,
    RawSpan,
    SpanRecord,
    normalise_span,
    preview_text,
)
from traces.ingest.otlp import LogEvent
from traces.models import PendingLogEvent, RetrievedDocument, Span, Trace

logger = logging.getLogger(__name__)
MAX_TRACE_COST = Decimal(10**10)
# Spans of these kinds wrap other spans: their usage, if reported, repeats their children's.
CONTAINER_KINDS = frozenset({"agent", "chain", "workflow"})

SPAN_UPDATE_FIELDS = [
    "project",
    "parent_span_id",
    "name",
    "kind",
    "start_time",
    "end_time",
    "duration_ms",
    "status",
    "status_message",
    "service",
    "environment",
    "release",
    "session_id",
    "user_id",
    "tags",
    "trace_name",
    "model",
    "request_model",
    "provider",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost",
    "cost_source",
    "prompt_name",
    "prompt_version",
    "tool_name",
    "tool_args",
    "tool_result",
    "input",
    "output",
    "input_preview",
    "output_preview",
    "model_parameters",
    "finish_reason",
    "completion_start_time",
    "attributes",
    "resource",
    "scope",
    "events",
    "otlp_kind",
    "otlp_status_code",
    "source",
    "updated_at",
]
TRACE_UPDATE_FIELDS = [
    "service",
    "environment",
    "name",
    "start_time",
    "end_time",
    "duration_ms",
    "status",
    "span_count",
    "error_count",
    "model_names",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cost",
    "has_unpriced",
    "session_id",
    "user_id",
    "release",
    "tags",
    "root_span_id",
    "input_preview",
    "output_preview",
    "search_text",
    "updated_at",
]
SUMMARY_FIELDS = [
    "trace_id",
    "span_id",
    "parent_span_id",
    "name",
    "kind",
    "start_time",
    "end_time",
    "status",
    "service",
    "environment",
    "release",
    "session_id",
    "user_id",
    "tags",
    "trace_name",
    "model",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cost",
    "cost_source",
    "input_preview",
    "output_preview",
]


@dataclass
class StoreResult:
    trace_pks: list[int] = field(default_factory=list)
    spans: int = 0


def _lock_traces(project: Project, trace_ids: Iterable[str]) -> None:
    """Serialise writers of the same trace until commit (PostgreSQL; SQLite writers are serial anyway)."""
    if connection.vendor != "postgresql":
        return
    keys = sorted({zlib.crc32(f"{project.pk}:{t}".encode()) - 2**31 for t in trace_ids})
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) AS k ORDER BY k", [keys])


def _span_row(project: Project, trace_pk: int, record: SpanRecord, now: datetime) -> Span:
    return Span(
        project=project,
        trace_id=trace_pk,
        span_id=record.span_id,
        parent_span_id=record.parent_span_id,
        name=record.name,
        kind=record.kind,
        start_time=record.start_time,
        end_time=record.end_time,
        duration_ms=record.duration_ms,
        status=record.status,
        status_message=record.status_message,
        service=record.service,
        environment=record.environment,
        release=record.release,
        session_id=record.session_id,
        user_id=record.user_id,
        tags=record.tags,
        trace_name=record.trace_name,
        model=record.model,
        request_model=record.request_model,
        provider=record.provider,
        input_tokens=record.input_tokens,
        output_tokens=record.output_tokens,
        total_tokens=record.total_tokens,
        cache_read_tokens=record.cache_read_tokens,
        cache_write_tokens=record.cache_write_tokens,
        cost=record.cost,
        cost_source=record.cost_source,
        prompt_name=record.prompt_name,
        prompt_version=record.prompt_version,
        tool_name=record.tool_name,
        tool_args=record.tool_args,
        tool_result=record.tool_result,
        input=record.input,
        output=record.output,
        input_preview=record.input_preview,
        output_preview=record.output_preview,
        model_parameters=record.model_parameters,
        finish_reason=record.finish_reason,
        completion_start_time=record.completion_start_time,
        attributes=record.attributes,
        resource=record.resource,
        scope=record.scope,
        events=record.events,
        otlp_kind=record.otlp_kind,
        otlp_status_code=record.otlp_status_code,
        source=record.source,
        updated_at=now,
    )


@dataclass(frozen=True)
class _CopyColumn:
    attname: str
    column: str
    is_json: bool
    nullable: bool


SPAN_COPY_COLUMNS = [
    _CopyColumn(f.attname, str(f.column), isinstance(f, JSONField), f.null)
    for f in (Span._meta.get_field(name) for name in ("trace", "span_id", *SPAN_UPDATE_FIELDS))
    if isinstance(f, Field)
]


def _copy_upsert_spans(rows: list[Span]) -> dict[tuple[int, str], tuple[int, bool]]:
    """PostgreSQL: COPY the rows into a temporary table, then one INSERT … ON CONFLICT DO UPDATE.

    The ORM's bulk upsert sends every column as an array parameter that psycopg escapes value by value in
    Python, over half of an ingest request's time; COPY streams the same rows at a fraction of the cost.
    Returns (span row id, inserted rather than updated) per (trace row id, span id).
    """
    quote = connection.ops.quote_name
    columns = ", ".join(quote(c.column) for c in SPAN_COPY_COLUMNS)
    updates = ", ".join(
        f"{quote(c.column)} = EXCLUDED.{quote(c.column)}"
        for c in SPAN_COPY_COLUMNS
        if c.column not in ("trace_id", "span_id")
    )
    json_positions = [i for i, c in enumerate(SPAN_COPY_COLUMNS) if c.is_json]
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS span_upsert ON COMMIT DELETE ROWS AS "  # noqa: S608 (model columns)
            f"SELECT {columns} FROM traces_span WITH NO DATA"
        )
        cursor.execute("TRUNCATE span_upsert")  # an earlier call in the same transaction left its rows
        with cursor.cursor.copy(f"COPY span_upsert ({columns}) FROM STDIN") as copy:
            for row in rows:
                values = [getattr(row, c.attname) for c in SPAN_COPY_COLUMNS]
                for i in json_positions:
                    if values[i] is not None or not SPAN_COPY_COLUMNS[i].nullable:
                        values[i] = json.dumps(values[i])
                copy.write_row(values)
        cursor.execute(
            f"INSERT INTO traces_span ({columns}) SELECT {columns} FROM span_upsert "  # noqa: S608 (model columns)
            f"ON CONFLICT (trace_id, span_id) DO UPDATE SET {updates} "
            "RETURNING id, trace_id, span_id, (xmax = 0)"
        )
        return {(trace_id, span_id): (pk, inserted) for pk, trace_id, span_id, inserted in cursor.fetchall()}


def _pick_root(spans: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The span with no parent; if it has not arrived, the earliest span whose parent is missing."""
    ids = {s["span_id"] for s in spans}
    roots = [s for s in spans if not s["parent_span_id"]] or [s for s in spans if s["parent_span_id"] not in ids]
    return min(roots or spans, key=lambda s: (s["start_time"], s["span_id"]))


def _capped(cost: Decimal) -> Decimal | None:
    """A sum of absurd reported costs that would overflow the column is unknown, not an error."""
    return cost if cost < MAX_TRACE_COST else None


def _first_nonempty(values: Iterable[Any]) -> Any:
    return next((v for v in values if v), "")


def summarise_trace(spans: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Trace columns from all its spans. Pure: the same spans give the same row in any arrival order."""
    ordered = sorted(spans, key=lambda s: (s["start_time"], s["span_id"]))
    root = _pick_root(ordered)
    root_first = [root, *ordered]
    start = ordered[0]["start_time"]
    end = max(s["end_time"] for s in ordered)
    metered = [s for s in ordered if s["kind"] not in CONTAINER_KINDS]
    costs = [s["cost"] for s in metered if s["cost"] is not None]
    llm_spans = [s for s in ordered if s["kind"] == "llm"]
    errors = sum(1 for s in ordered if s["status"] == "error")
    return {
        "service": _first_nonempty(s["service"] for s in root_first),
        "environment": _first_nonempty(s["environment"] for s in root_first) or "default",
        "name": (_first_nonempty(s["trace_name"] for s in root_first) or root["name"])[:500],
        "start_time": start,
        "end_time": end,
        "duration_ms": max((end - start).total_seconds() * 1000.0, 0.0),
        "status": "error" if errors else "ok",
        "span_count": len(ordered),
        "error_count": errors,
        "model_names": sorted({s["model"] for s in ordered if s["model"] and s["kind"] in ("llm", "embedding")}),
        "input_tokens": sum(s["input_tokens"] or 0 for s in metered),
        "output_tokens": sum(s["output_tokens"] or 0 for s in metered),
        "total_tokens": sum(s["total_tokens"] or 0 for s in metered),
        "cost": _capped(sum(costs, Decimal(0))) if costs else None,
        "has_unpriced": any(s["cost_source"] == "unpriced" for s in metered),
        "session_id": _first_nonempty(s["session_id"] for s in root_first),
        "user_id": _first_nonempty(s["user_id"] for s in root_first),
        "release": _first_nonempty(s["release"] for s in root_first),
        "tags": sorted({t for s in ordered for t in s["tags"] or []}),
        "root_span_id": root["span_id"],
        "input_preview": root["input_preview"] or _first_nonempty(s["input_preview"] for s in llm_spans),
        "output_preview": root["output_preview"] or _first_nonempty(s["output_preview"] for s in reversed(llm_spans)),
    }


def _search_text(input_value: Any, output_value: Any) -> str:
    half = SEARCH_TEXT_CHARS // 2
    return (
        preview_text(input_value, ("user",))[:half] + "\n" + preview_text(output_value, ("assistant",))[:half]
    ).strip()


@transaction.atomic
def spans_store(*, project: Project, records: Sequence[SpanRecord]) -> StoreResult:
    """Upsert spans (same trace id + span id → update), then recompute their traces from stored spans."""
    unique: dict[tuple[str, str], SpanRecord] = {}
    for record in records:
        unique[(record.trace_id, record.span_id)] = record  # a span repeated in one batch: the last one wins
    if not unique:
        return StoreResult()
    by_trace: dict[str, list[SpanRecord]] = defaultdict(list)
    for record in unique.values():
        by_trace[record.trace_id].append(record)
    trace_ids = sorted(by_trace)
    _lock_traces(project, trace_ids)
    now = datetime.now(tz=records[0].start_time.tzinfo)

    # A trace seen before is recomputed from all its stored spans after the upsert; a new one is summarised
    # from this batch alone and written once.
    existing = {
        trace_id: (pk, start)
        for trace_id, pk, start in Trace.objects.filter(project=project, trace_id__in=trace_ids).values_list(
            "trace_id", "pk", "start_time"
        )
    }
    new_traces = [_new_trace(project, t, by_trace[t], now) for t in trace_ids if t not in existing]
    Trace.objects.bulk_create(new_traces)  # no conflict possible: the trace locks are held
    trace_pk = {trace_id: pk for trace_id, (pk, _) in existing.items()}
    trace_pk.update({t.trace_id: t.pk for t in new_traces})

    rows = [_span_row(project, trace_pk[r.trace_id], r, now) for r in unique.values()]
    if connection.vendor == "postgresql":
        stored = _copy_upsert_spans(rows)
        span_pk = {(r.trace_id, r.span_id): stored[(trace_pk[r.trace_id], r.span_id)][0] for r in unique.values()}
        updated = [pk for pk, inserted in stored.values() if not inserted]
    else:
        Span.objects.bulk_create(
            rows, update_conflicts=True, unique_fields=["trace", "span_id"], update_fields=SPAN_UPDATE_FIELDS
        )
        span_pk = {(r.trace_id, r.span_id): row.pk for r, row in zip(unique.values(), rows, strict=True)}
        updated = list(span_pk.values())

    # Re-sent spans replace their documents; a span inserted just now has none to replace.
    if updated:
        RetrievedDocument.objects.filter(span_id__in=updated).delete()
    documents = [
        RetrievedDocument(
            span_id=span_pk[(r.trace_id, r.span_id)],
            position=d.position,
            document_id=d.document_id,
            score=d.score,
            content=d.content,
            metadata=d.metadata,
        )
        for r in unique.values()
        for d in r.documents
    ]
    if documents:
        RetrievedDocument.objects.bulk_create(documents)

    starts = _recompute_traces(project, {t: pk for t, (pk, _) in existing.items()}, unique, now)
    # The rollup buckets of these traces changed, including the one a trace left when an earlier span arrived.
    previous_starts = [start for _, start in existing.values()]
    minutes_mark_dirty(project_id=project.pk, moments=[*previous_starts, *starts, *(t.start_time for t in new_traces)])
    pks = sorted(trace_pk.values())
    transaction.on_commit(lambda: traces_ingested(project_id=project.pk, trace_pks=pks))
    return StoreResult(trace_pks=pks, spans=len(unique))


def _summary_fields(record: SpanRecord) -> dict[str, Any]:
    """A batch record in the shape ``summarise_trace`` reads from stored spans."""
    return {
        "span_id": record.span_id, "parent_span_id": record.parent_span_id, "name": record.name,
        "kind": record.kind, "start_time": record.start_time, "end_time": record.end_time,
        "status": record.status, "service": record.service, "environment": record.environment,
        "release": record.release, "session_id": record.session_id, "user_id": record.user_id,
        "tags": record.tags, "trace_name": record.trace_name, "model": record.model,
        "input_tokens": record.input_tokens, "output_tokens": record.output_tokens,
        "total_tokens": record.total_tokens, "cost": record.cost, "cost_source": record.cost_source,
        "input_preview": record.input_preview, "output_preview": record.output_preview,
    }  # fmt: skip


def _new_trace(project: Project, trace_id: str, records: list[SpanRecord], now: datetime) -> Trace:
    summary = summarise_trace([_summary_fields(r) for r in records])
    root = next(r for r in records if r.span_id == summary["root_span_id"])
    return Trace(project=project, trace_id=trace_id, updated_at=now, search_text=_search_text(root.input, root.output),
                 **summary)  # fmt: skip


def _recompute_traces(
    project: Project, trace_pk: dict[str, int], batch: dict[tuple[str, str], SpanRecord], now: datetime
) -> list[datetime]:
    """Rewrite the trace rows from their stored spans; returns their start times."""
    pk_to_id = {pk: trace_id for trace_id, pk in trace_pk.items()}
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in Span.objects.filter(trace_id__in=pk_to_id).values("trace_id", *SUMMARY_FIELDS[1:]):
        grouped[pk_to_id[row["trace_id"]]].append(row)
    summaries: list[Trace] = []
    missing_root_text: dict[int, str] = {}
    for trace_id, spans in grouped.items():
        summary = summarise_trace(spans)
        root_record = batch.get((trace_id, summary["root_span_id"]))
        if root_record is not None:
            summary["search_text"] = _search_text(root_record.input, root_record.output)
        else:
            missing_root_text[trace_pk[trace_id]] = summary["root_span_id"]
        summaries.append(Trace(project=project, trace_id=trace_id, updated_at=now, **summary))
    if missing_root_text:
        stored = {
            row["trace_id"]: row
            for row in Span.objects.filter(trace_id__in=missing_root_text).values(
                "trace_id", "span_id", "input", "output"
            )
            if missing_root_text[row["trace_id"]] == row["span_id"]
        }
        for trace in summaries:
            row = stored.get(trace_pk[trace.trace_id])
            if row is not None:
                trace.search_text = _search_text(row["input"], row["output"])
    Trace.objects.bulk_create(
        summaries, update_conflicts=True, unique_fields=["project", "trace_id"], update_fields=TRACE_UPDATE_FIELDS
    )
    return [trace.start_time for trace in summaries]


def traces_ingested(*, project_id: int, trace_pks: list[int]) -> None:
    """After commit: hand the new or changed traces to the follow-up tasks named in settings.

    ``SRE4AI_TRACE_INGESTED_TASKS`` lists Celery task names that take ``(project_id, trace_pks)``;
    scoring registers itself there.
    """
    for task_name in settings.SRE4AI_TRACE_INGESTED_TASKS:
        try:
            celery_app.send_task(task_name, args=[project_id, trace_pks])
        except Exception:
            # The spans are committed and acknowledged; a broker outage must not turn that into an error.
            # The traces can be scored later with a rescore over their time range.
            logger.exception("could not queue %s for %d traces of project %s", task_name, len(trace_pks), project_id)


def _pending_events(project: Project, keys: set[tuple[str, str]]) -> dict[tuple[str, str], list[RawEvent]]:
    if not keys:
        return {}
    found: dict[tuple[str, str], list[RawEvent]] = defaultdict(list)
    rows = PendingLogEvent.objects.filter(project=project, trace_id__in={t for t, _ in keys}).values_list(
        "trace_id", "span_id", "name", "time_unix_nano", "attributes", "body"
    )
    for trace_id, span_id, name, time, attrs, body in rows:
        if (trace_id, span_id) in keys:
            found[(trace_id, span_id)].append(RawEvent(name, time, attrs, body))
    return found


@transaction.atomic
def otlp_spans_ingest(*, project: Project, spans: Sequence[RawSpan]) -> StoreResult:
    """Normalise OTLP spans (with any log events already received for them) and store them."""
    if not spans:
        return StoreResult()
    _lock_traces(project, {s.trace_id for s in spans})
    logs = _pending_events(project, {(s.trace_id, s.span_id) for s in spans})
    records = [normalise_span(s, logs.get((s.trace_id, s.span_id), ())) for s in spans]
    return spans_store(project=project, records=records)


def _fingerprint(event: LogEvent) -> str:
    payload = [event.event.name, event.event.time_unix_nano, event.event.attributes, event.event.body]
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _raw_from_row(span: Span) -> RawSpan:
    def nanos(value: datetime) -> int:
        return int(value.timestamp()) * 10**9 + value.microsecond * 1000

    return RawSpan(
        trace_id=span.trace.trace_id,
        span_id=span.span_id,
        parent_span_id=span.parent_span_id,
        name=span.name,
        otlp_kind=span.otlp_kind,
        start_unix_nano=nanos(span.start_time),
        end_unix_nano=nanos(span.end_time),
        status_code=span.otlp_status_code,
        status_message=span.status_message if span.otlp_status_code == 2 else "",
        attributes=span.attributes,
        resource=span.resource,
        scope=span.scope,
        events=[RawEvent(e["name"], e["time_unix_nano"], e["attributes"], e.get("body")) for e in span.events],
    )


@transaction.atomic
def otlp_log_events_ingest(*, project: Project, events: Sequence[LogEvent]) -> int:
    """Keep gen_ai log events for their spans and re-normalise the spans already stored."""
    if not events:
        return 0
    _lock_traces(project, {e.trace_id for e in events})
    PendingLogEvent.objects.bulk_create(
        [
            PendingLogEvent(
                project=project,
                trace_id=e.trace_id,
                span_id=e.span_id,
                fingerprint=_fingerprint(e),
                time_unix_nano=e.event.time_unix_nano,
                name=e.event.name[:200],
                body=e.event.body,
                attributes=e.event.attributes,
            )
            for e in events
        ],
        ignore_conflicts=True,
    )
    keys = {(e.trace_id, e.span_id) for e in events}
    stored = [
        span
        for span in Span.objects.select_related("trace").filter(
            project=project, source="otlp", trace__trace_id__in={t for t, _ in keys}, span_id__in={s for _, s in keys}
        )
        if (span.trace.trace_id, span.span_id) in keys
    ]
    if stored:
        otlp_spans_ingest(project=project, spans=[_raw_from_row(span) for span in stored])
    return len(events)
