"""Writes for traces and spans: the durable half of ingest.

Spans arrive in any order and across requests. Each write upserts its spans, then recomputes the whole
trace row from all of that trace's stored spans, under a per-trace lock, so totals never depend on the
order of arrival. Follow-up work (scoring) is recorded in an outbox in the same transaction and enqueued
only after the commit; what the broker did not take, or a worker that died did not finish, is enqueued again
by beat (traces/followups.py).
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
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Protocol

from django.conf import settings
from django.db import connection, transaction

from accounts.models import Project
from sre4ai_web.lib.bounds import MAX_COST, MAX_TOKENS_SUM
from sre4ai_web.lib.partitions import RAW, partitions_ensure
from sre4ai_web.lib.timebuckets import floor_minute
from traces.exchange import SpanFacts, answer_text, exchange_of
from traces.followups import followups_add
from traces.ingest.bulk import columns, rows_insert, rows_update, sequence
from traces.ingest.normalize import (
    SEARCH_TEXT_CHARS,
    EvaluationRecord,
    NestingTooDeep,
    RawEvent,
    RawSpan,
    SpanRecord,
    nested_json_field,
    normalise_span,
    preview_text,
)
from traces.ingest.otlp import LogEvent
from traces.ingest.redact import redact_json, redact_records
from traces.models import DirtyBucket, PendingLogEvent, RetrievedDocument, Span, Trace

logger = logging.getLogger(__name__)
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


def minutes_mark_dirty(*, project_id: int, moments: Iterable[datetime]) -> None:
    """Record that the minutes holding these moments changed (idempotent, cheap): the rollups and SLIs of those
    minutes are recomputed from raw rows by the rollup beat."""
    minutes = {floor_minute(m) for m in moments}
    if minutes:
        DirtyBucket.objects.bulk_create(
            [DirtyBucket(project_id=project_id, minute=m) for m in sorted(minutes)], ignore_conflicts=True
        )


class SpansStored(Protocol):
    def __call__(self, *, project: Project, records: Sequence[SpanRecord]) -> None: ...


class EvaluationsReceived(Protocol):
    def __call__(self, *, project: Project, evaluations: Sequence[EvaluationRecord]) -> object: ...


@dataclass(frozen=True)
class IngestListener:
    """What a layer above traces does with ingest, inside the ingest's transaction: ``spans_stored`` runs after
    the spans are written, with their trace locks held; ``evaluations_received`` takes the decoded
    gen_ai.evaluation.result events (evals registers both, for app scores, in EvalsConfig.ready)."""

    spans_stored: SpansStored
    evaluations_received: EvaluationsReceived


INGEST_LISTENERS: list[IngestListener] = []


def on_ingest(listener: IngestListener) -> None:
    if listener not in INGEST_LISTENERS:
        INGEST_LISTENERS.append(listener)


@dataclass
class StoreResult:
    trace_pks: list[int] = field(default_factory=list)
    spans: int = 0
    rejected: list[str] = field(default_factory=list)  # spans not stored, each with the reason


def traces_lock(*, project_id: int, keys: Iterable[str]) -> None:
    """Serialise writers of the same traces (``keys``: trace ids, or other names in the same key space) until
    commit. PostgreSQL; SQLite writers are serial anyway."""
    if connection.vendor != "postgresql":
        return
    numbers = sorted({zlib.crc32(f"{project_id}:{t}".encode()) - 2**31 for t in keys})
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) AS k ORDER BY k", [numbers])


SPAN_COLUMNS = columns(Span, ("id", "trace", "span_id", *SPAN_UPDATE_FIELDS))
TRACE_COLUMNS = columns(Trace, ("id", "project", "trace_id", *TRACE_UPDATE_FIELDS))
DOCUMENT_COLUMNS = columns(
    RetrievedDocument, ("span", "start_time", "position", "document_id", "score", "content", "metadata")
)
# The column type rounds costs to 10 places: round them before summing so a trace's cost does not depend on
# whether its spans were summed from this batch or read back from the table.
COST_PLACES = Decimal("1e-10")


@dataclass
class _StoredTrace:
    pk: int
    start_time: datetime
    spans: list[dict[str, Any]]  # SUMMARY_FIELDS and "id" of each stored span


def _stored_traces_orm(project: Project, trace_ids: list[str]) -> dict[str, _StoredTrace]:
    found = {
        trace_id: _StoredTrace(pk, start, [])
        for trace_id, pk, start in Trace.objects.filter(project=project, trace_id__in=trace_ids).values_list(
            "trace_id", "pk", "start_time"
        )
    }
    by_pk = {t.pk: t for t in found.values()}
    for row in Span.objects.filter(trace_id__in=by_pk).values("trace_id", "id", *SUMMARY_FIELDS[1:]):
        by_pk[row.pop("trace_id")].spans.append(row)
    return found


@dataclass
class _Prefetched:
    stored: dict[str, _StoredTrace]
    events: dict[tuple[str, str], list[RawEvent]]
    # PostgreSQL: primary keys taken from the sequences for the rows this batch may insert (one per trace and
    # per span; those already stored leave a gap, as a rolled-back insert does).
    trace_pks: list[int] = field(default_factory=list)
    span_pks: list[int] = field(default_factory=list)


STORED_FIELDS = ["id", *SUMMARY_FIELDS[1:]]


def _lock_and_read(project: Project, keys: set[tuple[str, str]], *, log_events: bool) -> _Prefetched:
    """Lock the batch's traces, then read what writing it needs: the pending log events of its spans, its stored
    traces with their spans, and primary keys for new rows. On PostgreSQL that is one round trip of four
    statements (psycopg's client-side binding sends them as one query, run in order)."""
    trace_ids = sorted({t for t, _ in keys})
    if connection.vendor != "postgresql":
        return _Prefetched(_stored_traces_orm(project, trace_ids), _pending_events(project, keys) if log_events else {})
    quote = connection.ops.quote_name
    lock_keys = sorted({zlib.crc32(f"{project.pk}:{t}".encode()) - 2**31 for t in trace_ids})
    statements = ["SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) AS k ORDER BY k"]
    params: list[Any] = [lock_keys]
    if log_events:
        statements.append(
            "SELECT p.trace_id, p.span_id, p.name, p.time_unix_nano, p.attributes, p.body "  # noqa: S608
            "FROM unnest(%s::text[]) AS k(trace_id) CROSS JOIN LATERAL "
            f"(SELECT * FROM {PendingLogEvent._meta.db_table} WHERE project_id = %s AND trace_id = k.trace_id "
            "ORDER BY id OFFSET 0) AS p"
        )
        params += [trace_ids, project.pk]
    # Each trace id probes the unique (project, trace_id) index: "LIMIT 1" keeps the planner from flattening the
    # subquery into a join that, with stale or missing statistics (autovacuum off, a young table), scanned every
    # trace of the project per request: 20 ms at 26,000 traces.
    span_columns = [quote(c.column) for c in columns(Span, STORED_FIELDS)]
    statements.append(
        f"SELECT t.trace_id, t.id, t.start_time, {', '.join(f's.{c}' for c in span_columns)} "  # noqa: S608
        "FROM unnest(%s::text[]) AS k(trace_id) "
        f"CROSS JOIN LATERAL (SELECT id, trace_id, start_time FROM {Trace._meta.db_table} "
        "WHERE project_id = %s AND trace_id = k.trace_id LIMIT 1) AS t "
        f"LEFT JOIN LATERAL (SELECT {', '.join(span_columns)} FROM {Span._meta.db_table} "
        "WHERE trace_id = t.id) AS s ON TRUE"
    )
    params += [trace_ids, project.pk]
    statements.append(
        "SELECT ARRAY(SELECT nextval(%s::regclass) FROM generate_series(1, %s)), "
        "ARRAY(SELECT nextval(%s::regclass) FROM generate_series(1, %s))"
    )
    params += [sequence(Trace._meta.db_table), len(trace_ids), sequence(Span._meta.db_table), len(keys)]
    events: dict[tuple[str, str], list[RawEvent]] = defaultdict(list)
    stored: dict[str, _StoredTrace] = {}
    tags = STORED_FIELDS.index("tags")
    with connection.cursor() as cursor:
        cursor.execute("; ".join(statements), params)
        if log_events:
            cursor.nextset()
            for trace_id, span_id, name, time, attrs, body in cursor.fetchall():
                if (trace_id, span_id) in keys:  # JSON comes back as text from Django's connection
                    events[(trace_id, span_id)].append(
                        RawEvent(name, time, json.loads(attrs), None if body is None else json.loads(body))
                    )
        cursor.nextset()
        for trace_id, pk, start, *span in cursor.fetchall():
            trace = stored.setdefault(trace_id, _StoredTrace(pk, start, []))
            if span[0] is not None:
                span[tags] = json.loads(span[tags])
                trace.spans.append(dict(zip(STORED_FIELDS, span, strict=True)))
        cursor.nextset()
        trace_pks, span_pks = cursor.fetchone()
    return _Prefetched(stored, events, trace_pks, span_pks)


def _span_values(record: SpanRecord, project: Project, now: datetime) -> dict[str, Any]:
    """A span row as {attname: value} (JSON not yet encoded); the summary fields are read from it too."""
    values = {c.attname: getattr(record, c.attname, None) for c in SPAN_COLUMNS[3:]}
    values["project_id"] = project.pk
    values["updated_at"] = now
    values["span_id"] = record.span_id
    if record.cost is not None:
        values["cost"] = record.cost.quantize(COST_PLACES, ROUND_HALF_UP)
    return values


def _facts(span: dict[str, Any]) -> SpanFacts:
    return SpanFacts(
        span_id=span["span_id"],
        parent_span_id=span["parent_span_id"],
        kind=span["kind"],
        start_time=span["start_time"],
        end_time=span["end_time"],
        input_text=span["input_preview"].strip(),
        output_text=answer_text(span["output_preview"]),
    )


def _capped(cost: Decimal) -> Decimal | None:
    """A sum of absurd reported costs that would overflow the column is unknown, not an error."""
    return cost if cost <= MAX_COST else None


def _first_nonempty(values: Iterable[Any]) -> Any:
    return next((v for v in values if v), "")


def summarise_trace(spans: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Trace columns from all its spans. Pure: the same spans give the same row in any arrival order."""
    ordered = sorted(spans, key=lambda s: (s["start_time"], s["span_id"]))
    by_id = {s["span_id"]: s for s in ordered}
    exchange = exchange_of([_facts(s) for s in ordered])
    root = by_id[exchange.root.span_id]
    root_first = [root, *ordered]
    start = ordered[0]["start_time"]
    end = max(s["end_time"] for s in ordered)
    metered = [s for s in ordered if s["kind"] not in CONTAINER_KINDS]
    costs = [s["cost"] for s in metered if s["cost"] is not None]
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
        "input_tokens": min(sum(s["input_tokens"] or 0 for s in metered), MAX_TOKENS_SUM),
        "output_tokens": min(sum(s["output_tokens"] or 0 for s in metered), MAX_TOKENS_SUM),
        "total_tokens": min(sum(s["total_tokens"] or 0 for s in metered), MAX_TOKENS_SUM),
        "cost": _capped(sum(costs, Decimal(0))) if costs else None,
        "has_unpriced": any(s["cost_source"] == "unpriced" for s in metered),
        "session_id": _first_nonempty(s["session_id"] for s in root_first),
        "user_id": _first_nonempty(s["user_id"] for s in root_first),
        "release": _first_nonempty(s["release"] for s in root_first),
        "tags": sorted({t for s in ordered for t in s["tags"] or []}),
        "root_span_id": root["span_id"],
        # The same question and answer the evaluators judge (traces.exchange).
        "input_preview": exchange.question.input_text if exchange.question else "",
        "output_preview": exchange.answer.output_text if exchange.answer else "",
    }


def _search_text(input_value: Any, output_value: Any) -> str:
    half = SEARCH_TEXT_CHARS // 2
    return (
        preview_text(input_value, ("user",))[:half] + "\n" + preview_text(output_value, ("assistant",))[:half]
    ).strip()


def _root_texts(stored: dict[str, _StoredTrace], roots: dict[str, str]) -> dict[str, str]:
    """Search text of stored traces whose root span is not in the batch, from that stored span."""
    pk_to_id = {stored[t].pk: t for t in roots}
    rows = Span.objects.filter(trace_id__in=pk_to_id, span_id__in=set(roots.values())).values(
        "trace_id", "span_id", "input", "output"
    )
    return {
        pk_to_id[row["trace_id"]]: _search_text(row["input"], row["output"])
        for row in rows
        if roots[pk_to_id[row["trace_id"]]] == row["span_id"]
    }


def _store(project: Project, records: Sequence[SpanRecord], prefetched: _Prefetched) -> StoreResult:
    """Write spans and their traces; the caller holds the trace locks (_lock_and_read) inside its transaction.

    The stored spans of the batch's traces are read first, so each trace is summarised in Python from
    stored + batch spans and written once, and only spans that really are re-sent take the update path;
    new rows (nearly all of them) are COPYed on PostgreSQL (traces.ingest.bulk).
    """
    if project.redact_pii:  # every path that stores spans passes here, so nothing is written unredacted
        records = redact_records(list(records))
    unique: dict[tuple[str, str], SpanRecord] = {}
    for record in records:
        unique[(record.trace_id, record.span_id)] = record  # a span repeated in one batch: the last one wins
    if not unique:
        return StoreResult()
    by_trace: dict[str, list[SpanRecord]] = defaultdict(list)
    for record in unique.values():
        by_trace[record.trace_id].append(record)
    trace_ids = sorted(by_trace)
    now = datetime.now(tz=records[0].start_time.tzinfo)
    stored = prefetched.stored
    # PostgreSQL: every day of the batch has its partitions (an old-but-accepted or a future span may be the
    # first of its day); a lookup in what the process knows when they exist.
    partitions_ensure(RAW, {r.start_time for r in unique.values()})
    rows = {key: _span_values(record, project, now) for key, record in unique.items()}

    # A new trace is summarised from this batch; a stored one from its stored spans, re-sent ones replaced.
    summaries: dict[str, dict[str, Any]] = {}
    resent: dict[tuple[str, str], int] = {}  # (trace id, span id) → primary key of the stored span
    missing_root: dict[str, str] = {}
    for trace_id in trace_ids:
        spans = [rows[(trace_id, r.span_id)] for r in by_trace[trace_id]]
        for span in stored[trace_id].spans if trace_id in stored else ():
            if (trace_id, span["span_id"]) in unique:
                resent[(trace_id, span["span_id"])] = span["id"]
            else:
                spans.append(span)
        summary = summarise_trace(spans)
        root = unique.get((trace_id, summary["root_span_id"]))
        if root is not None:
            summary["search_text"] = _search_text(root.input, root.output)
        else:
            missing_root[trace_id] = summary["root_span_id"]
        summaries[trace_id] = summary
    if missing_root:
        for trace_id, text in _root_texts(stored, missing_root).items():
            summaries[trace_id]["search_text"] = text
    for summary in summaries.values():
        # An agent's answer may sit on an LLM span rather than the root (traces.exchange): make it findable too.
        answer, text = summary["output_preview"], summary.get("search_text", "")
        if answer and answer not in text:
            summary["search_text"] = (text + "\n" + answer)[:SEARCH_TEXT_CHARS].strip()

    new_traces = [t for t in trace_ids if t not in stored]
    new_spans = [key for key in unique if key not in resent]
    trace_rows = {
        t: {"project_id": project.pk, "trace_id": t, "updated_at": now, "search_text": "", **summaries[t]}
        for t in trace_ids
    }
    if connection.vendor == "postgresql":  # new rows take the keys read from the sequences with the batch
        for trace_id, pk in zip(new_traces, prefetched.trace_pks, strict=False):
            trace_rows[trace_id]["id"] = pk
        for key, pk in zip(new_spans, prefetched.span_pks, strict=False):
            rows[key]["id"] = pk
    trace_pk = {t: s.pk for t, s in stored.items()}
    trace_pk.update(
        zip(new_traces, rows_insert(Trace, TRACE_COLUMNS, [trace_rows[t] for t in new_traces]), strict=True)
    )
    for key, row in rows.items():
        row["trace_id"] = trace_pk[key[0]]
    for key, pk in resent.items():
        rows[key]["id"] = pk
    for key, pk in zip(new_spans, rows_insert(Span, SPAN_COLUMNS, [rows[key] for key in new_spans]), strict=True):
        rows[key]["id"] = pk
    rows_update(Span, SPAN_COLUMNS, [rows[key] for key in resent])

    # Re-sent spans replace their documents; a new span has none to replace.
    if resent:
        RetrievedDocument.objects.filter(span_id__in=resent.values()).delete()
    documents = [
        {
            "span_id": rows[key]["id"],
            "start_time": record.start_time,
            "position": d.position,
            "document_id": d.document_id,
            "score": d.score,
            "content": d.content,
            "metadata": d.metadata,
        }
        for key, record in unique.items()
        for d in record.documents
    ]
    rows_insert(RetrievedDocument, DOCUMENT_COLUMNS, documents)

    # Stored traces are updated by id (read under their locks above), not upserted on (project, trace_id): on
    # PostgreSQL that key ends with the start time, which an earlier span arriving late moves (the row then moves
    # to that day's partition).
    rows_update(Trace, TRACE_COLUMNS, [{**trace_rows[t], "id": stored[t].pk} for t in stored])
    for listener in INGEST_LISTENERS:
        listener.spans_stored(project=project, records=list(unique.values()))
    # The rollup buckets of these traces changed, including the one a trace left when an earlier span arrived.
    minutes_mark_dirty(
        project_id=project.pk,
        moments=[*(s.start_time for s in stored.values()), *(s["start_time"] for s in summaries.values())],
    )
    pks = sorted(trace_pk.values())
    # Recorded with the spans, so follow-up work survives a broker outage or a crash right after the commit.
    followups_add(project_id=project.pk, task_names=settings.SRE4AI_TRACE_INGESTED_TASKS, trace_pks=pks)
    return StoreResult(trace_pks=pks, spans=len(unique))


@transaction.atomic
def spans_store(*, project: Project, records: Sequence[SpanRecord]) -> StoreResult:
    """Upsert spans (same trace id + span id → update) and rewrite their traces from all their spans."""
    if not records:
        return StoreResult()
    keys = {(r.trace_id, r.span_id) for r in records}
    return _store(project, records, _lock_and_read(project, keys, log_events=False))


def _pending_events(project: Project, keys: set[tuple[str, str]]) -> dict[tuple[str, str], list[RawEvent]]:
    """Log events received for these spans (SQLite; on PostgreSQL _lock_and_read reads them with the locks)."""
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
def otlp_spans_ingest(
    *, project: Project, spans: Sequence[RawSpan], evaluations: Sequence[EvaluationRecord] = ()
) -> StoreResult:
    """Normalise OTLP spans (with any log events already received for them) and store them; then score the
    evaluation events they carry."""
    if not spans:
        return StoreResult()
    # Locked before the log events are read, so a log batch for these spans waits for this commit and then
    # finds them stored (see otlp_log_events_ingest); the same locks cover the write.
    prefetched = _lock_and_read(project, {(s.trace_id, s.span_id) for s in spans}, log_events=True)
    records: list[SpanRecord] = []
    rejected: list[str] = []
    for span in spans:
        try:
            records.append(normalise_span(span, prefetched.events.get((span.trace_id, span.span_id), ())))
        except NestingTooDeep as exc:
            rejected.append(f"span {span.name[:200]!r}: {nested_json_field(span)}: {exc}")
    result = _store(project, records, prefetched)
    result.rejected = rejected
    evaluations_ingest(project=project, evaluations=evaluations)
    return result


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
    traces_lock(project_id=project.pk, keys={e.trace_id for e in events})
    PendingLogEvent.objects.bulk_create(
        [
            PendingLogEvent(
                project=project,
                trace_id=e.trace_id,
                span_id=e.span_id,
                fingerprint=_fingerprint(e),
                time_unix_nano=e.event.time_unix_nano,
                name=e.event.name[:200],
                # Kept until their span arrives: redacted now, like everything else the project stores.
                body=redact_json(e.event.body) if project.redact_pii else e.event.body,
                attributes=redact_json(e.event.attributes) if project.redact_pii else e.event.attributes,
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


def evaluations_ingest(*, project: Project, evaluations: Sequence[EvaluationRecord]) -> None:
    """The decoded gen_ai.evaluation.result events of a request, handed to the listeners (evals scores them)."""
    if evaluations:
        for listener in INGEST_LISTENERS:
            listener.evaluations_received(project=project, evaluations=evaluations)
