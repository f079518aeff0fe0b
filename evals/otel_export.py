"""Our verdicts over OpenTelemetry: every built-in (evaluator) score sent as a ``gen_ai.evaluation.result`` log
record to an OTLP/HTTP logs endpoint, linked to the evaluated trace and span (trace_id / span_id on the record).

Where to: the project's own collector when an admin set one in Settings (``ScoreExportTarget``: endpoint,
protocol, sealed headers; an empty endpoint turns export off for the project), else the server's default
(``SRE4AI_OTEL_EXPORT_*``), else nowhere. Scoring never waits on the collector: after the scores commit, their ids
are queued in batches to ``evals.tasks.scores_export`` on the ``export`` queue, which posts one request per batch
through the outbound client (so its address checks apply), retries a failed batch with backoff a bounded number of
times, and then drops it. Sent and dropped scores are counted per project (``ScoreExportCounter``, on
``/metrics``). "Send test" in Settings posts an empty logs request the same way, in the background.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx
from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from accounts.models import Project
from accounts.services import audit_record
from accounts.vault import seal, unseal
from evals.models import Score, ScoreExportCounter, ScoreExportTarget, ScoreSource
from sre4ai_web.lib import outbound
from sre4ai_web.lib.outbound import host_of
from sre4ai_web.lib.queue import enqueue_on_commit
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


@dataclass(frozen=True)
class ExportTarget:
    endpoint: str
    protocol: str
    headers: dict[str, str]


def export_target(*, project_id: int) -> ExportTarget | None:
    """Where the project's scores go: its own settings, else the server's default; None: nowhere. Raises
    ExportFailed when the project's headers cannot be decrypted (SECRET_KEY changed without a fallback)."""
    row = ScoreExportTarget.objects.filter(project_id=project_id).first()
    if row is None:
        if not settings.SRE4AI_OTEL_EXPORT_ENDPOINT:
            return None
        return ExportTarget(
            settings.SRE4AI_OTEL_EXPORT_ENDPOINT,
            settings.SRE4AI_OTEL_EXPORT_PROTOCOL,
            dict(settings.SRE4AI_OTEL_EXPORT_HEADERS),
        )
    if not row.endpoint:
        return None
    return ExportTarget(row.endpoint, row.protocol, _headers(row))


def _headers(row: ScoreExportTarget) -> dict[str, str]:
    if not row.headers_sealed:
        return {}
    try:
        headers: dict[str, str] = json.loads(unseal(row.headers_sealed))
    except ValueError:
        raise ExportFailed(
            "the exporter's headers cannot be decrypted (SECRET_KEY changed): an admin must set them again in Settings",
            retryable=False,
        ) from None
    return headers


def projects_exporting(project_ids: set[int]) -> set[int]:
    """Which of these projects export their scores (one query)."""
    own = dict(ScoreExportTarget.objects.filter(project_id__in=project_ids).values_list("project_id", "endpoint"))
    default = bool(settings.SRE4AI_OTEL_EXPORT_ENDPOINT)
    return {pk for pk in project_ids if (bool(own[pk]) if pk in own else default)}


def scores_export_after_commit(scores: Sequence[Score]) -> None:
    """Queue the built-in scores among these for export once the transaction commits (nothing for a project that
    does not export)."""
    by_project: dict[int, list[int]] = {}
    for score in scores:
        if score.source == ScoreSource.EVALUATOR and score.pk is not None:
            by_project.setdefault(score.project_id, []).append(score.pk)
    if not by_project:
        return
    exporting = projects_exporting(set(by_project))
    size = settings.SRE4AI_OTEL_EXPORT_BATCH
    for project_id, pks in by_project.items():
        if project_id in exporting:
            for start in range(0, len(pks), size):
                batch = pks[start : start + size]
                enqueue_on_commit(
                    "evals.tasks.scores_export", project_id, batch, on_error=partial(_not_queued, project_id, batch)
                )


def _not_queued(project_id: int, batch: list[int], exc: Exception) -> None:
    # The scores are committed; an export lost to a broker outage is counted, never an error in scoring.
    logger.error("could not queue the export of %d scores of project %s", len(batch), project_id, exc_info=exc)
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
    """One attempt to send these scores; returns how many were sent (those deleted since are skipped, and none when
    the project no longer exports). Raises ExportFailed, saying whether a later attempt can succeed."""
    target = export_target(project_id=project_id)
    if target is None:
        return 0
    scores = list(
        Score.objects.filter(project_id=project_id, pk__in=score_pks, source=ScoreSource.EVALUATOR)
        .select_related("trace", "span")
        .order_by("pk")
    )
    if not scores:
        return 0
    _post(target, logs_request(scores))
    export_counted(project_id=project_id, sent=len(scores))
    return len(scores)


def _post(target: ExportTarget, request: ExportLogsServiceRequest) -> httpx.Response:
    """POST the logs request to the collector; raises ExportFailed unless it answers 2xx."""
    body, content_type = _encode(request, target.protocol)
    headers = {**target.headers, "Content-Type": content_type}
    with outbound.client() as http:
        try:
            response, _ = outbound.request(
                http,
                "POST",
                target.endpoint,
                deadline=settings.SRE4AI_OTEL_EXPORT_TIMEOUT_SECONDS,
                headers=headers,
                content=body,
                max_bytes=64 * 1024,
            )
        except outbound.OutboundError as exc:
            raise ExportFailed(f"OTLP export to the collector failed: {exc}", retryable=exc.retryable) from None
    if 200 <= response.status_code < 300:
        return response
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


# --- the project's settings (Settings → "Scores to an OpenTelemetry collector") -------------------------------


@transaction.atomic
def export_settings_save(
    *, project: Project, endpoint: str, protocol: str, headers: dict[str, str] | None, user: User
) -> ScoreExportTarget:
    """Set the project's own collector (endpoint "" = export off for the project). ``headers`` None keeps the
    stored ones; {} removes them. Audit-logged with the endpoint's host and the header names, never their values."""
    row = ScoreExportTarget.objects.select_for_update().filter(project=project).first() or ScoreExportTarget(
        project=project
    )
    row.endpoint, row.protocol, row.updated_by = endpoint, protocol, user
    if headers is not None:
        row.headers_sealed = seal(json.dumps(headers)) if headers else ""
        row.header_names = sorted(headers)
    row.save()
    details: dict[str, Any] = {"protocol": protocol, "headers": row.header_names}
    audit_record(
        project=project,
        actor=user,
        action="score_export.set",
        target=host_of(endpoint) if endpoint else "off",
        details=details,
    )
    return row


@transaction.atomic
def export_settings_reset(*, project: Project, user: User) -> None:
    """Back to the server's default (the project's own settings and headers are deleted)."""
    if ScoreExportTarget.objects.filter(project=project).delete()[0]:
        audit_record(project=project, actor=user, action="score_export.reset", target="server default")


def export_test_request(*, project: Project) -> ScoreExportTarget:
    """Queue a test of the project's own collector (the ``export`` worker posts it); raises ValueError when the
    project has no collector of its own to test."""
    row = ScoreExportTarget.objects.filter(project=project).exclude(endpoint="").first()
    if row is None:
        raise ValueError("this project has no collector of its own: set an endpoint first")
    ScoreExportTarget.objects.filter(pk=row.pk).update(
        test_requested_at=timezone.now(), test_finished_at=None, test_ok=None, test_result=""
    )
    enqueue_on_commit("evals.tasks.scores_export_test", project.pk)
    return row


def export_test_run(*, project_id: int) -> None:
    """Post an empty logs request (it stores nothing anywhere) to the project's collector with its headers and
    protocol, and record what came back on the settings row."""
    row = ScoreExportTarget.objects.filter(project_id=project_id).exclude(endpoint="").first()
    if row is None:  # reset or turned off since
        return
    started = timezone.now()
    try:
        target = ExportTarget(row.endpoint, row.protocol, _headers(row))
        response = _post(target, logs_request([]))
    except ExportFailed as exc:
        ok, result = False, str(exc)
    else:
        took = (timezone.now() - started).total_seconds() * 1000
        ok, result = True, f"the collector answered {response.status_code} in {took:.0f} ms"
    ScoreExportTarget.objects.filter(pk=row.pk).update(
        test_finished_at=timezone.now(), test_ok=ok, test_result=f"{host_of(row.endpoint)}: {result}"[:500]
    )
