"""SLO list, form and page; notification channels. Viewers look, editors define SLOs, admins manage channels
(they hold secrets). The incident and triage pages are in front.views.incidents."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib import messages
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.access import member_required
from accounts.models import Membership, Role
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
from slos.models import SLO, Channel, Comparator, SliKind
from slos.transports import REGISTRY as TRANSPORTS


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)  # every view here is member_required
    return request.user


def rules_from_post(data: QueryDict) -> list[dict[str, Any]]:
    """The rule rows of the form: rule-<n>-<field>, in row order."""
    rows: dict[int, dict[str, Any]] = {}
    for key, value in data.items():
        parts = key.split("-")
        if len(parts) == 3 and parts[0] == "rule" and parts[1].isdigit() and parts[2] in RULE_FIELDS:
            rows.setdefault(int(parts[1]), {})[parts[2]] = value
    return [rows[i] for i in sorted(rows)]


@member_required()
def slo_list(request: HttpRequest, membership: Membership, slug: str) -> HttpResponse:
    summaries = selectors.slo_summaries(project=membership.project, now=timezone.now())
    return render(
        request,
        "slos/list.html",
        {"project": membership.project, "summaries": summaries, "can_edit": membership.allows(Role.EDITOR)},
    )


@member_required(Role.EDITOR, what="define SLOs", writes_only=True)
def slo_form(request: HttpRequest, membership: Membership, slug: str, slo_id: int | None = None) -> HttpResponse:
    project = membership.project
    instance = get_object_or_404(SLO, project=project, pk=slo_id) if slo_id else None
    if request.method == "POST":
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
            initial = {
                f: getattr(instance, f)
                for f in (
                    "name",
                    "service",
                    "environment",
                    "route",
                    "model",
                    "sli_kind",
                    "evaluator",
                    "comparator",
                    "threshold",
                    "window_days",
                    "runbook",
                )
            }
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


@member_required()
def slo_detail(request: HttpRequest, membership: Membership, slug: str, slo_id: int) -> HttpResponse:
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


@member_required(Role.EDITOR, what="delete SLOs", methods=("POST",))
def slo_delete(request: HttpRequest, membership: Membership, slug: str, slo_id: int) -> HttpResponse:
    slo = get_object_or_404(SLO, project=membership.project, pk=slo_id)
    try:
        services.slo_delete(slo=slo, actor=_user(request))
    except services.IncidentStateError as exc:
        messages.error(request, str(exc))
        return redirect("slo_detail", slug, slo.pk)
    messages.success(request, f"SLO “{slo.name}” deleted.")
    return redirect("slo_list", slug)


# --------------------------------------------------------------------------------------------------
# Channels
# --------------------------------------------------------------------------------------------------


@member_required(Role.ADMIN, what="manage notification channels", writes_only=True)
def channel_list(request: HttpRequest, membership: Membership, slug: str) -> HttpResponse:
    project = membership.project
    form = ChannelForm(project=project)
    status = 200
    if request.method == "POST":
        form = ChannelForm(request.POST, project=project)
        if form.is_valid():
            data = form.cleaned_data
            services.channel_save(
                project=project, name=data["name"], kind=data["kind"], config=data["config"], actor=_user(request)
            )
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


@member_required(Role.ADMIN, what="manage notification channels", methods=("POST",))
def channel_delete(request: HttpRequest, membership: Membership, slug: str, channel_id: int) -> HttpResponse:
    channel = get_object_or_404(Channel, project=membership.project, pk=channel_id)
    services.channel_delete(channel=channel, actor=_user(request))
    messages.success(request, f"Channel “{channel.name}” deleted.")
    return redirect(reverse("channel_list", args=[slug]))


@member_required(Role.ADMIN, what="manage notification channels")
def channel_edit(request: HttpRequest, membership: Membership, slug: str, channel_id: int) -> HttpResponse:
    project = membership.project
    channel = get_object_or_404(Channel, project=project, pk=channel_id)
    shown = {k: v for k, v in channel.config.items() if k not in _secret_fields(channel)}
    form = ChannelForm(
        initial={"name": channel.name, "kind": channel.kind, "config": shown}, project=project, instance=channel
    )
    if request.method == "POST":
        form = ChannelForm(request.POST, project=project, instance=channel)
        if form.is_valid():
            data = form.cleaned_data
            services.channel_save(
                project=project,
                name=data["name"],
                kind=data["kind"],
                config=data["config"],
                instance=channel,
                actor=_user(request),
            )
            messages.success(request, f"Channel “{data['name']}” saved.")
            return redirect("channel_list", slug)
    context = {"project": project, "form": form, "channel": channel, "secret_fields": sorted(_secret_fields(channel))}
    return render(request, "slos/channel_edit.html", context, status=400 if form.is_bound else 200)


@member_required(Role.ADMIN, what="manage notification channels", methods=("POST",))
def channel_test_view(request: HttpRequest, membership: Membership, slug: str, channel_id: int) -> HttpResponse:
    channel = get_object_or_404(Channel, project=membership.project, pk=channel_id)
    try:
        services.channel_test(channel=channel, user=_user(request))
    except ValueError as exc:
        messages.error(request, f"Cannot test “{channel.name}”: {exc}")
    else:
        messages.success(request, f"Test queued for “{channel.name}”: its answer shows in the delivery log below.")
    return redirect("channel_list", slug)
