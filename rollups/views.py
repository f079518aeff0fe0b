"""The project overview (one row per service, worst first) and the service page."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from accounts.models import Project
from accounts.selectors import membership_for
from evals.selectors import latest_drift_runs
from rollups.charts import breakdown_rows, service_figures, sparkline
from rollups.selectors import RANGES, Window, environments, overview, service_detail, window_for
from slos.budgets import budget_statuses
from slos.models import SLO
from slos.selectors import slo_status_by_service, slo_summaries


class RangeForm(forms.Form):
    range = forms.ChoiceField(choices=[(k, k) for k in RANGES] + [("custom", "custom")], required=False)
    since = forms.DateTimeField(required=False)
    until = forms.DateTimeField(required=False)
    environment = forms.CharField(required=False, max_length=64)

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if data.get("range") == "custom":
            if not data.get("since") or not data.get("until"):
                raise forms.ValidationError("A custom range needs both 'since' and 'until' (ISO 8601).")
            if data["since"] >= data["until"]:
                raise forms.ValidationError("'since' must be before 'until'.")
        return data

    def window(self) -> Window:
        data = self.cleaned_data if self.is_valid() else {}
        custom = data.get("range") == "custom"
        return window_for(
            range_key=data.get("range") or "24h",
            now=timezone.now(),
            since=data.get("since") if custom else None,
            until=data.get("until") if custom else None,
        )


@dataclass
class Page:
    """What both pages need: the project, the chosen window and environment, and their template context."""

    project: Project
    window: Window
    environment: str
    context: dict[str, object]


def _page(request: HttpRequest, slug: str) -> Page:
    project = membership_for(user=request.user, slug=slug).project
    form = RangeForm(request.GET)
    window = form.window()
    environment = form.cleaned_data.get("environment", "") if form.is_valid() else ""
    params = request.GET.copy()
    params.pop("name", None)
    context: dict[str, object] = {
        "project": project,
        "form": form,
        "window": window,
        "environment": environment,
        "environments": environments(project=project),
        "query": params.urlencode(),
        "range_key": request.GET.get("range", "24h"),
    }
    return Page(project=project, window=window, environment=environment, context=context)


@login_required
def overview_view(request: HttpRequest, slug: str) -> HttpResponse:
    page = _page(request, slug)
    rows = overview(project=page.project, environment=page.environment, window=page.window, now=timezone.now())
    drift = latest_drift_runs(project=page.project)
    for row in rows:
        run = drift.get(row.service)
        row.drift = (run.verdict or run.status).replace("_", " ") if run else "not run"
    slos = slo_status_by_service(project=page.project)
    table = [
        {
            "health": row,
            "signals": [{**s, "points": sparkline(s["spark"])} for s in row.signals],
            "slos": slos.get(row.service),
        }
        for row in rows
    ]
    incidents = sorted(
        (i for status in slos.values() for i in status.incidents), key=lambda i: i.opened_at, reverse=True
    )
    budgets = budget_statuses(project=page.project, now=timezone.now())
    context = {**page.context, "rows": table, "open_incidents": incidents, "budgets": budgets}
    return render(request, "rollups/overview.html", context)


@login_required
def service_view(request: HttpRequest, slug: str) -> HttpResponse:
    service = request.GET.get("name", "")
    page = _page(request, slug)
    detail = service_detail(project=page.project, service=service, environment=page.environment, window=page.window)
    if not detail.series.traffic() and not any(detail.breakdowns.values()):
        recent = window_for(range_key="30d", now=timezone.now())
        if service not in {r.service for r in overview(project=page.project, environment="", window=recent,
                                                       now=timezone.now())}:  # fmt: skip
            raise Http404("No such service in this project.")
    trace_list = reverse("trace_list", args=[slug])
    figures = service_figures(detail, trace_list)
    return render(
        request,
        "rollups/service.html",
        {
            **page.context,
            "detail": detail,
            "figures": figures,
            "breakdowns": {dim: breakdown_rows(detail, dim) for dim in ("model", "release", "prompt", "route")},
            "slos": slo_summaries(
                project=page.project, now=timezone.now(), slos=SLO.objects.filter(project=page.project, service=service)
            ),
            "trace_list": trace_list,
            # Every trace link of the page shows the page's time range (the charts' zoom changes it).
            "range_query": urlencode({"since": page.window.since.isoformat(), "until": page.window.until.isoformat()}),
        },
    )
