"""SLO list, form and page; incidents and their triage page; notification channels. Viewers look, editors
define SLOs and handle incidents, admins manage channels (they hold secrets)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseForbidden, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_POST

from accounts.models import Membership, Role
from accounts.selectors import membership_for
from evals.evaluators.registry import REGISTRY as EVALUATORS
from slos import charts, selectors, services
from slos.forms import (
    RULE_FIELDS,
    SCORE_THRESHOLD,
    ChannelForm,
    SloForm,
    channel_examples,
    default_rule_rows,
    objective_text,
)
from slos.incident_forms import IncidentAssignForm
from slos.models import SLO, Channel, Comparator, Incident, IncidentStatus, SliKind
from slos.selectors_triage import events_for
from slos.transports import REGISTRY as TRANSPORTS
from slos.triage import Event, Suspect, what_changed


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)  # every view here is login_required
    return request.user


def _require(membership: Membership, role: str, what: str) -> HttpResponse | None:
    if membership.allows(role):
        return None
    return HttpResponseForbidden(f"Only {'admins' if role == Role.ADMIN else 'editors and admins'} can {what}.")


def rules_from_post(data: QueryDict) -> list[dict[str, Any]]:
    """The rule rows of the form: rule-<n>-<field>, in row order."""
    rows: dict[int, dict[str, Any]] = {}
    for key, value in data.items():
        parts = key.split("-")
        if len(parts) == 3 and parts[0] == "rule" and parts[1].isdigit() and parts[2] in RULE_FIELDS:
            rows.setdefault(int(parts[1]), {})[parts[2]] = value
    return [rows[i] for i in sorted(rows)]


@login_required
def slo_list(request: HttpRequest, slug: str) -> HttpResponse:
    membership = membership_for(user=request.user, slug=slug)
    summaries = selectors.slo_summaries(project=membership.project, now=timezone.now())
    return render(
        request,
        "slos/list.html",
        {"project": membership.project, "summaries": summaries, "can_edit": membership.allows(Role.EDITOR)},
    )


@login_required
def slo_form(request: HttpRequest, slug: str, slo_id: int | None = None) -> HttpResponse:
    membership = membership_for(user=request.user, slug=slug)
    project = membership.project
    instance = get_object_or_404(SLO, project=project, pk=slo_id) if slo_id else None
    if request.method == "POST":
        if denied := _require(membership, Role.EDITOR, "define SLOs"):
            return denied
        form = SloForm(request.POST, project=project, instance=instance, rules=rules_from_post(request.POST))
        if form.is_valid():
            slo = services.slo_save(
                project=project,
                values=form.model_values(),
                channels=form.cleaned_data["channels"],
                instance=instance,
                actor=_user(request),
            )
            messages.success(request, f"SLO “{slo.name}” saved. Its history is being computed.")
            return redirect("slo_detail", slug, slo.pk)
        rules = form.rules_input
    else:
        initial: dict[str, Any] = {"service": request.GET.get("service", "")}
        rules = []
        if instance is not None:
            initial = {f: getattr(instance, f) for f in ("name", "service", "environment", "route", "model",
                                                          "sli_kind", "evaluator", "comparator", "threshold",
                                                          "window_days", "runbook")}  # fmt: skip
            initial["objective"] = objective_text(instance.objective)
            if instance.sli_kind == SliKind.SCORE and instance.comparator != Comparator.PASS:
                initial["sli_kind"] = SCORE_THRESHOLD
            initial["owner"] = instance.owner.username if instance.owner else ""
            initial["channels"] = list(instance.channels.values_list("name", flat=True))
            initial["policy_mode"] = (
                "default" if instance.policy == default_rule_rows(instance.window_days) else "custom"
            )
            rules = list(instance.policy)
        form = SloForm(initial=initial, project=project, instance=instance)
    rows = rules + [{}] * max(0, 6 - len(rules)) if rules else default_rule_rows(30)
    context = {
        "project": project,
        "form": form,
        "instance": instance,
        "rule_rows": [(i, row, _row_errors(form, i)) for i, row in enumerate(rows)],
        "rules_error": form.rule_errors.get("rules", []),
        "score_names": sorted(set(form.facets["score_names"]) | set(EVALUATORS)),
        "facets": form.facets,
    }
    return render(request, "slos/form.html", context, status=400 if form.is_bound else 200)


def _row_errors(form: SloForm, index: int) -> dict[str, list[str]]:
    return {f: form.rule_errors[f"rules.{index}.{f}"] for f in RULE_FIELDS if f"rules.{index}.{f}" in form.rule_errors}


@login_required
def slo_detail(request: HttpRequest, slug: str, slo_id: int) -> HttpResponse:
    membership = membership_for(user=request.user, slug=slug)
    slo = get_object_or_404(SLO.objects.select_related("owner", "project"), project=membership.project, pk=slo_id)
    now = timezone.now()
    range_key = request.GET.get("range", "1d")
    if range_key not in selectors.RANGES:
        range_key = "1d"
    zoom = _zoom(request, now)
    if zoom is not None:  # a link from an incident: the smallest range that shows it, zoomed to it
        range_key = next((k for k, (span, _, _) in selectors.RANGES.items() if now - zoom[0] <= span), "window")
    detail = selectors.slo_detail(slo=slo, now=now, range_key=range_key)
    backtest = selectors.slo_backtest(slo=slo, now=now) if request.GET.get("backtest") else None
    context = {
        "project": membership.project,
        "slo": slo,
        "detail": detail,
        "summary": detail.summary,
        "figures": charts.slo_figures(detail, slo),
        "backtest": backtest,
        "can_edit": membership.allows(Role.EDITOR),
        "ranges": list(selectors.RANGES),
        "zoom": zoom,
        "traces_query": selectors.failing_traces_query(
            slo=slo,
            since=zoom[0] if zoom else (detail.times[0] if detail.times else None),
            until=zoom[1] if zoom else (detail.times[-1] if detail.times else None),
        )[0],
    }
    return render(request, "slos/detail.html", context)


def _zoom(request: HttpRequest, now: datetime) -> tuple[datetime, datetime] | None:
    """?since=…&until=… (ISO 8601) as a time range to zoom the charts to; None when absent or unreadable (the page
    then shows its usual range rather than an error: the range is only a view)."""
    try:
        since = parse_datetime(request.GET.get("since", ""))
        until = parse_datetime(request.GET.get("until", ""))
    except ValueError:
        return None
    if since is None or until is None or since.tzinfo is None or until.tzinfo is None or since >= until:
        return None
    until = min(until, now)
    return (since, until) if since < until else None


@login_required
@require_POST
def slo_delete(request: HttpRequest, slug: str, slo_id: int) -> HttpResponse:
    membership = membership_for(user=request.user, slug=slug)
    if denied := _require(membership, Role.EDITOR, "delete SLOs"):
        return denied
    slo = get_object_or_404(SLO, project=membership.project, pk=slo_id)
    try:
        services.slo_delete(slo=slo, actor=_user(request))
    except services.IncidentStateError as exc:
        messages.error(request, str(exc))
        return redirect("slo_detail", slug, slo.pk)
    messages.success(request, f"SLO “{slo.name}” deleted.")
    return redirect("slo_list", slug)


# --------------------------------------------------------------------------------------------------
# Incidents
# --------------------------------------------------------------------------------------------------


@login_required
def incident_list(request: HttpRequest, slug: str) -> HttpResponse:
    membership = membership_for(user=request.user, slug=slug)
    project = membership.project
    status = request.GET.get("status", "unresolved")
    assignee = request.GET.get("assignee", "")
    incidents = list(
        selectors.incidents_for(project=project, status=status, assignee=assignee, user=_user(request))[:200]
    )
    members = list(Membership.objects.filter(project=project).select_related("user").order_by("user__username"))
    context = {
        "project": project,
        "rows": selectors.incident_rows(incidents=incidents, now=timezone.now()),
        "status": status,
        "statuses": IncidentStatus,
        "assignee": assignee,
        "members": [m.user.username for m in members],
    }
    return render(request, "slos/incidents.html", context)


@login_required
def incident_detail(request: HttpRequest, slug: str, incident_id: int) -> HttpResponse:
    membership = membership_for(user=request.user, slug=slug)
    incident = selectors.incident_for(project=membership.project, incident_id=incident_id)
    if incident is None:
        raise Http404("No such incident in this project.")
    return _incident_page(request, membership, incident)


def _incident_page(
    request: HttpRequest, membership: Membership, incident: Incident, *, assign_form: IncidentAssignForm | None = None
) -> HttpResponse:
    """The triage page; with a bound ``assign_form`` that failed, shown again with its errors (400)."""
    now = timezone.now()
    window = selectors.incident_window(incident, now)
    events = selectors.incident_events(incident=incident, window=window)
    project = membership.project
    current = events_for(project_id=project.pk, trace_pks=events.bad + events.good, bad_pks=set(events.bad))
    baseline = events_for(project_id=project.pk, trace_pks=events.baseline, bad_pks=events.baseline_bad)
    summary = selectors.slo_summaries(project=project, now=now, slos=SLO.objects.filter(pk=incident.slo_id))
    traces_query, narrowed = selectors.failing_traces_query(slo=incident.slo, since=window.start, until=window.end)
    burn_query = urlencode({"since": window.start.isoformat(), "until": window.end.isoformat()})
    form = assign_form or IncidentAssignForm(
        initial={"assignee": incident.assignee.username if incident.assignee else ""}, project=project
    )
    context = {
        "project": project,
        "incident": incident,
        "slo": incident.slo,
        "summary": summary[0],
        "window": window,
        "events": events,
        "suspects": what_changed(current, baseline),
        "since_before": changes_since_baseline(current, baseline),
        "consumed": selectors.incident_budget_consumed(incident=incident, budget_now=summary[0].budget_remaining),
        "timeline": selectors.incident_timeline(incident),
        "channel_status": selectors.incident_channel_status(
            incident=incident, channels=list(incident.slo.channels.all())
        ),
        "traces_query": traces_query,
        "traces_narrowed": narrowed,
        "burn_query": burn_query,
        "assign_form": form,
        "can_edit": membership.allows(Role.EDITOR),
        "share_url": request.build_absolute_uri(incident_url(project.slug, incident.pk)),
    }
    return render(request, "slos/incident.html", context, status=400 if assign_form is not None else 200)


def incident_url(slug: str, incident_id: int) -> str:
    return reverse("incident_detail", args=[slug, incident_id])


def changes_since_baseline(current: list[Event], baseline: list[Event]) -> list[Suspect]:
    """The same analysis with the day before as the "good" side: values the failing traces have far more often
    than traffic did before the incident (a release rolled out to every trace shows here, not in the other one)."""
    bad = [e for e in current if e.bad]
    before = [Event(bad=False, values=e.values) for e in baseline]
    return what_changed(bad + before, []) if bad and before else []


@login_required
@require_POST
def incident_action(request: HttpRequest, slug: str, incident_id: int) -> HttpResponse:
    membership = membership_for(user=request.user, slug=slug)
    if denied := _require(membership, Role.EDITOR, "acknowledge, assign, resolve or annotate incidents"):
        return denied
    incident = selectors.incident_for(project=membership.project, incident_id=incident_id)
    if incident is None:
        raise Http404("No such incident in this project.")
    action, note = request.POST.get("action", ""), request.POST.get("note", "").strip()
    user = _user(request)
    try:
        if action == "acknowledge":
            services.incident_acknowledge(incident_id=incident.pk, user=user)
            if note:  # written in the box before acknowledging: keep it
                services.incident_note(incident_id=incident.pk, user=user, text=note[:5000])
        elif action == "assign":
            form = IncidentAssignForm(request.POST, project=membership.project)
            if not form.is_valid():
                return _incident_page(request, membership, incident, assign_form=form)
            assignee = form.cleaned_data["assignee"]
            try:
                services.incident_assign(incident_id=incident.pk, assignee=assignee, user=user)
            except services.NotAMemberError as exc:  # left the project since the page was shown
                form.add_error("assignee", str(exc))
                return _incident_page(request, membership, incident, assign_form=form)
        elif action == "resolve":
            services.incident_resolve(incident_id=incident.pk, user=user, note=note[:5000])
        elif action == "note":
            if not note:
                messages.error(request, "Write the note first: it was empty.")
            else:
                services.incident_note(incident_id=incident.pk, user=user, text=note[:5000])
        else:
            return HttpResponse("Unknown action: use acknowledge, assign, resolve or note.", status=400)
    except services.IncidentStateError as exc:
        messages.error(request, str(exc))
    return redirect("incident_detail", slug, incident.pk)


# --------------------------------------------------------------------------------------------------
# Channels
# --------------------------------------------------------------------------------------------------


@login_required
def channel_list(request: HttpRequest, slug: str) -> HttpResponse:
    membership = membership_for(user=request.user, slug=slug)
    project = membership.project
    form = ChannelForm(project=project)
    status = 200
    if request.method == "POST":
        if denied := _require(membership, Role.ADMIN, "manage notification channels"):
            return denied
        form = ChannelForm(request.POST, project=project)
        if form.is_valid():
            data = form.cleaned_data
            services.channel_save(project=project, name=data["name"], kind=data["kind"], config=data["config"],
                                  actor=_user(request))  # fmt: skip
            messages.success(request, f"Channel “{data['name']}” added.")
            return redirect("channel_list", slug)
        status = 400
    channels = list(selectors.channels_for(project=project))
    deliveries = selectors.channel_deliveries(channels=channels, limit=10)
    context = {
        "project": project,
        "form": form,
        "channels": [(c, _shown_config(c, admin=membership.allows(Role.ADMIN)), deliveries[c.pk]) for c in channels],
        "examples": channel_examples(),
        "can_admin": membership.allows(Role.ADMIN),
    }
    return render(request, "slos/channels.html", context, status=status)


def _secret_fields(channel: Channel) -> set[str]:
    transport = TRANSPORTS.get(channel.kind)
    return set(transport.secret_fields) if transport else set(channel.config)


def _shown_config(channel: Channel, *, admin: bool) -> dict[str, Any]:
    """The channel's settings with its secrets masked: they are never shown back. Viewers and editors see only
    the host of a URL (webhook URLs often carry a token in their path or query)."""
    secret = _secret_fields(channel)
    shown: dict[str, Any] = {}
    for key, value in channel.config.items():
        if key in secret and value:
            shown[key] = "••••••"
        elif not admin and isinstance(value, str) and "://" in value:
            shown[key] = value.split("://", 1)[0] + "://" + value.split("://", 1)[1].split("/", 1)[0] + "/…"
        else:
            shown[key] = value
    return shown


@login_required
@require_POST
def channel_delete(request: HttpRequest, slug: str, channel_id: int) -> HttpResponse:
    membership = membership_for(user=request.user, slug=slug)
    if denied := _require(membership, Role.ADMIN, "manage notification channels"):
        return denied
    channel = get_object_or_404(Channel, project=membership.project, pk=channel_id)
    services.channel_delete(channel=channel, actor=_user(request))
    messages.success(request, f"Channel “{channel.name}” deleted.")
    return redirect(reverse("channel_list", args=[slug]))


@login_required
def channel_edit(request: HttpRequest, slug: str, channel_id: int) -> HttpResponse:
    membership = membership_for(user=request.user, slug=slug)
    if denied := _require(membership, Role.ADMIN, "manage notification channels"):
        return denied
    project = membership.project
    channel = get_object_or_404(Channel, project=project, pk=channel_id)
    shown = {k: v for k, v in channel.config.items() if k not in _secret_fields(channel)}
    form = ChannelForm(initial={"name": channel.name, "kind": channel.kind, "config": shown}, project=project,
                       instance=channel)  # fmt: skip
    if request.method == "POST":
        form = ChannelForm(request.POST, project=project, instance=channel)
        if form.is_valid():
            data = form.cleaned_data
            services.channel_save(project=project, name=data["name"], kind=data["kind"], config=data["config"],
                                  instance=channel, actor=_user(request))  # fmt: skip
            messages.success(request, f"Channel “{data['name']}” saved.")
            return redirect("channel_list", slug)
    context = {"project": project, "form": form, "channel": channel, "secret_fields": sorted(_secret_fields(channel))}
    return render(request, "slos/channel_edit.html", context, status=400 if form.is_bound else 200)


@login_required
@require_POST
def channel_test_view(request: HttpRequest, slug: str, channel_id: int) -> HttpResponse:
    membership = membership_for(user=request.user, slug=slug)
    if denied := _require(membership, Role.ADMIN, "manage notification channels"):
        return denied
    channel = get_object_or_404(Channel, project=membership.project, pk=channel_id)
    try:
        services.channel_test(channel=channel, user=_user(request))
    except ValueError as exc:
        messages.error(request, f"Cannot test “{channel.name}”: {exc}")
    else:
        messages.success(request, f"Test queued for “{channel.name}”: its answer shows in the delivery log below.")
    return redirect("channel_list", slug)
