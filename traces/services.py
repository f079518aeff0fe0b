"""Writes for traces and spans: the durable half of ingest.

Spans arrive in any order and across requests. Each write upserts its spans, then recomputes the whole
trace row from all of that trace's stored spans, under a per-trace lock, so totals never depend on the
order of arrival. Follow-up work (scoring) is recorded in an outbox in the same transaction and enqueued
only after the commit; what the broker did not take, or a worker that died did not finish, is enqueued again
by beat (traces/followups.py).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import zlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Field, JSONField, Q, TextField
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from django.utils import timezone

from accounts.models import Project
from evals.models import PendingEvaluation, Score, ScoreSource
from evals.services import score_key_app, scores_upsert
from rollups.services import MAX_TOKENS_SUM, minutes_mark_dirty
from traces.exchange import SpanFacts, answer_text, exchange_of
from traces.followups import followups_add
from traces.ingest.normalize import (
    RESPONSE_ID,
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
    rejected: list[str] = field(default_factory=list)  # spans not stored, each with the reason


def _lock_traces(project: Project, trace_ids: Iterable[str]) -> None:
    """Serialise writers of the same trace until commit (PostgreSQL; SQLite writers are serial anyway)."""
    if connection.vendor != "postgresql":
        return
    keys = sorted({zlib.crc32(f"{project.pk}:{t}".encode()) - 2**31 for t in trace_ids})
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) AS k ORDER BY k", [keys])


@dataclass(frozen=True)
class _Column:
    attname: str
    column: str
    is_json: bool
    nullable: bool


def _columns(model: type[Trace] | type[Span] | type[RetrievedDocument], names: Iterable[str]) -> list[_Column]:
    fields = [model._meta.get_field(name) for name in names]
    return [_Column(f.attname, str(f.column), isinstance(f, JSONField), f.null) for f in fields if isinstance(f, Field)]


SPAN_COLUMNS = _columns(Span, ("id", "trace", "span_id", *SPAN_UPDATE_FIELDS))
TRACE_COLUMNS = _columns(Trace, ("id", "project", "trace_id", *TRACE_UPDATE_FIELDS))
DOCUMENT_COLUMNS = _columns(RetrievedDocument, ("span", "position", "document_id", "score", "content", "metadata"))
# The column type rounds costs to 10 places: round them before summing so a trace's cost does not depend on
# whether its spans were summed from this batch or read back from the table.
COST_PLACES = Decimal("1e-10")


# jsonb keeps no formatting, so the compact form; values come from decoded JSON or protobuf, which are trees, so the
# circular-reference check is skipped. Both save ~15% of the encoding; empty values (most spans' events,
# tool arguments, tags) skip the encoder call.
_encode_json = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode


def _json_text(value: Any) -> str:
    if not value and isinstance(value, (list, dict)):
        return "[]" if isinstance(value, list) else "{}"
    return "null" if value is None else _encode_json(value)


def _copy_rows(table: str, columns: list[_Column], rows: Iterable[dict[str, Any]]) -> None:
    """PostgreSQL COPY: rows streamed in psycopg's C code, far cheaper than INSERT parameters built in Python."""
    quote = connection.ops.quote_name
    plain = [c.attname for c in columns if not c.is_json]
    json_columns = [(c.attname, c.nullable) for c in columns if c.is_json]
    order = ", ".join(
        quote(c.column) for c in [*(c for c in columns if not c.is_json), *(c for c in columns if c.is_json)]
    )
    with connection.cursor() as cursor, cursor.cursor.copy(f"COPY {table} ({order}) FROM STDIN") as copy:
        for row in rows:
            values = [row[name] for name in plain]
            for name, nullable in json_columns:
                value = row[name]
                values.append(None if value is None and nullable else _json_text(value))
            copy.write_row(values)


@functools.cache
def _sequence(table: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
        return str(cursor.fetchone()[0])


def _update_spans(rows: list[dict[str, Any]]) -> None:
    """PostgreSQL: re-sent spans, updated in place (same primary key) through a COPY into a temporary table."""
    quote = connection.ops.quote_name
    columns = ", ".join(quote(c.column) for c in SPAN_COLUMNS)
    updates = ", ".join(f"{quote(c.column)} = u.{quote(c.column)}" for c in SPAN_COLUMNS if c.attname != "id")
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS span_update ON COMMIT DELETE ROWS AS "  # noqa: S608 (model columns)
            f"SELECT {columns} FROM {Span._meta.db_table} WITH NO DATA"
        )
        cursor.execute("TRUNCATE span_update")  # an earlier call in the same transaction left its rows
    _copy_rows("span_update", SPAN_COLUMNS, rows)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {Span._meta.db_table} s SET {updates} FROM span_update u WHERE s.id = u.id")  # noqa: S608


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
    span_columns = [quote(c.column) for c in _columns(Span, STORED_FIELDS)]
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
    params += [_sequence(Trace._meta.db_table), len(trace_ids), _sequence(Span._meta.db_table), len(keys)]
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
        span_id=span["span_id"], parent_span_id=span["parent_span_id"], kind=span["kind"],
        start_time=span["start_time"], end_time=span["end_time"], input_text=span["input_preview"].strip(),
        output_text=answer_text(span["output_preview"]),
    )  # fmt: skip


def _capped(cost: Decimal) -> Decimal | None:
    """A sum of absurd reported costs that would overflow the column is unknown, not an error."""
    return cost if cost < MAX_TRACE_COST else None


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
    new rows (nearly all of them) are COPYed on PostgreSQL.
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
    trace_pk = {t: s.pk for t, s in stored.items()}
    postgresql = connection.vendor == "postgresql"
    if postgresql:
        trace_pk.update(zip(new_traces, prefetched.trace_pks, strict=False))
        for key, pk in zip(new_spans, prefetched.span_pks, strict=False):
            rows[key]["id"] = pk
        for trace_id in new_traces:
            trace_rows[trace_id]["id"] = trace_pk[trace_id]
        _copy_rows(Trace._meta.db_table, TRACE_COLUMNS, [trace_rows[t] for t in new_traces])
    else:
        created_traces = Trace.objects.bulk_create([Trace(**trace_rows[t]) for t in new_traces])
        trace_pk.update((t.trace_id, t.pk) for t in created_traces)
    for key, row in rows.items():
        row["trace_id"] = trace_pk[key[0]]
    for key, pk in resent.items():
        rows[key]["id"] = pk
    if postgresql:
        _copy_rows(Span._meta.db_table, SPAN_COLUMNS, [rows[key] for key in new_spans])
        if resent:
            _update_spans([rows[key] for key in resent])
    else:
        created_spans = Span.objects.bulk_create([Span(**rows[key]) for key in new_spans])
        for key, created in zip(new_spans, created_spans, strict=True):
            rows[key]["id"] = created.pk
        Span.objects.bulk_update([Span(**rows[key]) for key in resent], SPAN_UPDATE_FIELDS)

    # Re-sent spans replace their documents; a new span has none to replace.
    if resent:
        RetrievedDocument.objects.filter(span_id__in=resent.values()).delete()
    documents = [
        {
            "span_id": rows[key]["id"],
            "position": d.position,
            "document_id": d.document_id,
            "score": d.score,
            "content": d.content,
            "metadata": d.metadata,
        }
        for key, record in unique.items()
        for d in record.documents
    ]
    if documents and postgresql:
        _copy_rows(RetrievedDocument._meta.db_table, DOCUMENT_COLUMNS, documents)
    elif documents:
        RetrievedDocument.objects.bulk_create([RetrievedDocument(**d) for d in documents])

    if stored:
        Trace.objects.bulk_create(
            [Trace(**trace_rows[t]) for t in stored],
            update_conflicts=True,
            unique_fields=["project", "trace_id"],
            update_fields=TRACE_UPDATE_FIELDS,
        )
    _pending_evaluations_apply(project, unique.values())
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
    evaluation_events_ingest(project=project, evaluations=evaluations)
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


# --- gen_ai.evaluation.result events → scores (source "app") ----------------------------------------------------
# An app's own verdict on a span arrives as a log record (/v1/logs) or as a span event (/v1/traces). The evaluated
# span is the one whose ids the event carries, or, when it carries none, the span whose gen_ai.response.id it names.
# An event whose span is not stored yet waits as a PendingEvaluation and is applied by the ingest that stores it
# (_store), under the same per-trace lock (and a per-response-id lock), so either arrival order gives one score.


def _response_lock_names(response_ids: Iterable[str]) -> list[str]:
    # Taken after the trace locks by every writer, in sorted order: no two writers wait on each other in a cycle.
    return [f"response:{r}" for r in response_ids]


def _spans_evaluated(
    project: Project, evaluations: Sequence[EvaluationRecord]
) -> tuple[dict[tuple[str, str], Span], dict[str, Span]]:
    """The stored spans the evaluations name: by (trace id, span id), and by response id."""
    keys = {(e.trace_id, e.span_id) for e in evaluations if e.span_id}
    response_ids = {e.response_id for e in evaluations if not e.span_id}
    # Only what a score row copies: a span's texts and raw attributes can be large.
    spans = Span.objects.select_related("trace").only(
        "span_id", "trace__project_id", "trace__trace_id", "trace__service", "trace__start_time"
    )
    by_ids: dict[tuple[str, str], Span] = {}
    if keys:
        candidates = spans.filter(
            project=project, trace__trace_id__in={t for t, _ in keys}, span_id__in={s for _, s in keys}
        )
        by_ids = {(s.trace.trace_id, s.span_id): s for s in candidates if (s.trace.trace_id, s.span_id) in keys}
    by_response: dict[str, Span] = {}
    if response_ids:
        response_id: KeyTextTransform | Cast = KeyTextTransform(RESPONSE_ID, "attributes")
        if connection.vendor != "postgresql":  # SQLite would read the ids compared with as JSON ("malformed JSON")
            response_id = Cast(response_id, TextField())
        candidates = (
            spans.annotate(response_id=response_id)
            .filter(project=project, attributes__has_key=RESPONSE_ID, response_id__in=response_ids)
            .order_by("pk")
        )
        for span in candidates:
            by_response.setdefault(span.response_id, span)  # the same id on two spans: the first stored
    return by_ids, by_response


def _app_score(span: Span, evaluation: EvaluationRecord, now: datetime) -> Score:
    trace = span.trace
    return Score(
        project_id=trace.project_id,
        trace=trace,
        span=span,
        key=score_key_app(trace.pk, span.span_id, evaluation.name),
        service=trace.service,
        trace_start=trace.start_time,
        name=evaluation.name,
        value=evaluation.value,
        label=evaluation.label,
        passed=evaluation.passed,
        explanation=evaluation.explanation,
        evidence={"error.type": evaluation.error_type} if evaluation.error_type else {},
        evaluator=evaluation.name,
        source=ScoreSource.APP,
        updated_at=now,
    )


def _evaluations_attach(project: Project, evaluations: Sequence[EvaluationRecord]) -> list[EvaluationRecord]:
    """Score the evaluations whose span is stored; returns the others. The caller holds the locks."""
    by_ids, by_response = _spans_evaluated(project, evaluations)
    now = timezone.now()
    scores: dict[str, Score] = {}
    waiting: list[EvaluationRecord] = []
    for evaluation in evaluations:
        span = by_ids.get((evaluation.trace_id, evaluation.span_id)) if evaluation.span_id else None
        span = span or (by_response.get(evaluation.response_id) if not evaluation.span_id else None)
        if span is None:
            waiting.append(evaluation)
            continue
        score = _app_score(span, evaluation, now)
        scores[score.key] = score  # the same evaluation twice in one batch: the last one wins
    if scores:
        scores_upsert(list(scores.values()))
        minutes_mark_dirty(project_id=project.pk, moments=[s.trace_start for s in scores.values() if s.trace_start])
    return waiting


def evaluation_events_ingest(*, project: Project, evaluations: Sequence[EvaluationRecord]) -> int:
    """Score each evaluation on its span, or keep it until that span arrives. Idempotent: a re-send replaces."""
    if not evaluations:
        return 0  # no transaction (nor savepoint, inside the span ingest's) for the common batch without any
    trace_ids = {e.trace_id for e in evaluations if e.span_id}
    response_ids = {e.response_id for e in evaluations if not e.span_id}
    with transaction.atomic():
        if trace_ids:
            _lock_traces(project, trace_ids)
        if response_ids:
            _lock_traces(project, _response_lock_names(response_ids))
        waiting = _evaluations_attach(project, evaluations)
        if waiting:
            PendingEvaluation.objects.bulk_create(
                [
                    PendingEvaluation(
                        project=project, trace_id=e.trace_id, span_id=e.span_id,
                        response_id="" if e.span_id else e.response_id, name=e.name, value=e.value, label=e.label,
                        explanation=e.explanation, error_type=e.error_type,
                    )
                    for e in waiting
                ],
                update_conflicts=True,
                unique_fields=["project", "trace_id", "span_id", "response_id", "name"],
                update_fields=["value", "label", "explanation", "error_type"],
            )  # fmt: skip
    return len(evaluations)


def _pending_evaluations_apply(project: Project, records: Iterable[SpanRecord]) -> None:
    """Within the span ingest's transaction (trace locks held): score the kept evaluations of the stored spans."""
    keys = {(r.trace_id, r.span_id) for r in records}
    response_ids = {r.attributes[RESPONSE_ID] for r in records if isinstance(r.attributes.get(RESPONSE_ID), str)} - {""}
    if response_ids:
        _lock_traces(project, _response_lock_names(response_ids))
    condition = Q(trace_id__in={t for t, _ in keys})
    if response_ids:
        condition |= Q(trace_id="", response_id__in=response_ids)
    pending = [
        p
        for p in PendingEvaluation.objects.filter(condition, project=project)
        if (p.trace_id, p.span_id) in keys or p.response_id in response_ids
    ]
    if not pending:
        return
    evaluations = [
        EvaluationRecord(p.trace_id, p.span_id, p.response_id, p.name, p.value, p.label, p.explanation, p.error_type)
        for p in pending
    ]
    waiting = {id(e) for e in _evaluations_attach(project, evaluations)}
    applied = [p.pk for p, e in zip(pending, evaluations, strict=True) if id(e) not in waiting]
    PendingEvaluation.objects.filter(pk__in=applied).delete()
