"""Ingest endpoints: OTLP/HTTP (/v1/traces, /v1/logs) and POST /api/v1/traces (the reads are in front.api).

Entry points only: authenticate, parse, call a service or selector, answer. The 2xx is sent after the
service's transaction has committed, so an acknowledged span is durably stored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.access import request_key
from accounts.authentication import ProjectKeyError, authenticate_project_key
from accounts.models import ApiKey, Scope
from traces.ingest import native, otlp
from traces.ingest.body import json_document, request_body
from traces.ingest.gate import ingest_admit, ingest_guard, rate_charge
from traces.ingest.limits import IngestError, IngestLimits
from traces.models import SpanKind, Status
from traces.services import evaluations_ingest, otlp_log_events_ingest, otlp_spans_ingest, spans_store

logger = logging.getLogger(__name__)


def _otlp_endpoint(handle: Callable[[ApiKey, bytes, str, IngestLimits], HttpResponse]) -> Callable[..., HttpResponse]:
    """Shared OTLP error handling: every failure is an OTLP Status body with a message that says what to fix."""

    @csrf_exempt
    @require_POST
    def view(request: HttpRequest) -> HttpResponse:
        fmt = "json"
        try:
            with ingest_guard():
                fmt = otlp.wire_format(request.headers.get("Content-Type", ""))
                api_key = authenticate_project_key(request, scope=Scope.INGEST)
                limits = IngestLimits.from_settings(api_key.project)
                with ingest_admit(api_key):
                    return handle(api_key, request_body(request, limits), fmt, limits)
        except (IngestError, ProjectKeyError) as exc:
            return _otlp_error(exc.status, exc.message, fmt, getattr(exc, "retry_after", None))

    return view


def _otlp_error(code: int, message: str, fmt: str, retry_after: int | None) -> HttpResponse:
    body, content_type = otlp.status_body(message, fmt)
    response = HttpResponse(body, status=code, content_type=content_type)
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    if code == 401:
        response["WWW-Authenticate"] = 'Bearer realm="sre4ai"'
    return response


def _handle_traces(api_key: ApiKey, body: bytes, fmt: str, limits: IngestLimits) -> HttpResponse:
    decoded = otlp.decode_traces(body, fmt, limits)
    rate_charge(api_key, len(decoded.spans))
    stored = otlp_spans_ingest(project=api_key.project, spans=decoded.spans, evaluations=decoded.evaluations)
    response = otlp.trace_response(decoded.rejected + stored.rejected, decoded.warnings)
    payload, content_type = otlp.encode_response(response, fmt)
    return HttpResponse(payload, content_type=content_type)


def _handle_logs(api_key: ApiKey, body: bytes, fmt: str, limits: IngestLimits) -> HttpResponse:
    decoded = otlp.decode_logs(body, fmt, limits)
    rate_charge(api_key, len(decoded.events) + len(decoded.evaluations))
    otlp_log_events_ingest(project=api_key.project, events=decoded.events)
    evaluations_ingest(project=api_key.project, evaluations=decoded.evaluations)
    payload, content_type = otlp.encode_response(otlp.logs_response(decoded.rejected), fmt)
    return HttpResponse(payload, content_type=content_type)


otlp_traces = _otlp_endpoint(_handle_traces)
otlp_logs = _otlp_endpoint(_handle_logs)


# --- REST API ------------------------------------------------------------------------------------


class NativeSpanIn(serializers.Serializer):
    """Documentation of one span of ``POST /api/v1/traces``; validation is done by the ingest decoder."""

    span_id = serializers.CharField(required=False, help_text="16 hex characters; derived from content if absent.")
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=SpanKind.choices, required=False, default="span")
    start_time = serializers.DateTimeField()
    end_time = serializers.DateTimeField(required=False)
    status = serializers.ChoiceField(choices=Status.choices, required=False)
    status_message = serializers.CharField(required=False)
    model = serializers.CharField(required=False)
    provider = serializers.CharField(required=False)
    input = serializers.JSONField(required=False, help_text="Text, chat messages [{role, content}] or any JSON.")
    output = serializers.JSONField(required=False)
    input_tokens = serializers.IntegerField(required=False, min_value=0)
    output_tokens = serializers.IntegerField(required=False, min_value=0)
    total_tokens = serializers.IntegerField(required=False, min_value=0)
    cost = serializers.DecimalField(
        max_digits=20,
        decimal_places=10,
        required=False,
        help_text="USD. When absent it is computed from tokens and model.",
    )
    prompt_name = serializers.CharField(required=False)
    prompt_version = serializers.CharField(required=False)
    documents = inline_serializer(
        "NativeDocumentIn",
        fields={
            "id": serializers.CharField(required=False),
            "content": serializers.CharField(required=False),
            "score": serializers.FloatField(required=False),
            "metadata": serializers.DictField(required=False),
        },
        many=True,
        required=False,
    )
    tool = inline_serializer(
        "NativeToolIn",
        fields={
            "name": serializers.CharField(),
            "arguments": serializers.JSONField(required=False),
            "result": serializers.JSONField(required=False),
        },
        required=False,
    )
    attributes = serializers.DictField(required=False, help_text="Raw attributes, kept as given.")
    children = serializers.ListField(
        child=serializers.DictField(), required=False, help_text="Nested spans of the same shape."
    )


class NativeTraceIn(serializers.Serializer):
    trace_id = serializers.CharField(required=False, help_text="32 hex characters; derived from content if absent.")
    name = serializers.CharField(required=False)
    service = serializers.CharField()
    environment = serializers.CharField(required=False, default="default")
    release = serializers.CharField(required=False)
    session_id = serializers.CharField(required=False)
    user_id = serializers.CharField(required=False)
    tags = serializers.ListField(child=serializers.CharField(), required=False)
    spans = NativeSpanIn(many=True)


class NativeBatchIn(serializers.Serializer):
    traces = NativeTraceIn(many=True)


class IngestResultOut(serializers.Serializer):
    accepted_traces = serializers.IntegerField()
    accepted_spans = serializers.IntegerField()
    rejected = inline_serializer(
        "RejectedTrace", fields={"index": serializers.IntegerField(), "error": serializers.CharField()}, many=True
    )


class TracesIngestEndpoint(APIView):
    """POST /api/v1/traces; front.api.TracesEndpoint adds the GET (the trace list) at the same URL."""

    key_scopes = {"POST": Scope.INGEST}

    @extend_schema(
        operation_id="traces_ingest",
        summary="Ingest a batch of traces with nested spans",
        request=NativeBatchIn,
        responses={200: IngestResultOut, 400: IngestResultOut, 413: OpenApiTypes.OBJECT},
        description=(
            "Each trace is validated on its own: invalid ones are listed in `rejected` by index, the others are "
            "stored (200). If every trace is invalid the answer is 400. Re-sending the same ids updates, never "
            "duplicates; without ids, ids are derived from the content."
        ),
    )
    def post(self, request: Request) -> Response:
        api_key = request_key(request)
        limits = IngestLimits.from_settings(api_key.project)
        if "application/json" not in request.headers.get("Content-Type", "").lower():
            raise IngestError(415, "Send the batch as Content-Type: application/json.")
        with ingest_guard(), ingest_admit(api_key):
            # Read here rather than by DRF's parser, which sees no chunked body and no Content-Encoding.
            document = json_document(request_body(request._request, limits), limits)
            records, errors, accepted = native.decode_batch(document, limits)
            rate_charge(api_key, len(records))
            result = spans_store(project=api_key.project, records=records)
        body = {"accepted_traces": accepted, "accepted_spans": result.spans, "rejected": errors}
        return Response(body, status=status.HTTP_200_OK if accepted else status.HTTP_400_BAD_REQUEST)
