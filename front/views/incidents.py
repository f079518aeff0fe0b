"""The incident list and the triage page of one incident (what changed, the traces that failed, the timeline,
the channels' deliveries) and its actions. Viewers look, editors acknowledge, assign, resolve and annotate."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.models import User
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone

from accounts.access import member_required
from accounts.models import Membership, Role
from slos import selectors, services
from slos.incident_forms import IncidentAssignForm
from slos.models import SLO, Incident, IncidentStatus
from slos.selectors_triage import events_for
from slos.triage import changes_since_baseline, suspects, tally


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)  # every view here is member_required
    return request.user


@member_required()
def incident_list(request: HttpRequest, membership: Membership, slug: str) -> HttpResponse:
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


@member_required()
def incident_detail(request: HttpRequest, membership: Membership, slug: str, incident_id: int) -> HttpResponse:
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
    # The traces were picked by their start in the window (baseline): their spans and documents start from it on.
    current = tally(
        events_for(
            project_id=project.pk,
            trace_pks=events.bad + events.good,
            bad_pks=set(events.bad),
            since=window.start,
            facts=events.facts,
        )
    )
    baseline = tally(
        events_for(
            project_id=project.pk,
            trace_pks=events.baseline,
            bad_pks=events.baseline_bad,
            since=window.baseline_start,
            facts=events.facts,
        )
    )
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
        "suspects": suspects(current, baseline),
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


@member_required(Role.EDITOR, what="acknowledge, assign, resolve or annotate incidents", methods=("POST",))
def incident_action(request: HttpRequest, membership: Membership, slug: str, incident_id: int) -> HttpResponse:
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
