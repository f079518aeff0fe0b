"""Scores from apps: ``POST /api/v1/scores`` and Langfuse's ``POST /api/public/scores`` shape."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.access import key_project
from accounts.models import Scope
from evals.models import Score, ScoreSource, score_value_in_range
from evals.services import ExternalScore, score_record
from sre4ai_web.lib.api_errors import ApiError
from sre4ai_web.lib.bounds import SCORE_VALUE_LIMIT
from traces.models import Span, Trace


class ScoreIn(serializers.Serializer):
    id = serializers.CharField(required=False, max_length=200, help_text="Your id: re-sending it updates the score.")
    trace_id = serializers.RegexField(r"^[0-9a-fA-F]{32}$", help_text="32 hex characters.")
    span_id = serializers.RegexField(r"^[0-9a-fA-F]{16}$", required=False, help_text="Score one span instead.")
    name = serializers.CharField(max_length=100, help_text="e.g. user_feedback, helpfulness")
    value = serializers.FloatField(
        required=False,
        allow_null=True,
        min_value=-SCORE_VALUE_LIMIT,
        max_value=SCORE_VALUE_LIMIT,
        help_text=f"A finite number from {-SCORE_VALUE_LIMIT:g} to {SCORE_VALUE_LIMIT:g}.",
    )
    # "label" shadows Serializer.label in the stubs; it is the API's field name.
    label = serializers.CharField(required=False, allow_blank=True, max_length=100)  # type: ignore[assignment]
    passed = serializers.BooleanField(required=False, allow_null=True)
    comment = serializers.CharField(required=False, allow_blank=True, max_length=4000)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("value") is None and not attrs.get("label") and attrs.get("passed") is None:
            raise serializers.ValidationError("Give at least one of value, label or passed.")
        return attrs


class LangfuseScoreIn(serializers.Serializer):
    id = serializers.CharField(required=False, max_length=200)
    traceId = serializers.RegexField(r"^[0-9a-fA-F]{32}$")
    observationId = serializers.RegexField(r"^[0-9a-fA-F]{16}$", required=False, allow_null=True)
    name = serializers.CharField(max_length=100)
    value = serializers.JSONField(help_text="A number, a boolean (0/1 with dataType BOOLEAN) or a category string.")
    dataType = serializers.ChoiceField(choices=["NUMERIC", "CATEGORICAL", "BOOLEAN"], required=False)
    comment = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=4000)

    def validate_value(self, value: Any) -> Any:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not score_value_in_range(value):
            raise serializers.ValidationError(
                f"A numeric value must be finite and from {-SCORE_VALUE_LIMIT:g} to {SCORE_VALUE_LIMIT:g}."
            )
        if isinstance(value, (bool, int, float, str)):
            return value
        raise serializers.ValidationError("value must be a number, a boolean or a string.")


class ScoreOut(serializers.ModelSerializer):
    trace_id = serializers.CharField(source="trace.trace_id")
    span_id = serializers.SerializerMethodField()

    class Meta:
        model = Score
        fields = ["id", "trace_id", "span_id", "name", "value", "label", "passed", "comment", "source", "updated_at"]

    def get_span_id(self, score: Score) -> str | None:
        return score.span.span_id if score.span else None


def _target(request: Request, trace_id: str, span_id: str | None) -> tuple[Trace, Span | None]:
    trace = Trace.objects.filter(project=key_project(request), trace_id=trace_id.lower()).first()
    if trace is None:
        raise ApiError(404, f"No trace {trace_id} in this project (yet): send the score after the trace.")
    span = None
    if span_id:
        span = Span.objects.filter(trace=trace, span_id=span_id.lower()).first()
        if span is None:
            raise ApiError(404, f"Trace {trace_id} has no span {span_id}.")
    return trace, span


class ScoresEndpoint(APIView):
    key_scopes = {"POST": Scope.INGEST}

    @extend_schema(
        operation_id="scores_create",
        summary="Attach a score to a trace or span",
        request=ScoreIn,
        responses={201: ScoreOut, 400: dict, 404: dict},
    )
    def post(self, request: Request) -> Response:
        data = ScoreIn(data=request.data)
        if not data.is_valid():
            raise ApiError(400, "The score is not valid; see details.", details=data.errors)
        fields = data.validated_data
        trace, span = _target(request, fields["trace_id"], fields.get("span_id"))
        score = score_record(
            score=ExternalScore(
                trace=trace,
                span=span,
                name=fields["name"],
                value=fields.get("value"),
                label=fields.get("label", ""),
                passed=fields.get("passed"),
                comment=fields.get("comment", ""),
                external_id=fields.get("id", ""),
            )
        )
        return Response(ScoreOut(score).data, status=201)


class LangfuseScoresEndpoint(APIView):
    key_scopes = {"POST": Scope.INGEST}

    @extend_schema(
        operation_id="langfuse_scores_create",
        summary="Langfuse-compatible score ingestion",
        request=LangfuseScoreIn,
        responses={200: inline_serializer("LangfuseScoreOut", {"id": serializers.CharField()})},
    )
    def post(self, request: Request) -> Response:
        data = LangfuseScoreIn(data=request.data)
        if not data.is_valid():
            raise ApiError(400, "The score is not valid; see details.", details=data.errors)
        fields = data.validated_data
        trace, span = _target(request, fields["traceId"], fields.get("observationId"))
        value, data_type = fields["value"], fields.get("dataType")
        numeric: float | None = None
        label = ""
        passed: bool | None = None
        if isinstance(value, str) or data_type == "CATEGORICAL":
            label = str(value)[:100]
        else:
            numeric = float(value)
            if data_type == "BOOLEAN" or isinstance(value, bool):
                passed = numeric >= 0.5
        score = score_record(
            score=ExternalScore(
                trace=trace,
                span=span,
                name=fields["name"],
                value=numeric,
                label=label,
                passed=passed,
                comment=fields.get("comment") or "",
                external_id=fields.get("id", ""),
                source=ScoreSource.API,
            )
        )
        return Response({"id": fields.get("id") or str(score.pk)})
