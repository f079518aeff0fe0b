"""Ingest and read endpoints: OTLP/HTTP (/v1/traces, /v1/logs) and the REST API (/api/v1/traces).

Entry points only: authenticate, parse, call a service or selector, answer. The 2xx is sent after the
service's transaction has committed, so an acknowledged span is durably stored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import ProjectKeyError, authenticate_project_key
from accounts.models import ApiKey, Project, Scope
from evals.models import Score
from evals.selectors import scores_for_trace
from sre4ai_web.lib.api_errors import ApiError
from traces.forms import TraceFilterForm
from traces.ingest import native, otlp
from traces.ingest.body import json_document, request_body
from traces.ingest.gate import ingest_admit, ingest_guard, rate_charge
from traces.ingest.limits import IngestError, IngestLimits
from traces.models import RetrievedDocument, Span, SpanKind, Status, Trace
from traces.selectors import InvalidCursor, trace_detail, trace_page
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


class DocumentOut(serializers.ModelSerializer):
    id = serializers.CharField(source="document_id")

    class Meta:
        model = RetrievedDocument
        fields = ["position", "id", "score", "content", "metadata"]


class SpanOut(serializers.ModelSerializer):
    documents = DocumentOut(many=True, read_only=True)
    cost = serializers.DecimalField(max_digits=20, decimal_places=10, coerce_to_string=False, allow_null=True)

    class Meta:
        model = Span
        fields = [
            "span_id",
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
            "model_parameters",
            "finish_reason",
            "completion_start_time",
            "documents",
            "attributes",
            "resource",
            "scope",
            "events",
            "source",
        ]


class TraceSummaryOut(serializers.ModelSerializer):
    models = serializers.ListField(source="model_names", child=serializers.CharField())
    cost = serializers.DecimalField(max_digits=20, decimal_places=10, coerce_to_string=False, allow_null=True)

    class Meta:
        model = Trace
        fields = [
            "trace_id",
            "service",
            "environment",
            "name",
            "start_time",
            "duration_ms",
            "status",
            "span_count",
            "error_count",
            "models",
            "total_tokens",
            "cost",
            "has_unpriced",
            "session_id",
            "user_id",
            "release",
            "input_preview",
            "output_preview",
        ]


class TraceScoreOut(serializers.ModelSerializer):
    """A current score of the trace (Score.objects.current): the same ones the trace page shows. ``passed`` is
    true (pass), false (fail) or null (no verdict); ``summary`` says what it means, e.g. '4 LLM calls (limit 5)'."""

    summary = serializers.CharField(read_only=True)
    span_id = serializers.SerializerMethodField()

    class Meta:
        model = Score
        fields = ["name", "value", "passed", "label", "summary", "explanation", "evaluator", "evaluator_version",
                  "source", "span_id", "updated_at"]  # fmt: skip

    def get_span_id(self, score: Any) -> str | None:
        return score.span.span_id if score.span else None


class TraceOut(TraceSummaryOut):
    spans = SpanOut(many=True, read_only=True)
    scores = serializers.SerializerMethodField()

    class Meta(TraceSummaryOut.Meta):
        fields = [
            *TraceSummaryOut.Meta.fields,
            "end_time",
            "input_tokens",
            "output_tokens",
            "tags",
            "root_span_id",
            "spans",
            "scores",
        ]

    @extend_schema_field(TraceScoreOut(many=True))
    def get_scores(self, trace: Trace) -> list[dict[str, Any]]:
        return list(TraceScoreOut(scores_for_trace(trace=trace), many=True).data)


class TracePageOut(serializers.Serializer):
    items = TraceSummaryOut(many=True)
    next_cursor = serializers.CharField(allow_null=True)


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


def _key(request: Request) -> ApiKey:
    api_key = request.auth
    assert isinstance(api_key, ApiKey)  # guaranteed by HasProjectKey
    return api_key


def _project(request: Request) -> Project:
    return _key(request).project


FILTER_PARAMETERS = [
    OpenApiParameter(name, OpenApiTypes.STR, description=description)
    for name, description in [
        ("service", "Exact service name."),
        ("environment", "Exact environment."),
        ("model", "Traces with at least one span of this model."),
        ("status", "ok or error."),
        ("range", "1h, 24h, 7d or 30d before now."),
        ("since", "ISO 8601 start (inclusive)."),
        ("until", "ISO 8601 end (inclusive)."),
        ("q", "Text contained in the trace input or output (case-insensitive)."),
        ("min_duration_ms", "Minimum trace duration in milliseconds."),
        ("min_cost", "Minimum trace cost in USD."),
        ("session_id", "Exact session id."),
        ("user_id", "Exact user id."),
        ("release", "Exact release."),
        ("failing", "Traces whose score of this name failed, e.g. grounding."),
        ("name", "Exact trace name (the route)."),
        ("cursor", "next_cursor of the previous page."),
        ("limit", "Page size, 1-200 (default 50)."),
    ]
]


class TracesEndpoint(APIView):
    key_scopes = {"POST": Scope.INGEST, "GET": Scope.READ}

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
        api_key = _key(request)
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

    @extend_schema(
        operation_id="traces_list",
        summary="List traces, newest first (keyset-paginated)",
        parameters=FILTER_PARAMETERS,
        responses={200: TracePageOut, 400: OpenApiTypes.OBJECT},
    )
    def get(self, request: Request) -> Response:
        form = TraceFilterForm(request.query_params)
        if not form.is_valid():
            raise ApiError(400, "Invalid filters.", details=form.errors.get_json_data())
        try:
            limit = int(request.query_params.get("limit", "50"))
        except ValueError:
            limit = -1
        if not 1 <= limit <= 200:
            raise ApiError(400, "limit must be an integer from 1 to 200.")
        try:
            page = trace_page(
                project=_project(request),
                filters=form.to_filters(),
                cursor=form.cleaned_data["cursor"],
                limit=limit,
                sort=form.to_sort(),
            )
        except InvalidCursor as exc:
            raise ApiError(400, str(exc)) from exc
        return Response(TracePageOut({"items": page.items, "next_cursor": page.next_cursor}).data)


class TraceDetailEndpoint(APIView):
    key_scopes = {"GET": Scope.READ}

    @extend_schema(operation_id="traces_retrieve", summary="A trace with all its spans", responses={200: TraceOut})
    def get(self, request: Request, trace_id: str) -> Response:
        trace = trace_detail(project=_project(request), trace_id=trace_id)
        if trace is None:
            raise ApiError(404, f"No trace {trace_id!r} in this project.")
        return Response(TraceOut(trace).data)
