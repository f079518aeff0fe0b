"""``GET /api/v1/canary``: the canary verdict as JSON for deployment pipelines, authenticated by the project key."""

from __future__ import annotations

from django import forms
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.access import request_key
from accounts.models import Scope
from evals.canary.cohorts import CohortError
from evals.canary.forms import CanaryForm
from sre4ai_web.lib.api_errors import ApiError


class HistogramOut(serializers.Serializer):
    edges = serializers.ListField(child=serializers.FloatField())
    baseline_counts = serializers.ListField(child=serializers.IntegerField())
    canary_counts = serializers.ListField(child=serializers.IntegerField())
    log_scale = serializers.BooleanField()


class SignalOut(serializers.Serializer):
    name = serializers.CharField(help_text="Key to use in `critical`: error, latency, cost, refusal or a score name.")
    # "label" shadows Serializer.label in the stubs; it is the API's field name.
    label = serializers.CharField()  # type: ignore[assignment]
    kind = serializers.ChoiceField(choices=["rate", "numeric"])
    classification = serializers.ChoiceField(choices=["pass", "better", "worse", "insufficient_data"])
    reason = serializers.CharField()
    higher_is_better = serializers.BooleanField()
    critical = serializers.BooleanField()
    n_baseline = serializers.IntegerField()
    n_canary = serializers.IntegerField()
    baseline = serializers.FloatField(allow_null=True, help_text="Rate, or median for a numeric signal.")
    canary = serializers.FloatField(allow_null=True)
    effect = serializers.FloatField(allow_null=True, help_text="Rate difference, or relative median shift.")
    effect_name = serializers.CharField()
    margin = serializers.FloatField()
    test = serializers.CharField(allow_null=True)
    p_value = serializers.FloatField(allow_null=True)
    p_value_adjusted = serializers.FloatField(allow_null=True)
    unit = serializers.CharField()
    baseline_hits = serializers.IntegerField(allow_null=True)
    canary_hits = serializers.IntegerField(allow_null=True)
    baseline_p95 = serializers.FloatField(allow_null=True)
    canary_p95 = serializers.FloatField(allow_null=True)
    histogram = HistogramOut(allow_null=True)


class CohortOut(serializers.Serializer):
    value = serializers.CharField()
    traces = serializers.IntegerField()
    sampled = serializers.BooleanField(help_text="True when only the most recent traces were compared.")
    unpriced_traces = serializers.IntegerField()


class CohortsOut(serializers.Serializer):
    baseline = CohortOut()
    canary = CohortOut()


class CanaryOut(serializers.Serializer):
    verdict = serializers.ChoiceField(choices=["pass", "marginal", "fail"])
    score = serializers.FloatField(allow_null=True, help_text="0-100: share of judged signals that are not worse.")
    reason = serializers.CharField()
    service = serializers.CharField()
    attribute = serializers.CharField()
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    cohorts = CohortsOut()
    counts = serializers.DictField(child=serializers.IntegerField())
    critical_failures = serializers.ListField(child=serializers.CharField())
    config = serializers.DictField()
    signals = SignalOut(many=True)


def _parameter(name: str, field: forms.Field) -> OpenApiParameter:
    kind = OpenApiTypes.STR
    if isinstance(field, forms.FloatField):  # before IntegerField: Django's FloatField subclasses it
        kind = OpenApiTypes.FLOAT
    elif isinstance(field, forms.IntegerField):
        kind = OpenApiTypes.INT
    return OpenApiParameter(name, kind, required=field.required, description=str(field.help_text))


_PARAMETERS = [_parameter(name, field) for name, field in CanaryForm.base_fields.items()]


class CanaryEndpoint(APIView):
    key_scopes = {"GET": Scope.READ}

    @extend_schema(
        operation_id="canary_compare",
        summary="Compare a canary cohort with the baseline and return the verdict",
        parameters=_PARAMETERS,
        responses={200: CanaryOut, 400: OpenApiTypes.OBJECT},
        description=(
            "Computed on request from the project's traces and scores. 200 whatever the verdict: gate on "
            "`verdict` (`fail` blocks). 400 with `error` when the input is invalid, the service unknown or a "
            "cohort empty."
        ),
    )
    def get(self, request: Request) -> Response:
        api_key = request_key(request)
        form = CanaryForm(request.query_params)
        if not form.is_valid():
            raise ApiError(400, "The comparison is not valid; see details.", details=form.errors)
        try:
            report = form.analyse(api_key.project)
        except CohortError as exc:
            raise ApiError(400, str(exc)) from exc
        return Response(report.to_dict())
