"""SLO REST API (validated by the same form as the UI, so the errors are the same) and /metrics for Prometheus."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from celery import current_app
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector, CollectorRegistry
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.access import key_project, request_key
from accounts.authentication import ProjectKeyError, authenticate_project_key
from accounts.models import Project, Scope
from evals.models import ScoreExportCounter
from rollups.selectors import counter_totals
from slos import budgets, burn, policy, selectors, services
from slos.forms import SloForm
from slos.models import SLO
from slos.selectors import DAY
from sre4ai_web.lib.api_errors import ApiError
from sre4ai_web.lib.opsmetrics import beat_runs, queue_depths
from traces.ingest.gate import refusals

SloIn = inline_serializer(
    "SloIn",
    {
        "name": serializers.CharField(),
        "service": serializers.CharField(),
        "environment": serializers.CharField(required=False),
        "route": serializers.CharField(required=False),
        "model": serializers.CharField(required=False),
        "sli_kind": serializers.ChoiceField(choices=["score", "latency", "error", "cost", "safety", "probe"]),
        "evaluator": serializers.CharField(required=False, help_text="Score name, for sli_kind=score."),
        "comparator": serializers.ChoiceField(choices=["pass", ">=", ">", "<=", "<"], required=False),
        "threshold": serializers.DecimalField(
            max_digits=20, decimal_places=10, required=False, help_text="Score threshold, latency in ms, or cost in $."
        ),
        "objective": serializers.CharField(help_text='"99.5%" or "0.995"'),
        "window_days": serializers.ChoiceField(choices=[7, 28, 30]),
        "policy": serializers.JSONField(
            help_text='"default", or a list of {severity, burn_rate_threshold, '
            'long_window, short_window}, e.g. {"severity": "page", '
            '"burn_rate_threshold": "14.4", "long_window": "1h", '
            '"short_window": "5m"}'
        ),
        "runbook": serializers.CharField(required=False, help_text="Markdown."),
        "owner": serializers.CharField(required=False, help_text="Username of a project member."),
        "channels": serializers.ListField(child=serializers.CharField(), required=False, help_text="Channel names."),
    },
)
_ERRORS = OpenApiResponse(
    description='{"error": "The SLO is not valid; see errors.", "errors": {"field": ["what is wrong and how to fix '
    'it"], "rules.0.burn_rate_threshold": ["..."]}}'
)


def slo_json(summary: selectors.SloSummary) -> dict[str, Any]:
    slo = summary.slo
    return {
        "id": slo.pk,
        "name": slo.name,
        "service": slo.service,
        "environment": slo.environment,
        "route": slo.route,
        "model": slo.model,
        "sli_kind": slo.sli_kind,
        "evaluator": slo.evaluator,
        "comparator": slo.comparator,
        "threshold": None if slo.threshold is None else burn.format_number(slo.threshold, 10),
        "objective": burn.format_number(slo.objective, 10),
        "window_days": slo.window_days,
        "policy": slo.policy,
        "runbook": slo.runbook,
        "owner": slo.owner.username if slo.owner else None,
        "channels": sorted(c.name for c in slo.channels.all()),
        "status": summary.status,
        "sli": None if summary.sli is None else float(summary.sli),
        "good": summary.good,
        "total": summary.total,
        "budget_remaining": None if summary.budget_remaining is None else float(summary.budget_remaining),
        "rules": [
            {
                "severity": r.rule.severity,
                "burn_rate_threshold": burn.format_number(r.rule.burn_rate_threshold),
                "long_window": burn.format_window(r.rule.long_window),
                "short_window": burn.format_window(r.rule.short_window),
                "firing": r.firing,
                "long_burn_rate": None if r.long_burn is None else float(r.long_burn),
                "short_burn_rate": None if r.short_burn is None else float(r.short_burn),
            }
            for r in summary.rules
        ],
        "incident_id": summary.incident.pk if summary.incident else None,
    }


_INVALID = "The SLO is not valid; see errors."


def _form(project: Project, body: Any, instance: SLO | None) -> SloForm:
    """The SLO form bound to an API body, validated: raises ApiError with the errors per field."""
    if not isinstance(body, dict):
        raise ApiError(400, _INVALID, field_errors={"body": ["Send a JSON object with the SLO's fields."]})
    data = {k: v for k, v in body.items() if k not in ("policy", "channels")}
    data["channels"] = body.get("channels") or []
    policy = body.get("policy", "default")
    rules: list[dict[str, Any]] = []
    if policy == "default":
        data["policy_mode"] = "default"
    elif isinstance(policy, list) and all(isinstance(r, dict) for r in policy):
        data["policy_mode"], rules = "custom", policy
    else:
        message = 'policy must be "default" or a list of {severity, burn_rate_threshold, long_window, short_window}.'
        raise ApiError(400, _INVALID, field_errors={"policy": [message]})
    for key in ("threshold", "objective", "window_days"):
        if key in data and data[key] is not None:
            data[key] = str(data[key])
    form = SloForm(data, project=project, instance=instance, rules=rules)
    if not form.is_valid():
        errors = {("non_field_errors" if k == "__all__" else k): [str(m) for m in v] for k, v in form.errors.items()}
        raise ApiError(400, _INVALID, field_errors={**errors, **form.rule_errors})
    return form


def _summary(slo: SLO) -> selectors.SloSummary:
    return selectors.slo_summaries(project=slo.project, now=timezone.now(), slos=SLO.objects.filter(pk=slo.pk))[0]


class SlosEndpoint(APIView):
    key_scopes = {"GET": Scope.READ, "POST": Scope.MANAGE}

    @extend_schema(
        operation_id="slos_list", summary="SLOs of the key's project, worst budget first", responses={200: dict}
    )
    def get(self, request: Request) -> Response:
        project = key_project(request)
        summaries = selectors.slo_summaries(project=project, now=timezone.now())
        return Response({"data": [slo_json(s) for s in summaries]})

    @extend_schema(
        operation_id="slos_create",
        summary="Define an SLO",
        request=SloIn,
        responses={201: dict, 400: _ERRORS, 403: dict},
    )
    def post(self, request: Request) -> Response:
        project = key_project(request)
        form = _form(project, request.data, None)
        slo = services.slo_save(
            project=project,
            values=form.model_values(),
            channels=form.cleaned_data["channels"],
            actor=request_key(request),
        )
        return Response(slo_json(_summary(slo)), status=201)


class SloDetailEndpoint(APIView):
    key_scopes = {"GET": Scope.READ, "PUT": Scope.MANAGE, "DELETE": Scope.MANAGE}

    def _slo(self, request: Request, slo_id: int) -> SLO:
        slo = SLO.objects.filter(project=key_project(request), pk=slo_id).select_related("project", "owner").first()
        if slo is None:
            raise ApiError(404, f"No SLO {slo_id} in this project.")
        return slo

    @extend_schema(
        operation_id="slos_read",
        summary="One SLO with its SLI, budget and burn rates",
        responses={200: dict, 404: dict},
    )
    def get(self, request: Request, slo_id: int) -> Response:
        return Response(slo_json(_summary(self._slo(request, slo_id))))

    @extend_schema(
        operation_id="slos_update",
        summary="Replace an SLO's definition",
        request=SloIn,
        responses={200: dict, 400: _ERRORS, 403: dict, 404: dict},
    )
    def put(self, request: Request, slo_id: int) -> Response:
        slo = self._slo(request, slo_id)
        form = _form(slo.project, request.data, slo)
        slo = services.slo_save(
            project=slo.project,
            values=form.model_values(),
            channels=form.cleaned_data["channels"],
            instance=slo,
            actor=request_key(request),
        )
        return Response(slo_json(_summary(slo)))

    @extend_schema(
        operation_id="slos_delete",
        summary="Delete an SLO, its history and incidents",
        responses={204: None, 403: dict, 404: dict, 409: dict},
    )
    def delete(self, request: Request, slo_id: int) -> Response:
        slo = self._slo(request, slo_id)
        try:
            services.slo_delete(slo=slo, actor=request_key(request))
        except services.IncidentStateError as exc:
            raise ApiError(409, str(exc)) from exc
        return Response(status=204)


# --------------------------------------------------------------------------------------------------
# Prometheus
# --------------------------------------------------------------------------------------------------


class ProjectCollector(Collector):
    """One project's SLO and service metrics, computed at scrape time from SliMinute rows and hour rollups."""

    def __init__(self, project: Project) -> None:
        self.project = project

    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        end = selectors.evaluation_minute(now)
        slos = list(SLO.objects.filter(project=self.project).prefetch_related("rule_states"))
        rules = {slo.pk: policy.policy_rules(slo.policy) for slo in slos}
        windows = {
            slo.pk: sorted(
                {m for r in rules[slo.pk] for m in (r.long_minutes, r.short_minutes)} | {slo.window_days * DAY}
            )
            for slo in slos
        }
        counts = selectors.window_counts(slos=slos, end=end, windows=[m for ms in windows.values() for m in ms])
        labels = ["project", "service", "slo", "slo_id"]
        objective = GaugeMetricFamily("sre4ai_slo_objective_ratio", "Share of events that must be good.", labels=labels)
        sli = GaugeMetricFamily(
            "sre4ai_slo_sli_ratio", "Good events / valid events over the window.", labels=[*labels, "window"]
        )
        valid = GaugeMetricFamily("sre4ai_slo_events", "Valid events over the window.", labels=[*labels, "window"])
        rate = GaugeMetricFamily(
            "sre4ai_slo_burn_rate", "Error ratio / (1 - objective) over the window.", labels=[*labels, "window"]
        )
        budget = GaugeMetricFamily(
            "sre4ai_slo_error_budget_remaining_ratio",
            "Share of the SLO window's error budget left (negative when overspent).",
            labels=labels,
        )
        firing = GaugeMetricFamily(
            "sre4ai_slo_alert_firing", "1 while the alert rule fires.", labels=[*labels, "severity", "rule"]
        )
        for slo in slos:
            base = [self.project.slug, slo.service, slo.name, str(slo.pk)]
            objective.add_metric(base, float(slo.objective))
            for minutes in windows[slo.pk]:
                good, total = counts.get((slo.pk, minutes), burn.Counts(0, 0))
                name = [*base, burn.format_window(minutes)]
                valid.add_metric(name, total)
                if total:
                    sli.add_metric(name, good / total)
                    rate.add_metric(name, float(burn.burn_rate(good, total, slo.objective) or 0))
            window = counts.get((slo.pk, slo.window_days * DAY), burn.Counts(0, 0))
            remaining = burn.budget_remaining(window.good, window.total, slo.objective)
            if remaining is not None:
                budget.add_metric(base, float(remaining))
            states = {s.rule_key: s for s in slo.rule_states.all()}
            for rule in rules[slo.pk]:
                key = policy.rule_key(rule)
                firing.add_metric([*base, rule.severity, key], 1.0 if key in states and states[key].firing else 0.0)
        yield from (objective, sli, valid, rate, budget, firing)
        yield from self._services()
        yield from self._score_export()
        yield from self._budgets(now)
        yield from self._operations()

    def _score_export(self) -> Iterator[Metric]:
        """Built-in scores sent to the OpenTelemetry collector, and dropped after the export's retries failed."""
        counter = ScoreExportCounter.objects.filter(project=self.project).first()
        sent = CounterMetricFamily("sre4ai_scores_exported", "Scores sent to the OTLP collector.", labels=["project"])
        failed = CounterMetricFamily(
            "sre4ai_scores_export_failed", "Scores dropped: the OTLP collector did not take them.", labels=["project"]
        )
        sent.add_metric([self.project.slug], counter.sent if counter else 0)
        failed.add_metric([self.project.slug], counter.failed if counter else 0)
        yield from (sent, failed)

    def _budgets(self, now: datetime) -> Iterator[Metric]:
        """Spend per budget and key in the current window as the last evaluation stored it (the most spent keys:
        per-user budgets have many), and when that was."""
        labels = ["project", "budget", "window"]
        spend = GaugeMetricFamily(
            "sre4ai_budget_spend_dollars", "Spend in the budget's current window.", labels=[*labels, "key"]
        )
        expected = GaugeMetricFamily(
            "sre4ai_budget_forecast_dollars", "Spend forecast to the end of the window.", labels=[*labels, "key"]
        )
        limit = GaugeMetricFamily("sre4ai_budget_limit_dollars", "The budget's limit.", labels=labels)
        computed = GaugeMetricFamily(
            "sre4ai_budget_spend_computed_timestamp_seconds",
            "When the spend above was summed (every minute by budgets_evaluate); absent before the first time in the window.",
            labels=labels,
        )
        for status in budgets.budget_statuses(project=self.project, now=now):
            base = [self.project.slug, status.budget.name, status.budget.window]
            limit.add_metric(base, float(status.budget.limit_usd))
            if status.as_of is not None:
                computed.add_metric(base, status.as_of.timestamp())
            for key in status.keys:
                spend.add_metric([*base, key.key], float(key.spend))
                expected.add_metric([*base, key.key], float(key.forecast))
        yield from (spend, expected, limit, computed)

    def _operations(self) -> Iterator[Metric]:
        """When to add a node (docs/operations.md): this project's refused ingest requests, and the whole
        installation's queues and beat tasks (left out when the broker or the shared cache cannot say)."""
        refused = CounterMetricFamily(
            "sre4ai_ingest_refused_requests",
            "Ingest requests of this project answered 429 (back-pressure, rate limits) or 503 (storage unavailable).",
            labels=["project", "status"],
        )
        for status, count in refusals(self.project.pk).items():
            refused.add_metric([self.project.slug, str(status)], count)
        waiting = GaugeMetricFamily(
            "sre4ai_queue_messages", "Messages waiting in a Celery queue (not yet taken by a worker).", labels=["queue"]
        )
        queues = sorted({route["queue"] for route in current_app.conf.task_routes.values()} | {"celery"})
        for queue, depth in queue_depths(queues).items():
            waiting.add_metric([queue], depth)
        took = GaugeMetricFamily(
            "sre4ai_beat_task_duration_seconds", "How long the last run of a beat task took.", labels=["task"]
        )
        finished = GaugeMetricFamily(
            "sre4ai_beat_task_last_run_timestamp_seconds", "When the last run of a beat task ended.", labels=["task"]
        )
        for run in beat_runs():
            took.add_metric([run.task], run.seconds)
            finished.add_metric([run.task], run.finished_at)
        yield from (refused, waiting, took, finished)

    def _services(self) -> Iterator[Metric]:
        labels = ["project", "service", "environment"]
        traces = CounterMetricFamily("sre4ai_traces", "Traces received (by start time).", labels=labels)
        errors = CounterMetricFamily("sre4ai_trace_errors", "Traces with an error.", labels=labels)
        cost = CounterMetricFamily("sre4ai_cost_dollars", "LLM spend in US dollars (priced spans).", labels=labels)
        tokens = CounterMetricFamily("sre4ai_tokens", "LLM tokens.", labels=[*labels, "direction"])
        judged = CounterMetricFamily(
            "sre4ai_safety_judged_traces", "Traces that at least one safety check scored.", labels=labels
        )
        flagged = CounterMetricFamily(
            "sre4ai_safety_flagged_traces", "Traces with a safety flag (a failed safety check).", labels=labels
        )
        scored = CounterMetricFamily(
            "sre4ai_scores_judged", "Traces judged pass or fail by a check (current scores).", labels=[*labels, "name"]
        )
        passed = CounterMetricFamily("sre4ai_scores_passed", "Traces that passed a check.", labels=[*labels, "name"])
        totals, checks = counter_totals(project=self.project)
        for (service, environment), series in sorted(totals.items()):
            base = [self.project.slug, service, environment]
            traces.add_metric(base, series["traces"])
            errors.add_metric(base, series["errors"])
            cost.add_metric(base, float(series["cost"]))
            tokens.add_metric([*base, "input"], series["input_tokens"])
            tokens.add_metric([*base, "output"], series["output_tokens"])
            judged.add_metric(base, series["safety_judged"])
            flagged.add_metric(base, series["safety_flagged"])
        for (service, environment, name), (good, total) in sorted(checks.items()):
            base = [self.project.slug, service, environment, name]
            scored.add_metric(base, total)
            passed.add_metric(base, good)
        yield from (traces, errors, cost, tokens, judged, flagged, scored, passed)


def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus scrape endpoint: `Authorization: Bearer <project secret key>` (bearer_token in scrape_config)."""
    try:
        api_key = authenticate_project_key(request, scope=Scope.READ)
    except ProjectKeyError as exc:
        response = HttpResponse(exc.message + "\n", status=exc.status, content_type="text/plain; charset=utf-8")
        if exc.status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="sre4ai"'
        return response
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ProjectCollector(api_key.project))
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
