"""The read API of traces: GET /api/v1/traces (the trace list, filterable by a failing score) and
GET /api/v1/traces/{id} (a trace with its spans and current scores), the API twin of the trace pages."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.access import key_project
from accounts.models import Scope
from evals.models import Score
from evals.selectors import scores_for_trace
from front.forms import TraceFilterForm
from front.selectors import InvalidCursor, trace_page
from sre4ai_web.lib.api_errors import ApiError
from traces.api import TracesIngestEndpoint
from traces.models import RetrievedDocument, Span, Trace
from traces.selectors import trace_detail


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
        fields = [
            "name",
            "value",
            "passed",
            "label",
            "summary",
            "explanation",
            "evaluator",
            "evaluator_version",
            "source",
            "span_id",
            "updated_at",
        ]

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


FILTER_PARAMETERS = [
    OpenApiParameter(name, OpenApiTypes.STR, description=description)
    for name, description in [
        ("service", "Exact service name."),
        ("environment", "Exact environment."),
        ("model", "Traces whose LLM or embedding spans used this model, as the service page's breakdown counts them."),
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


class TracesEndpoint(TracesIngestEndpoint):
    key_scopes = {**TracesIngestEndpoint.key_scopes, "GET": Scope.READ}

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
                project=key_project(request),
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
        trace = trace_detail(project=key_project(request), trace_id=trace_id)
        if trace is None:
            raise ApiError(404, f"No trace {trace_id!r} in this project.")
        return Response(TraceOut(trace).data)
