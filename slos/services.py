"""Every SLO write: definitions, SLI counts, the evaluation tick, incidents, channels and the notification outbox.

The tick (beat, every minute) evaluates each rule of each SLO at the last complete minute from SliMinute
rows; a rule whose state changes writes an IncidentEvent and, in the same transaction, one Delivery per
channel (the outbox), which slos/dispatch.py sends. The reads the tick shares with the pages (window counts, the
SLI series) are in slos/selectors.py; what a notification says is slos/messages.py.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import Q, Sum
from django.db.models.functions import TruncHour
from django.utils import timezone

from accounts.models import Membership, Project
from accounts.services import Actor, audit_record
from evals.selectors import trace_verdicts
from slos import burn
from slos.burn import AlertRule
from slos.models import (
    NOTIFIED_KINDS,
    SLO,
    Channel,
    Delivery,
    EventKind,
    Incident,
    IncidentEvent,
    IncidentStatus,
    RuleState,
    SliHour,
    SliMinute,
)
from slos.policy import policy_rules, rule_key
from slos.selectors import evaluation_minute, slo_budget_remaining, window_counts
from slos.sli import SliDefinition, Verdicts
from slos.transports import REGISTRY, seal_secrets, unseal_secrets
from sre4ai_web.lib.queue import enqueue_on_commit
from sre4ai_web.lib.timebuckets import HOUR, floor_hour, floor_minute
from traces.models import Trace
from traces.selectors import TRACE_ROW_FIELDS, TraceRow

log = logging.getLogger(__name__)
HISTORY_CHUNK = 5000
# Advisory lock class (the two-key form; ingest's single-key locks are another key space) for a project's SLI hours.
SLI_HOURS_LOCK = 5171
SLI_HISTORY_LOCK = 5172  # held by the history rebuild of an SLO
HISTORY_STALE = timedelta(minutes=30)


# --------------------------------------------------------------------------------------------------
# Definitions
# --------------------------------------------------------------------------------------------------


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
    audit_record(
        project=slo.project,
        actor=actor,
        action="slo.create" if instance is None else "slo.update",
        target=f"{slo.name} (#{slo.pk})",
        details={"fields": changed},
    )
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
    if not SLO.objects.filter(project_id=project_id).exists():
        return
    if connection.vendor == "postgresql":
        # Two recomputes of minutes in the same hour must not each sum that hour from a snapshot without the
        # other's minutes: one at a time per project. An advisory lock, not the SLO rows: a history rebuild holds
        # its SLO's row for minutes, and the tick must not queue behind a recompute waiting for it. (SQLite, the
        # embedded default, runs one writer at a time anyway.)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [SLI_HOURS_LOCK, project_id % 2**31])
            # Then the SLO rows, in one order, before any SliMinute row: the inserts' foreign-key checks take these
            # same locks, but only after writing their keys, and a history rebuild (which holds its SLO row while
            # it counts) writing the same (SLO, minute) keys then waited for ours: a deadlock. Taken first, we wait
            # for the rebuild and write after it (its counts are older than ours). KEY SHARE, like the foreign-key
            # check: the tick's NO KEY UPDATE of another SLO does not wait for it.
            rows = f"SELECT id FROM {SLO._meta.db_table} WHERE project_id = %s ORDER BY id"  # noqa: S608 - a table name
            cursor.execute(f"{rows} FOR KEY SHARE", [project_id])
    # Read after the lock: an edit committed while we waited is the definition to count.
    definitions = [SliDefinition.of(slo) for slo in SLO.objects.filter(project_id=project_id)]
    if not definitions:
        return
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
    # NO KEY UPDATE: it still serialises two ticks (and waits for a rebuild or an edit of this SLO), but not for a
    # rollup recompute, which holds KEY SHARE on every SLO of the project while it waits for another's rebuild.
    slo = SLO.objects.select_for_update(of=("self",), no_key=True).select_related("project").filter(pk=slo_id).first()
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
    audit_record(
        project=incident.slo.project,
        actor=user,
        action=f"incident.{action}",
        target=f"#{incident.pk} {incident.slo.name}",
        details=details,
    )


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
        _incident_audit(
            incident, user, "assign", assignee=assignee.username, previous=previous.username if previous else ""
        )
    return event


@transaction.atomic
def incident_note(*, incident_id: int, user: User, text: str, now: datetime | None = None) -> IncidentEvent:
    incident = Incident.objects.select_related("slo").get(pk=incident_id)
    return _event(incident, EventKind.NOTE, now or timezone.now(), author=user, text=text)


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
    audit_record(
        project=project,
        actor=actor,
        action="channel.create" if instance is None else "channel.update",
        target=f"{channel.name} (#{channel.pk})",
        details={"kind": kind},
    )
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
