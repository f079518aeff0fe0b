"""Our verdicts over OpenTelemetry: every built-in (evaluator) score sent as a ``gen_ai.evaluation.result`` log
record to an OTLP/HTTP logs endpoint, linked to the evaluated trace and span (trace_id / span_id on the record).

Off unless ``SRE4AI_OTEL_EXPORT_ENDPOINT`` is set. Scoring never waits on the collector: after the scores commit,
their ids are queued in batches to ``evals.tasks.scores_export`` on the ``export`` queue, which posts one request
per batch through the outbound client, retries a failed batch with backoff a bounded number of times, and then
drops it. Sent and dropped scores are counted per project (``ScoreExportCounter``, on ``/metrics``).
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Sequence

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from evals.models import Score, ScoreExportCounter, ScoreSource
from sre4ai_web.lib import outbound
from traces.ingest.normalize import EVALUATION_EVENT, RESPONSE_ID
from traces.ingest.otlp import to_key_values

logger = logging.getLogger(__name__)
# Statuses the OTLP specification calls retryable; any other failure status drops the batch at once.
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
MAX_RETRY_AFTER_SECONDS = 60


class ExportFailed(Exception):
    def __init__(self, message: str, *, retryable: bool, retry_after: int | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


def export_enabled() -> bool:
    return bool(settings.SRE4AI_OTEL_EXPORT_ENDPOINT)


def scores_export_after_commit(scores: Sequence[Score]) -> None:
    """Queue the built-in scores among these for export once the transaction commits (nothing when export is off)."""
    if not export_enabled():
        return
    by_project: dict[int, list[int]] = {}
    for score in scores:
        if score.source == ScoreSource.EVALUATOR and score.pk is not None:
            by_project.setdefault(score.project_id, []).append(score.pk)
    for project_id, pks in by_project.items():
        transaction.on_commit(lambda project_id=project_id, pks=pks: _queue(project_id, pks))  # type: ignore[misc]


def _queue(project_id: int, score_pks: list[int]) -> None:
    from evals.tasks import scores_export  # the task module imports this one

    size = settings.SRE4AI_OTEL_EXPORT_BATCH
    for start in range(0, len(score_pks), size):
        batch = score_pks[start : start + size]
        try:
            scores_export.apply_async((project_id, batch))
        except Exception:
            # The scores are committed; an export lost to a broker outage is counted, never an error in scoring.
            logger.exception("could not queue the export of %d scores of project %s", len(batch), project_id)
            export_counted(project_id=project_id, failed=len(batch))


def _log_record(score: Score) -> LogRecord:
    trace = score.trace
    span_id = score.span.span_id if score.span is not None else trace.root_span_id
    # The verdict as a label the receiver can read (pass / fail); the evaluator's own label rides along.
    label = score.label if score.passed is None else ("pass" if score.passed else "fail")
    attributes = {
        "gen_ai.evaluation.name": score.name,
        "gen_ai.evaluation.score.value": score.value,
        "gen_ai.evaluation.score.label": label or None,
        "gen_ai.evaluation.explanation": score.explanation[:4000] or None,
        RESPONSE_ID: score.span.attributes.get(RESPONSE_ID) if score.span is not None else None,
        "sre4ai.evaluator": score.evaluator,
        "sre4ai.evaluator.version": score.evaluator_version,
        "sre4ai.score.label": score.label if score.label != label else None,
        "service.name": score.service or None,  # the evaluated service (the resource is sre4ai itself)
    }
    nanos = int(score.updated_at.timestamp() * 1e9)
    return LogRecord(
        time_unix_nano=nanos,
        observed_time_unix_nano=nanos,
        event_name=EVALUATION_EVENT,
        trace_id=bytes.fromhex(trace.trace_id),
        span_id=bytes.fromhex(span_id) if span_id else b"",
        attributes=to_key_values(attributes),
    )


def logs_request(scores: Sequence[Score]) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.extend(to_key_values({"service.name": "sre4ai"}))
    scope_logs = resource_logs.scope_logs.add()
    scope_logs.scope.name = "sre4ai.evals"
    scope_logs.log_records.extend(_log_record(score) for score in scores)
    return request


def _encode(request: ExportLogsServiceRequest, protocol: str) -> tuple[bytes, str]:
    if protocol == "http/protobuf":
        return request.SerializeToString(), "application/x-protobuf"
    document = json_format.MessageToDict(request)
    for resource_logs in document.get("resourceLogs", []):
        for scope_logs in resource_logs.get("scopeLogs", []):
            for record in scope_logs.get("logRecords", []):
                for key in ("traceId", "spanId"):  # OTLP/JSON ids are hex, not proto3 JSON's base64
                    if key in record:
                        record[key] = base64.b64decode(record[key]).hex()
    return json.dumps(document).encode(), "application/json"


def scores_send(*, project_id: int, score_pks: Sequence[int]) -> int:
    """One attempt to send these scores; returns how many were sent (those deleted since are skipped).
    Raises ExportFailed, saying whether a later attempt can succeed."""
    scores = list(
        Score.objects.filter(project_id=project_id, pk__in=score_pks, source=ScoreSource.EVALUATOR)
        .select_related("trace", "span")
        .order_by("pk")
    )
    if not scores:
        return 0
    body, content_type = _encode(logs_request(scores), settings.SRE4AI_OTEL_EXPORT_PROTOCOL)
    headers = {**settings.SRE4AI_OTEL_EXPORT_HEADERS, "Content-Type": content_type}
    with outbound.client() as http:
        try:
            response, _ = outbound.request(
                http, "POST", settings.SRE4AI_OTEL_EXPORT_ENDPOINT, deadline=settings.SRE4AI_OTEL_EXPORT_TIMEOUT_SECONDS,
                headers=headers, content=body, max_bytes=64 * 1024,
            )  # fmt: skip
        except outbound.OutboundError as exc:
            raise ExportFailed(f"OTLP export to the collector failed: {exc}", retryable=exc.retryable) from None
    if 200 <= response.status_code < 300:
        export_counted(project_id=project_id, sent=len(scores))
        return len(scores)
    retry_after = response.headers.get("Retry-After", "")
    raise ExportFailed(
        f"the collector answered {response.status_code}",
        retryable=response.status_code in RETRYABLE_STATUSES,
        retry_after=min(int(retry_after), MAX_RETRY_AFTER_SECONDS) if retry_after.isdigit() else None,
    )


def export_counted(*, project_id: int, sent: int = 0, failed: int = 0) -> None:
    """Add to the project's export counters (created on first use)."""
    counters = ScoreExportCounter.objects.filter(project_id=project_id)
    if counters.update(sent=F("sent") + sent, failed=F("failed") + failed):
        return
    try:
        with transaction.atomic():
            ScoreExportCounter.objects.create(project_id=project_id, sent=sent, failed=failed)
    except IntegrityError:  # created meanwhile by another worker
        counters.update(sent=F("sent") + sent, failed=F("failed") + failed)
