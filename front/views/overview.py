"""The project overview (one row per service, worst first) and the service page."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.contrib.auth.models import User
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone

from accounts import menus
from accounts.access import member_required
from accounts.models import Membership, Project, Role, Scope
from accounts.services import api_key_issue
from evals.selectors import latest_drift_runs
from rollups.charts import breakdown_rows, service_figures, sparkline
from rollups.selectors import RANGES, Window, anything_counted, environments, overview, service_detail, window_for
from slos.budgets import budget_statuses
from slos.models import SLO
from slos.selectors import slo_status_by_service, slo_summaries
from traces.onboarding import OTLP_HEADERS_VARIABLE, first_trace_snippets, public_base_url
from traces.selectors import latest_trace

# The key made on an empty project's overview travels to the next GET in the session and is popped there: shown
# once, and a reload cannot post again and mint a second one.
FIRST_TRACE_KEY_SESSION = "first_trace_key"


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

    membership: Membership
    project: Project
    window: Window
    environment: str
    context: dict[str, object]


def _page(request: HttpRequest, membership: Membership) -> Page:
    project = membership.project
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
    return Page(membership=membership, project=project, window=window, environment=environment, context=context)


@member_required()
def overview_view(request: HttpRequest, membership: Membership, slug: str) -> HttpResponse:
    page = _page(request, membership)
    # Nothing counted yet, ever: show how to send the first trace. (A project whose traces all expired offers no
    # environment but still has its rollups.)
    if not page.context["environments"] and not anything_counted(project=page.project):
        return _first_trace(request, page)
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


def _first_trace(request: HttpRequest, page: Page) -> HttpResponse:
    new_key = request.session.pop(FIRST_TRACE_KEY_SESSION, None)
    now = timezone.now()
    snippets = first_trace_snippets(
        base_url=public_base_url(request), secret=new_key["secret_key"] if new_key else None, now=now
    )
    context = {
        **page.context,
        "now": now,
        "snippets": snippets,
        "headers_variable": OTLP_HEADERS_VARIABLE,
        "new_key": new_key,
        "can_create_key": page.membership.allows(Role.EDITOR),
        "key_menu": menus.CREATE_API_KEY,
        "latest": latest_trace(project=page.project),
    }
    return render(request, "rollups/first_trace.html", context)


@member_required(methods=("GET",))
def first_trace_status(request: HttpRequest, membership: Membership, slug: str) -> JsonResponse:
    """Polled by the "send your first trace" panel: ``ready`` once the overview has something to show (the same
    test as the overview's), ``trace`` as soon as a trace is stored (counting it follows within seconds)."""
    project = membership.project
    latest = latest_trace(project=project)
    return JsonResponse(
        {
            "ready": anything_counted(project=project),
            "trace": {"service": latest.service, "start_time": latest.start_time.isoformat()} if latest else None,
        }
    )


@member_required(
    Role.EDITOR, what=f"create keys: ask a project admin for one ({menus.CREATE_API_KEY})", methods=("POST",)
)
def first_trace_key(request: HttpRequest, membership: Membership, slug: str) -> HttpResponse:
    """An ingest-only key for the first trace, made by an editor or admin from the empty project's overview."""
    if anything_counted(project=membership.project):
        messages.error(request, f"This project already receives traces: create more keys under {menus.CREATE_API_KEY}.")
        return redirect("overview", slug=slug)
    assert isinstance(request.user, User)  # member_required
    issued = api_key_issue(
        project=membership.project, name="first trace", created_by=request.user, scopes=[Scope.INGEST]
    )
    request.session[FIRST_TRACE_KEY_SESSION] = {
        "public_key": issued.api_key.public_key,
        "secret_key": issued.secret_key,
    }
    return redirect("overview", slug=slug)


@member_required()
def service_view(request: HttpRequest, membership: Membership, slug: str) -> HttpResponse:
    service = request.GET.get("name", "")
    page = _page(request, membership)
    detail = service_detail(project=page.project, service=service, environment=page.environment, window=page.window)
    if not detail.series.traffic() and not any(detail.breakdowns.values()):
        recent = window_for(range_key="30d", now=timezone.now())
        if service not in {
            r.service for r in overview(project=page.project, environment="", window=recent, now=timezone.now())
        }:
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
