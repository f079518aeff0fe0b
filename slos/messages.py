"""What a notification says: the AlertMessage of a timeline event and of a channel test (a budget alert's is
slos.budgets.budget_alert_message). Pure but for the URLs; the transports turn it into their own format."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.urls import reverse

from slos import burn
from slos.models import Channel, EventKind, IncidentEvent
from slos.transports.base import AlertMessage


def _rate(value: Decimal | None) -> str | None:
    return None if value is None else burn.format_number(value, 2)


def alert_message(event: IncidentEvent) -> AlertMessage:
    """What the transports send for one timeline event (the budget as it was when the event was written)."""
    incident = event.incident
    slo = incident.slo
    remaining = event.budget_remaining
    summaries: dict[str, str] = {
        EventKind.FIRED.value: f"{event.severity} rule firing (burn {_rate(event.long_burn)}× over its long window)",
        EventKind.CLEARED.value: f"{event.severity} rule cleared",
        EventKind.ACKNOWLEDGED.value: "incident acknowledged",
        EventKind.RESOLVED.value: "incident resolved",
    }
    what = summaries.get(event.kind, event.kind)
    return AlertMessage(
        event_id=event.pk,
        kind=event.kind,  # type: ignore[arg-type]
        incident_id=incident.pk,
        incident_url=settings.SRE4AI_BASE_URL + reverse("incident_detail", args=[slo.project.slug, incident.pk]),
        incident_status=event.incident_status,  # type: ignore[arg-type]
        project=slo.project.slug,
        slo_id=slo.pk,
        slo_name=slo.name,
        service=slo.service,
        environment=slo.environment,
        objective=burn.format_percent(slo.objective),
        severity=(event.severity or incident.severity),  # type: ignore[arg-type]
        rule=event.rule,
        burn_rate_long=_rate(event.long_burn),
        burn_rate_short=_rate(event.short_burn),
        budget_remaining=None if remaining is None else burn.format_percent(remaining),
        summary=f"{slo.service} {slo.name}: {what}",
        occurred_at=event.at.astimezone(UTC),
        actor=event.author.username if event.author else "",
        note=event.text,
    )


def channel_test_message(*, channel: Channel, config: Any, requested_by: User | None, now: datetime) -> AlertMessage:
    """What a test sends: a made-up firing page (or ticket) that says it is a test and who asked for it."""
    project = channel.project
    who = requested_by.username if requested_by else "a deleted user"
    return AlertMessage(
        event_id=0,
        kind="fired",
        incident_id=0,
        incident_url=settings.SRE4AI_BASE_URL + reverse("incident_list", args=[project.slug]),
        incident_status="open",
        project=project.slug,
        slo_id=0,
        slo_name="Test notification",
        service="sre4ai",
        environment="",
        objective="99%",
        severity=config.severities[0],
        rule="a test sent from the channel page",
        burn_rate_long=None,
        burn_rate_short=None,
        budget_remaining=None,
        summary=f"Test notification from sre4ai (project {project.slug}) sent by {who}",
        occurred_at=now.astimezone(UTC),
        actor=who,
    )
