"""Every SLO write: definitions, SLI counts, the evaluation tick, incidents and the notification outbox.

The tick (beat, every minute) evaluates each rule of each SLO at the last complete minute from SliMinute
rows; a rule whose state changes writes an IncidentEvent and, in the same transaction, one Delivery per
channel (the outbox). The dispatcher claims due deliveries one at a time (a short transaction writes the claim's
end on the row), sends with no transaction open, and records the answer in another short transaction, so two
dispatchers never notify the same change twice, a dispatcher that dies mid-send leaves the row pending for the
next one once its claim lapses, and no write (SQLite has one writer at a time) waits for a slow receiver.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q, Sum
from django.db.models.functions import TruncHour
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership, Project
from accounts.services import Actor, audit_record
from evals.selectors import trace_verdicts
from slos import burn
from slos.budgets import budget_alert_message
from slos.burn import AlertRule
from slos.models import (
    NOTIFIED_KINDS,
    SLO,
    Channel,
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    EventKind,
    Incident,
    IncidentEvent,
    IncidentStatus,
    RuleState,
    SliHour,
    SliMinute,
)
from slos.sli import SliDefinition, Verdicts
from slos.transports import REGISTRY, seal_secrets, unseal_secrets
from slos.transports.base import AlertMessage, DeliveryError
from sre4ai_web.lib.queue import enqueue_on_commit
from sre4ai_web.lib.sql import EpochMinute
from sre4ai_web.lib.timebuckets import HOUR, MINUTE, floor_hour, floor_minute
from traces.models import Trace
from traces.selectors import TRACE_ROW_FIELDS, TraceRow

log = logging.getLogger(__name__)
DAY = 24 * 60  # minutes
HISTORY_CHUNK = 5000
# Advisory lock class (the two-key form; ingest's single-key locks are another key space) for a project's SLI hours.
SLI_HOURS_LOCK = 5171
SLI_HISTORY_LOCK = 5172  # held by the history rebuild of an SLO
RETRY_BASE_SECONDS = 30
# A dispatcher's claim on a delivery lasts its send deadline plus this; one that died mid-send lets it lapse.
CLAIM_MARGIN_SECONDS = 30
RETRY_MAX_SECONDS = 3600
HISTORY_STALE = timedelta(minutes=30)


# --------------------------------------------------------------------------------------------------
# Definitions
# --------------------------------------------------------------------------------------------------


def policy_rules(policy: Sequence[Mapping[str, str]]) -> list[AlertRule]:
    """The stored policy (strings as typed) as AlertRules; it was validated when saved."""
    return [
        AlertRule.parse(r["severity"], r["burn_rate_threshold"], r["long_window"], r["short_window"])  # type: ignore[arg-type]
        for r in policy
    ]


def policy_json(rules: Iterable[AlertRule]) -> list[dict[str, str]]:
    return [
        {
            "severity": rule.severity,
            "burn_rate_threshold": burn.format_number(rule.burn_rate_threshold),
            "long_window": burn.format_window(rule.long_window),
            "short_window": burn.format_window(rule.short_window),
        }
        for rule in rules
    ]


def rule_key(rule: AlertRule) -> str:
    """Stable identity of a rule within its SLO: the same rule keeps its state across policy edits."""
    return (
        f"{rule.severity}:{burn.format_number(rule.burn_rate_threshold)}:"
        f"{burn.format_window(rule.long_window)}:{burn.format_window(rule.short_window)}"
    )


_DEFINITION_FIELDS = (
    "service",
    "environment",
    "route",
    "model",
    "sli_kind",
    "evaluator",
    "comparator",
    "threshold",
    "window_days",
)


@transaction.atomic
def slo_save(
    *,
    project: Project,
    values: Mapping[str, Any],
    channels: Iterable[Channel],
    instance: SLO | None = None,
    actor: Actor = None,
) -> SLO:
    """Create or update an SLO from validated values (forms.SloForm.cleaned values). A change to what counts as
    an event recomputes the SLI history (in the background); rules removed from the policy lose their state."""
    # The stored row, locked: the form's copy may be stale (history_ready_at moves in the background).
    slo = SLO.objects.select_for_update().get(pk=instance.pk) if instance else SLO(project=project)
    redefined = instance is None or any(getattr(slo, f) != values[f] for f in _DEFINITION_FIELDS)
    changed = sorted(f for f, value in values.items() if instance is None or getattr(slo, f) != value)
    for field, value in values.items():
        setattr(slo, field, value)
    if redefined:
        slo.history_ready_at = None
    slo.save()
    slo.channels.set(list(channels))
    audit_record(project=slo.project, actor=actor, action="slo.create" if instance is None else "slo.update",
                 target=f"{slo.name} (#{slo.pk})", details={"fields": changed})  # fmt: skip
    keys = {rule_key(rule) for rule in policy_rules(slo.policy)}
    RuleState.objects.filter(slo=slo).exclude(rule_key__in=keys).delete()
    if redefined:
        enqueue_on_commit("slos.tasks.sli_history", slo.pk)
    return slo


@transaction.atomic
def slo_delete(*, slo: SLO, actor: Actor = None) -> None:
    """Refused while an incident is unresolved: deleting would drop its pending notifications, and PagerDuty
    would keep an alert nobody can resolve from here."""
    open_incident = _open_incident(slo)
    if open_incident is not None:
        raise IncidentStateError(
            f"Incident #{open_incident.pk} of this SLO is still {open_incident.status}: resolve it first, "
            "so that its channels hear the resolution."
        )
    audit_record(project=slo.project, actor=actor, action="slo.delete", target=f"{slo.name} (#{slo.pk})")
    slo.delete()


# --------------------------------------------------------------------------------------------------
# SLI counts per minute
# --------------------------------------------------------------------------------------------------


def _count(
    definitions: Sequence[SliDefinition], traces: Iterable[TraceRow], verdicts: Mapping[int, Verdicts]
) -> dict[tuple[int, datetime], list[int]]:
    counts: dict[tuple[int, datetime], list[int]] = defaultdict(lambda: [0, 0])
    for trace in traces:
        trace_verdicts_ = verdicts.get(trace["pk"], {})
        for definition in definitions:
            good = definition.verdict(trace, trace_verdicts_)
            if good is not None:
                cell = counts[(definition.slo_id, floor_minute(trace["start_time"]))]
                cell[0] += good
                cell[1] += 1
    return counts


def sli_minutes_recompute(
    *,
    project_id: int,
    minutes: Sequence[datetime],
    traces: Sequence[TraceRow],
    verdicts: Mapping[int, Verdicts],
) -> None:
    """Rollup hook: replace the SLI counts of these minutes for every SLO of the project."""
    definitions = [SliDefinition.of(slo) for slo in SLO.objects.filter(project_id=project_id)]
    if not definitions:
        return
    if connection.vendor == "postgresql":
        # Two recomputes of minutes in the same hour must not each sum that hour from a snapshot without the
        # other's minutes: one at a time per project. An advisory lock, not the SLO rows: a history rebuild holds
        # its SLO's row for minutes, and the tick must not queue behind a recompute waiting for it. (SQLite, the
        # embedded default, runs one writer at a time anyway.)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [SLI_HOURS_LOCK, project_id % 2**31])
    counts = _count(definitions, traces, verdicts)
    # The range bounds let PostgreSQL walk the (slo, minute) index instead of scanning for a long IN list.
    SliMinute.objects.filter(
        slo_id__in=[d.slo_id for d in definitions],
        minute__gte=min(minutes),
        minute__lte=max(minutes),
        minute__in=list(minutes),
    ).delete()
    SliMinute.objects.bulk_create(
        [SliMinute(slo_id=slo_id, minute=m, good=g, total=t) for (slo_id, m), (g, t) in counts.items()],
        batch_size=1000,
        # A history rebuild may have written the same minute meanwhile: the newer count (this one) wins.
        update_conflicts=True,
        unique_fields=["slo", "minute"],
        update_fields=["good", "total"],
    )
    sli_hours_refresh(slo_ids=[d.slo_id for d in definitions], hours={floor_hour(m) for m in minutes})


def sli_hours_refresh(*, slo_ids: Sequence[int], hours: Iterable[datetime] | None = None) -> None:
    """Recount the SliHour rows of these SLOs from their SliMinute rows: for the given hours, or all of them."""
    hour_rows = SliHour.objects.filter(slo_id__in=slo_ids)
    minute_rows = SliMinute.objects.filter(slo_id__in=slo_ids)
    if hours is not None:
        wanted = sorted(hours)
        if not wanted:
            return
        hour_rows = hour_rows.filter(hour__in=wanted)
        in_hours = Q()
        for hour in wanted:
            in_hours |= Q(minute__gte=hour, minute__lt=hour + HOUR)
        minute_rows = minute_rows.filter(in_hours)
    hour_rows.delete()
    sums = (
        minute_rows.annotate(h=TruncHour("minute", tzinfo=UTC))
        .values("slo_id", "h")
        .annotate(g=Sum("good"), t=Sum("total"))
        .order_by()
    )
    SliHour.objects.bulk_create(
        [SliHour(slo_id=r["slo_id"], hour=r["h"], good=r["g"], total=r["t"]) for r in sums], batch_size=1000
    )


def sli_history_rebuild(*, slo_id: int, now: datetime | None = None) -> int:
    """Recompute the SLO's counts for its whole window from raw traces and scores. Returns the events counted.

    The SLO row stays locked from the first read to the last write: the rollup hook (its insert checks that row)
    and an edit of the definition wait for it, so neither a score counted meanwhile nor a newer definition is
    overwritten with older counts; a rebuild queued before an edit computes the definition it finds here."""
    now = now or timezone.now()
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # A second copy of the task (Redis hands a rebuild running past its visibility timeout to another
            # worker) must not queue up behind the first one and then redo it all: it leaves at once.
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [SLI_HISTORY_LOCK, slo_id])
                if not cursor.fetchone()[0]:
                    return 0
        slo = SLO.objects.select_for_update().filter(pk=slo_id).first()
        if slo is None:
            return 0
        since = floor_minute(now) - timedelta(days=slo.window_days)
        definition = SliDefinition.of(slo)
        traces = Trace.objects.filter(project_id=slo.project_id, service=slo.service, start_time__gte=since)
        if slo.environment:
            traces = traces.filter(environment=slo.environment)
        counts: dict[tuple[int, datetime], list[int]] = defaultdict(lambda: [0, 0])
        last_pk = 0
        while True:
            chunk = list(traces.filter(pk__gt=last_pk).order_by("pk").values(*TRACE_ROW_FIELDS)[:HISTORY_CHUNK])
            if not chunk:
                break
            last_pk = chunk[-1]["pk"]
            for key, (good, total) in _count([definition], chunk, trace_verdicts([t["pk"] for t in chunk])).items():
                counts[key][0] += good
                counts[key][1] += total
        SliMinute.objects.filter(slo_id=slo_id).delete()
        SliMinute.objects.bulk_create(
            [SliMinute(slo_id=slo_id, minute=m, good=g, total=t) for (_, m), (g, t) in counts.items()],
            batch_size=1000,
        )
        sli_hours_refresh(slo_ids=[slo_id])
        SLO.objects.filter(pk=slo_id).update(history_ready_at=now)
    return sum(total for _, total in counts.values())


def sli_series(*, slo: SLO, start: datetime, end: datetime) -> list[tuple[int, int]]:
    """Dense per-minute (good, total) from minute `start` to minute `end`, both included."""
    series = [(0, 0)] * ((end - start) // MINUTE + 1)
    first = int(start.timestamp()) // 60
    for minute, good, total in SliMinute.objects.filter(slo=slo, minute__gte=start, minute__lte=end).values_list(
        EpochMinute("minute"), "good", "total"
    ):
        series[minute - first] = (good, total)
    return series


def window_counts(*, slos: Sequence[SLO], end: datetime, windows: Iterable[int]) -> dict[tuple[int, int], burn.Counts]:
    """(SLO id, window in minutes) → good/total over that window ending at minute `end` (absent keys had no
    events). Two queries for all of them: the whole hours of every window from SliHour, the minutes of their
    partial first and last hours from SliMinute (a 30-day window: ~720 hour rows and < 120 minute rows)."""
    minutes = sorted(set(windows))
    if not slos or not minutes:
        return {}
    last_hour = floor_hour(end + MINUTE)  # whole hours end here; the minutes from it to `end` are partial
    minute_parts: dict[int, Q] = {}
    hour_parts: dict[int, Q] = {}
    for m in minutes:
        first = end - timedelta(minutes=m) + MINUTE
        first_hour = first if first == floor_hour(first) else floor_hour(first) + HOUR
        if first_hour < last_hour:
            hour_parts[m] = Q(hour__gte=first_hour, hour__lt=last_hour)
            minute_parts[m] = Q(minute__gte=first, minute__lt=first_hour) | Q(minute__gte=last_hour, minute__lte=end)
        else:
            minute_parts[m] = Q(minute__gte=first, minute__lte=end)
    sums: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0])
    for model, parts in ((SliMinute, minute_parts), (SliHour, hour_parts)):
        if not parts:
            continue
        anywhere = Q()
        for part in parts.values():
            anywhere |= part
        rows = (
            model.objects.filter(anywhere, slo__in=slos)
            .values("slo_id")
            .annotate(
                **{f"{kind}{m}": Sum(kind, filter=part) for m, part in parts.items() for kind in ("good", "total")}
            )
        )
        for values in rows:
            row: dict[str, Any] = dict(values)
            for m in parts:
                cell = sums[(row["slo_id"], m)]
                cell[0] += row[f"good{m}"] or 0
                cell[1] += row[f"total{m}"] or 0
    return {key: burn.Counts(good, total) for key, (good, total) in sums.items()}


def evaluation_minute(now: datetime) -> datetime:
    """The minute the tick judges: the last complete one (the current minute is still filling)."""
    return floor_minute(now) - MINUTE


# --------------------------------------------------------------------------------------------------
# Evaluation tick
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TickResult:
    evaluated: int
    changes: int


def slos_evaluate(*, now: datetime | None = None) -> TickResult:
    """Evaluate every SLO whose history is ready (the beat task, every minute)."""
    now = now or timezone.now()
    evaluated = changes = 0
    for slo_id in SLO.objects.filter(history_ready_at__isnull=False).values_list("pk", flat=True):
        try:
            changes += slo_evaluate(slo_id=slo_id, now=now)
        except Exception:  # one broken SLO must not stop the others' alerting
            log.exception("evaluating SLO %s failed", slo_id)
            continue
        evaluated += 1
    _history_requeue(now)
    return TickResult(evaluated, changes)


def _history_requeue(now: datetime) -> None:
    """A history rebuild whose task was lost (its retries used up, a broker flushed) is queued again."""
    stale = SLO.objects.filter(history_ready_at__isnull=True, updated_at__lt=now - HISTORY_STALE)
    ids = list(stale.values_list("pk", flat=True))
    if ids:
        SLO.objects.filter(pk__in=ids).update(updated_at=now)
        for slo_id in ids:
            enqueue_on_commit("slos.tasks.sli_history", slo_id)


@transaction.atomic
def slo_evaluate(*, slo_id: int, now: datetime) -> int:
    """Evaluate one SLO's rules at the last complete minute; write state changes. Returns the changes."""
    # The row lock serialises concurrent ticks: the second one sees the first one's states. Only the SLO's row
    # (`of`): locking the joined project row too made the tick wait for every ingest commit of the project
    # (their foreign-key checks share-lock it) and for a recompute waiting on a history rebuild.
    slo = SLO.objects.select_for_update(of=("self",)).select_related("project").filter(pk=slo_id).first()
    if slo is None or slo.history_ready_at is None:
        return 0
    rules = policy_rules(slo.policy)
    end = evaluation_minute(now)
    # Minutes older than any window are no longer read (per SLO: an index range, not a table scan).
    SliMinute.objects.filter(slo=slo, minute__lt=end - timedelta(days=31)).delete()
    SliHour.objects.filter(slo=slo, hour__lt=end - timedelta(days=31) - HOUR).delete()
    # Every rule window summed in SQL, one query: reading the longest window's minutes into Python cost ~4x more.
    counts = window_counts(
        slos=[slo], end=end, windows=[m for rule in rules for m in (rule.long_minutes, rule.short_minutes)]
    )
    states = {state.rule_key: state for state in RuleState.objects.filter(slo=slo)}
    seen: set[str] = set()
    changes = 0
    for rule in rules:
        key = rule_key(rule)
        if key in seen:
            continue  # the form refuses a repeated rule; an older stored policy may still hold one
        seen.add(key)
        state = states.get(key)
        was_firing = state.firing if state else False
        result = burn.evaluate_rule(
            rule,
            slo.objective,
            counts.get((slo.pk, rule.long_minutes), burn.Counts(0, 0)),
            counts.get((slo.pk, rule.short_minutes), burn.Counts(0, 0)),
            firing=was_firing,
        )
        if state is None:
            state = RuleState(slo=slo, rule_key=key, severity=rule.severity, since=now)
        state.long_burn, state.short_burn, state.evaluated_at = result.long_burn_rate, result.short_burn_rate, now
        if result.firing != was_firing:
            state.firing = result.firing
            state.since = now
            _rule_changed(slo, rule, key, result, now)
            changes += 1
        state.save()
    incident = _open_incident(slo)
    if incident and not RuleState.objects.filter(slo=slo, firing=True).exists():
        _incident_resolve(incident, None, now, "Every alert rule has cleared.")
        changes += 1
    return changes


def _open_incident(slo: SLO) -> Incident | None:
    """The SLO's unresolved incident, locked: a person resolving it at the same moment is seen, not overwritten
    (PostgreSQL re-checks the status after waiting for their lock)."""
    return Incident.objects.select_for_update().filter(slo=slo).exclude(status=IncidentStatus.RESOLVED).first()


def _rule_changed(slo: SLO, rule: AlertRule, key: str, result: burn.RuleEvaluation, now: datetime) -> None:
    incident = _open_incident(slo)
    if result.firing:
        if incident is None:
            incident = Incident.objects.create(
                project=slo.project,
                slo=slo,
                severity=rule.severity,
                opened_at=now,
                budget_at_open=slo_budget_remaining(slo=slo, now=now),
            )
        elif rule.severity == "page" and incident.severity != "page":
            incident.severity = "page"
            incident.save(update_fields=["severity"])
        kind = EventKind.FIRED
    elif incident is None:
        return  # a rule cleared after people resolved its incident: nothing left to tell
    else:
        kind = EventKind.CLEARED
    _event(
        incident,
        kind,
        now,
        rule_key=key,
        severity=rule.severity,
        rule=rule.describe(),
        long_burn=result.long_burn_rate,
        short_burn=result.short_burn_rate,
    )


def slo_budget_remaining(*, slo: SLO, now: datetime) -> Decimal | None:
    window = slo.window_days * DAY
    counts = window_counts(slos=[slo], end=evaluation_minute(now), windows=[window]).get((slo.pk, window))
    return burn.budget_remaining(counts.good, counts.total, slo.objective) if counts else None


# --------------------------------------------------------------------------------------------------
# Incidents
# --------------------------------------------------------------------------------------------------


def _event(incident: Incident, kind: str, now: datetime, **fields: Any) -> IncidentEvent:
    """A timeline entry; a state change also writes one outbox row per channel of the SLO, and the budget left
    at that moment, which every delivery of it reports."""
    notified = kind in NOTIFIED_KINDS
    if notified:
        fields["budget_remaining"] = slo_budget_remaining(slo=incident.slo, now=now)
    event = IncidentEvent.objects.create(
        incident=incident, kind=kind, at=now, incident_status=incident.status, **fields
    )
    if notified:
        channels = list(incident.slo.channels.all())
        Delivery.objects.bulk_create([Delivery(event=event, channel=c, next_attempt_at=now) for c in channels])
        if channels:
            enqueue_on_commit("slos.tasks.dispatch")
    return event


def _incident_audit(incident: Incident, user: User, action: str, **details: Any) -> None:
    """People's incident actions go to the project's audit log too (the timeline is per incident; the log is
    where an admin reviews who changed what across the project)."""
    audit_record(project=incident.slo.project, actor=user, action=f"incident.{action}",
                 target=f"#{incident.pk} {incident.slo.name}", details=details)  # fmt: skip


def _incident_resolve(incident: Incident, user: User | None, now: datetime, text: str) -> None:
    incident.status = IncidentStatus.RESOLVED
    incident.resolved_at = now
    incident.resolved_by = user
    incident.budget_at_resolve = slo_budget_remaining(slo=incident.slo, now=now)
    incident.save(update_fields=["status", "resolved_at", "resolved_by", "budget_at_resolve"])
    _event(incident, EventKind.RESOLVED, now, author=user, severity=incident.severity, text=text)


class IncidentStateError(Exception):
    """An action that the incident's status does not allow (e.g. acknowledging a resolved incident)."""


@transaction.atomic
def incident_acknowledge(*, incident_id: int, user: User, now: datetime | None = None) -> Incident:
    incident = Incident.objects.select_for_update(of=("self",)).select_related("slo").get(pk=incident_id)
    if incident.status != IncidentStatus.OPEN:
        raise IncidentStateError(f"This incident is already {incident.get_status_display().lower()}.")
    now = now or timezone.now()
    incident.status = IncidentStatus.ACKNOWLEDGED
    incident.acknowledged_at, incident.acknowledged_by = now, user
    incident.save(update_fields=["status", "acknowledged_at", "acknowledged_by"])
    _event(incident, EventKind.ACKNOWLEDGED, now, author=user, severity=incident.severity)
    _incident_audit(incident, user, "acknowledge")
    return incident


@transaction.atomic
def incident_resolve(*, incident_id: int, user: User, note: str = "", now: datetime | None = None) -> Incident:
    incident = Incident.objects.select_for_update(of=("self",)).select_related("slo").get(pk=incident_id)
    if incident.status == IncidentStatus.RESOLVED:
        raise IncidentStateError("This incident is already resolved.")
    _incident_resolve(incident, user, now or timezone.now(), note)
    _incident_audit(incident, user, "resolve")
    return incident


class NotAMemberError(ValueError):
    """The person to assign is not a member of the incident's project."""


@transaction.atomic
def incident_assign(
    *, incident_id: int, assignee: User | None, user: User, now: datetime | None = None
) -> IncidentEvent | None:
    """Hand the incident to a project member (None: to nobody). Returns the timeline entry, or None when it was
    already so (nothing changed, nothing recorded). A resolved incident can still be re-assigned: the follow-up
    (post-mortem) has an owner too."""
    incident = Incident.objects.select_for_update(of=("self",)).select_related("slo__project").get(pk=incident_id)
    if assignee is not None and not Membership.objects.filter(project_id=incident.project_id, user=assignee).exists():
        raise NotAMemberError(f"{assignee.username} is not a member of this project: only members can be assigned.")
    previous = incident.assignee
    if previous == assignee:
        return None
    incident.assignee = assignee
    incident.save(update_fields=["assignee"])
    now = now or timezone.now()
    if assignee is None:
        event = _event(incident, EventKind.UNASSIGNED, now, author=user, assignee=previous)
        _incident_audit(incident, user, "unassign", previous=previous.username if previous else "")
    else:
        event = _event(incident, EventKind.ASSIGNED, now, author=user, assignee=assignee)
        _incident_audit(incident, user, "assign", assignee=assignee.username,
                        previous=previous.username if previous else "")  # fmt: skip
    return event


@transaction.atomic
def incident_note(*, incident_id: int, user: User, text: str, now: datetime | None = None) -> IncidentEvent:
    incident = Incident.objects.select_related("slo").get(pk=incident_id)
    return _event(incident, EventKind.NOTE, now or timezone.now(), author=user, text=text)


# --------------------------------------------------------------------------------------------------
# Notification dispatcher
# --------------------------------------------------------------------------------------------------


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


def retry_delay(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min, … capped at an hour: a receiver that is down gets room to come back."""
    return timedelta(seconds=min(RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0), RETRY_MAX_SECONDS))


def deliveries_dispatch(*, limit: int = 100, now: datetime | None = None, seconds: float | None = None) -> int:
    """Send due deliveries one at a time until none is left, ``limit`` are handled, or ``seconds`` have passed
    (no new send starts after). Returns the deliveries handled."""
    handled = 0
    deadline = None if seconds is None else time.monotonic() + seconds
    while handled < limit and (deadline is None or time.monotonic() < deadline) and _dispatch_one(now):
        handled += 1
    return handled


@dataclass
class _Outcome:
    """What one send came to, recorded once the network call is over."""

    sent: bool = False
    skipped: bool = False
    response: str = ""
    elapsed_ms: float = 0.0
    retryable: bool = False


def _dispatch_one(now: datetime | None) -> bool:
    """Claim one due delivery (a short transaction), send it with no transaction open, record what it answered
    (another short transaction). No database lock or SQLite write transaction is held while a receiver takes its
    time, so deleting a channel, or any other write, never waits for a send."""
    moment = now or timezone.now()
    delivery = _delivery_claim(moment)
    if delivery is None:
        return False
    try:
        outcome = _deliver(delivery, moment)
    except Exception as exc:  # a bug in a transport: recorded as a failed attempt, never left blocking the queue
        log.exception("delivery %s failed unexpectedly", delivery.pk)
        outcome = _Outcome(response=f"Unexpected error: {exc!r}"[:500], retryable=True)
    _delivery_record(delivery, outcome, moment)
    return True


def _delivery_claim(moment: datetime) -> Delivery | None:
    """The next due delivery, claimed for the length of one send plus a margin: other dispatchers skip it until
    then. A dispatcher that dies mid-send leaves the claim to lapse, and the delivery is sent by the next one."""
    wall = timezone.now()  # claims run on the clock, whatever moment the caller evaluates
    with transaction.atomic():
        # A channel hears one incident's changes in order: a delivery waits while an earlier one of the same
        # incident to the same channel is still pending (a retried "fired" must not land after its "resolved").
        earlier = Delivery.objects.filter(
            channel=OuterRef("channel"),
            event__incident=OuterRef("event__incident"),
            status=DeliveryStatus.PENDING,
            event_id__lt=OuterRef("event_id"),
        )
        due = (
            Delivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=moment)
            .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=wall))
            .exclude(Exists(earlier))
        )
        if connection.vendor == "postgresql":
            due = due.select_for_update(skip_locked=True, of=("self",))
        delivery = (
            due.select_related(
                "channel__project",
                "event__incident__slo__project",
                "event__author",
                "requested_by",
                "budget_alert__budget__project",
            )
            .order_by("next_attempt_at", "pk")
            .first()
        )
        if delivery is None:
            return None
        delivery.claimed_until = wall + timedelta(seconds=settings.SLO_DELIVERY_TIMEOUT_SECONDS + CLAIM_MARGIN_SECONDS)
        delivery.save(update_fields=["claimed_until"])
    return delivery


def _deliver(delivery: Delivery, now: datetime) -> _Outcome:
    """Build the message and send it; writes nothing."""
    channel = delivery.channel
    transport_class = REGISTRY.get(channel.kind)
    if transport_class is None:
        return _Outcome(response=f"Unknown channel type {channel.kind!r}.")
    transport = transport_class()
    try:
        config = transport.Config.model_validate(unseal_secrets(channel.kind, channel.config))
    except ValueError as exc:
        return _Outcome(response=f"Invalid channel configuration: {exc}")
    if delivery.event is not None:
        message = alert_message(delivery.event)
    elif delivery.budget_alert is not None:
        message = budget_alert_message(delivery.budget_alert)
    else:
        message = channel_test_message(channel=channel, config=config, requested_by=delivery.requested_by, now=now)
    if not transport.wants(config, message):
        return _Outcome(skipped=True)
    started = time.monotonic()
    try:
        response = transport.send(config, message, timeout=settings.SLO_DELIVERY_TIMEOUT_SECONDS)
    except DeliveryError as exc:
        return _Outcome(response=str(exc), elapsed_ms=(time.monotonic() - started) * 1000, retryable=exc.retryable)
    return _Outcome(sent=True, response=response, elapsed_ms=(time.monotonic() - started) * 1000)


@transaction.atomic
def _delivery_record(delivery: Delivery, outcome: _Outcome, now: datetime) -> None:
    """Write what the send came to, if the delivery is still ours: deleted meanwhile (with its channel, SLO or
    incident), or taken over after our claim lapsed, it is left alone."""
    held = Delivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.PENDING, claimed_until=delivery.claimed_until)
    if connection.vendor == "postgresql":
        held = held.select_for_update(of=("self",))  # a delete of the channel waits for this short write
    if not held.exists():
        log.info("delivery %s was deleted or taken over while it was sent; its result is not recorded", delivery.pk)
        return
    delivery.claimed_until = None
    if outcome.skipped:
        delivery.status = DeliveryStatus.SKIPPED
        delivery.save(update_fields=["status", "claimed_until"])
        return
    delivery.attempts += 1
    if outcome.sent:
        delivery.status, delivery.sent_at, delivery.last_error = DeliveryStatus.SENT, now, ""
        delivery.save(update_fields=["attempts", "status", "sent_at", "last_error", "claimed_until"])
        DeliveryAttempt.objects.create(delivery=delivery, at=now, ok=True, response=outcome.response[:500],
                                       duration_ms=outcome.elapsed_ms)  # fmt: skip
        Channel.objects.filter(pk=delivery.channel_id).exclude(failing_since=None).update(failing_since=None,
                                                                                         last_error="")  # fmt: skip
        return
    error = outcome.response
    delivery.last_error = error
    # A test is tried once: the person who asked is looking at the log now, not in five hours.
    is_test = delivery.event_id is None and delivery.budget_alert_id is None
    give_up = not outcome.retryable or is_test or delivery.attempts >= settings.SLO_DELIVERY_MAX_ATTEMPTS
    if give_up:
        delivery.status = DeliveryStatus.FAILED
        Channel.objects.filter(pk=delivery.channel_id).update(failing_since=now, last_error=error)
    else:
        delivery.next_attempt_at = now + retry_delay(delivery.attempts)
    delivery.save(update_fields=["attempts", "last_error", "status", "next_attempt_at", "claimed_until"])
    DeliveryAttempt.objects.create(
        delivery=delivery,
        at=now,
        ok=False,
        retryable=outcome.retryable and not give_up,
        response=error[:500],
        duration_ms=outcome.elapsed_ms,
    )
    log.warning("delivery %s on channel %s failed: %s", delivery.pk, delivery.channel_id, error)


# --------------------------------------------------------------------------------------------------
# Channels
# --------------------------------------------------------------------------------------------------


@transaction.atomic
def channel_save(
    *,
    project: Project,
    name: str,
    kind: str,
    config: Mapping[str, Any],
    instance: Channel | None = None,
    actor: Actor = None,
) -> Channel:
    channel = instance or Channel(project=project)
    channel.name, channel.kind, channel.config = name, kind, seal_secrets(kind, config)
    channel.failing_since, channel.last_error = None, ""
    channel.save()
    # The config holds secrets (token URLs, HMAC keys): the audit names the channel, never the config.
    audit_record(project=project, actor=actor, action="channel.create" if instance is None else "channel.update",
                 target=f"{channel.name} (#{channel.pk})", details={"kind": kind})  # fmt: skip
    return channel


@transaction.atomic
def channel_delete(*, channel: Channel, actor: Actor = None) -> None:
    """Deletes at once, also while a notification on the channel is being sent: the dispatcher holds no lock
    during the send, and drops its result when the delivery is gone."""
    audit_record(
        project=channel.project, actor=actor, action="channel.delete", target=f"{channel.name} (#{channel.pk})"
    )
    channel.delete()


def channel_test(*, channel: Channel, user: User, now: datetime | None = None) -> Delivery:
    """Queue a test message on the channel: the dispatcher (on its own queue) sends it once, and the attempt shows
    in the channel's delivery log like any other. Raises ValueError when the channel's configuration is invalid."""
    REGISTRY[channel.kind].Config.model_validate(unseal_secrets(channel.kind, channel.config))
    delivery = Delivery.objects.create(channel=channel, requested_by=user, next_attempt_at=now or timezone.now())
    enqueue_on_commit("slos.tasks.dispatch")
    return delivery


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
