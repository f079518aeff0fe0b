"""Reads behind the SLO list and page, the incident list and triage page, and /metrics."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any
from urllib.parse import urlencode

import numpy as np
from django.contrib.auth.models import User
from django.db.models import F, Prefetch, Q, QuerySet, Sum, Window
from django.db.models.functions import Coalesce, RowNumber

from accounts.models import Project
from evals.models import Score
from evals.selectors import trace_verdicts
from slos import burn
from slos.burn import AlertRule
from slos.models import (
    SLO,
    Channel,
    Comparator,
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    EventKind,
    Incident,
    IncidentEvent,
    IncidentStatus,
    RuleState,
    SliHour,
    SliKind,
    SliMinute,
)
from slos.policy import policy_rules, rule_key
from slos.sli import PROBE_SCORE, SliDefinition
from sre4ai_web.lib.sql import AnyOf, EpochMinute
from sre4ai_web.lib.timebuckets import HOUR, MINUTE, floor_hour, floor_minute
from traces.models import Trace
from traces.selectors import SCORE_START_SLACK, TRACE_ROW_FIELDS


@dataclass
class RuleStatus:
    rule: AlertRule
    key: str
    firing: bool
    long_burn: Decimal | None
    short_burn: Decimal | None
    since: datetime | None
    # The SLO's history is still being counted: its rules are neither ok nor firing yet.
    computing: bool = False


@dataclass
class SloSummary:
    slo: SLO
    good: int
    total: int
    rules: list[RuleStatus]
    incident: Incident | None

    @property
    def sli(self) -> Decimal | None:
        return None if not self.total else Decimal(self.good) / Decimal(self.total)

    @property
    def budget_remaining(self) -> Decimal | None:
        return burn.budget_remaining(self.good, self.total, self.slo.objective)

    @property
    def firing(self) -> str:
        return most_severe_firing(self.rules)

    @property
    def status(self) -> str:
        if self.slo.history_ready_at is None:
            return "computing"
        if self.firing:
            return f"firing: {self.firing}"
        if not self.total:
            return "no data"
        remaining = self.budget_remaining
        return "budget exhausted" if remaining is not None and remaining <= 0 else "ok"


def most_severe_firing(rules: Sequence[RuleStatus]) -> str:
    """ "page", "ticket" or "" — the most severe firing rule."""
    severities = {r.rule.severity for r in rules if r.firing}
    return "page" if "page" in severities else "ticket" if severities else ""


def _with_state(slos: QuerySet[SLO]) -> list[tuple[SLO, list[RuleStatus], list[Incident]]]:
    """Each SLO with its rules' states and its open incidents (newest first): 3 queries."""
    open_incidents = Incident.objects.exclude(status=IncidentStatus.RESOLVED).order_by("-opened_at")
    rows = slos.prefetch_related("rule_states", Prefetch("incidents", queryset=open_incidents, to_attr="open"))
    return [(slo, _rules(slo, list(slo.rule_states.all())), slo.open) for slo in rows]


def _rules(slo: SLO, states: Sequence[RuleState]) -> list[RuleStatus]:
    by_key = {s.rule_key: s for s in states}
    rows = []
    for rule in policy_rules(slo.policy):
        key = rule_key(rule)
        state = by_key.get(key)
        rows.append(
            RuleStatus(
                rule=rule,
                key=key,
                firing=bool(state and state.firing),
                long_burn=state.long_burn if state else None,
                short_burn=state.short_burn if state else None,
                since=state.since if state else None,
                computing=slo.history_ready_at is None,
            )
        )
    return rows


def slo_summaries(*, project: Project, now: datetime, slos: QuerySet[SLO] | None = None) -> list[SloSummary]:
    """Every SLO of the project with its SLI and budget over its own window, worst budget first. 3 queries."""
    end = evaluation_minute(now)
    with_state = _with_state(slos if slos is not None else SLO.objects.filter(project=project))
    counts = window_counts(
        slos=[slo for slo, _, _ in with_state], end=end, windows=[slo.window_days * DAY for slo, _, _ in with_state]
    )
    summaries = []
    for slo, rules, open_incidents in with_state:
        window = counts.get((slo.pk, slo.window_days * DAY), burn.Counts(0, 0))
        incident = open_incidents[0] if open_incidents else None
        summaries.append(SloSummary(slo=slo, good=window.good, total=window.total, rules=rules, incident=incident))

    def order(s: SloSummary) -> tuple[int, Decimal, str]:
        remaining = s.budget_remaining
        return (0, remaining, s.slo.name) if remaining is not None else (1, Decimal(0), s.slo.name)

    return sorted(summaries, key=order)


@dataclass
class ServiceSlos:
    """One service's SLOs at a glance, for the overview: how many, the most severe firing rule, open incidents."""

    count: int = 0
    computing: int = 0  # SLOs whose history is still being counted
    firing: str = ""  # "page", "ticket" or ""
    incidents: list[Incident] = field(default_factory=list)


def slo_status_by_service(*, project: Project) -> dict[str, ServiceSlos]:
    """Service → its SLOs' state. Reads rule states and open incidents only, not the SLI minutes: 3 queries
    whatever the SLOs' traffic, so the overview can afford it."""
    by_service: dict[str, ServiceSlos] = {}
    for slo, rules, open_incidents in _with_state(SLO.objects.filter(project=project)):
        status = by_service.setdefault(slo.service, ServiceSlos())
        status.count += 1
        status.computing += slo.history_ready_at is None
        if status.firing != "page":
            status.firing = most_severe_firing(rules) or status.firing
        status.incidents.extend(open_incidents)
    return by_service


# --------------------------------------------------------------------------------------------------
# SLO page
# --------------------------------------------------------------------------------------------------

# Display range → (span, minutes per point, trailing minutes of the SLI line: per-minute SLIs of a quiet service
# are mostly empty or 0/1, so each point shows the SLI of the hour / 6 hours / day before it). Five-minute points
# over a day: one point per pixel or so, and a 5-minute short window is then shown as back-to-back windows.
RANGES = {
    "1d": (timedelta(days=1), 5, 60),
    "7d": (timedelta(days=7), 10, 6 * 60),
    "window": (timedelta(days=30), 30, 24 * 60),
}


@dataclass
class BurnPanel:
    """One rule's burn rates per display bucket: over its long and short windows at the bucket's end, and whether
    the rule fired at any minute of the bucket (so a spike that fired is never lost between two points)."""

    rule: AlertRule
    firing: bool
    times: list[datetime]
    long: list[float | None]
    short: list[float | None]
    fired: list[bool]


@dataclass
class SloDetail:
    summary: SloSummary
    range_key: str
    times: list[datetime]
    sli: list[float | None]  # SLI of each display bucket
    budget: list[float | None]  # budget remaining over the window so far, at the end of each display bucket
    panels: list[BurnPanel]
    incidents: list[Incident]
    alert_events: list[IncidentEvent]
    exhaustion: timedelta | None = None
    exhaustion_basis: str = ""  # the window whose burn rate the exhaustion time assumes, e.g. "1h"


def _rates(good: np.ndarray, total: np.ndarray, minutes: int, budget: float, start: int) -> np.ndarray:
    """``burn.burn_rate_series`` over the prefix sums ``good``/``total`` (leading 0), in numpy: the burn rate over
    `minutes` ending at each minute from minute `start` on, NaN where the window has no events. The window view
    slides 8 windows over 47,000 minutes; in Python that was most of the page's time."""
    ends = np.arange(start + 1, len(total))
    starts = np.maximum(ends - minutes, 0)
    count = total[ends] - total[starts]
    bad = count - (good[ends] - good[starts])
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(count > 0, bad / np.maximum(count, 1) / budget, np.nan)


def _fired(long: np.ndarray, short: np.ndarray, threshold: float) -> np.ndarray:
    """Per shown minute, the rule's state as the evaluator decides it: both windows above the threshold; a minute
    where either window has no events keeps the previous state (not firing before the first shown minute). In
    floats, for the chart: a rate exactly at the threshold may round either way."""
    known = ~np.isnan(long) & ~np.isnan(short)
    above = (long > threshold) & (short > threshold)
    # Carry forward: each minute takes the state of the latest minute at or before it where both were known.
    latest = np.maximum.accumulate(np.where(known, np.arange(1, len(known) + 1), 0))
    return np.concatenate(([False], above))[latest]


def _floats(values: np.ndarray) -> list[float | None]:
    return [None if math.isnan(v) else v for v in values.tolist()]


def slo_detail(*, slo: SLO, now: datetime, range_key: str = "1d") -> SloDetail:
    """Series for the SLO page: per display bucket (5, 10 or 30 minutes) the SLI, the budget remaining since the
    window start, and each rule's long and short burn rates at the bucket's end with whether it fired in the
    bucket."""
    summary = slo_summaries(project=slo.project, now=now, slos=SLO.objects.filter(pk=slo.pk))[0]
    span, step, sli_minutes = RANGES.get(range_key, RANGES["1d"])
    span = min(span, timedelta(days=slo.window_days))
    end = evaluation_minute(now)
    window_start = end - timedelta(days=slo.window_days) + MINUTE
    rules = policy_rules(slo.policy)
    longest = max((r.long_minutes for r in rules), default=1)
    display_start = end - span + MINUTE
    # Data from the window start (budget) or far enough back for the longest rule window (burn rates).
    data_start = min(window_start, display_start - (max(longest, sli_minutes) - 1) * MINUTE)
    series = np.array(sli_series(slo=slo, start=data_start, end=end), dtype=np.int64).reshape(-1, 2)
    good = np.concatenate(([0], np.cumsum(series[:, 0])))
    total = np.concatenate(([0], np.cumsum(series[:, 1])))
    budget_share = float(1 - Fraction(slo.objective))
    offset = (display_start - data_start) // MINUTE
    window_offset = (window_start - data_start) // MINUTE
    minutes = len(series) - offset
    firsts = np.arange(0, minutes, step)
    times = [display_start + MINUTE * (int(i) + step - 1) for i in firsts]
    # Per display bucket, its last minute (as an index into the prefix sums: minute + 1).
    lasts = np.minimum(offset + firsts + step, len(series))
    with np.errstate(divide="ignore", invalid="ignore"):
        trailing_good = good[lasts] - good[np.maximum(lasts - sli_minutes, 0)]
        trailing_total = total[lasts] - total[np.maximum(lasts - sli_minutes, 0)]
        sli = _floats(np.where(trailing_total > 0, trailing_good / np.maximum(trailing_total, 1), np.nan))
        # Budget remaining over the window so far; NaN before the window starts or while it has no events.
        so_far_good = good[lasts] - good[window_offset]
        so_far_total = total[lasts] - total[window_offset]
        remaining = 1 - (so_far_total - so_far_good) / np.maximum(so_far_total, 1) / budget_share
        budget = _floats(np.where((lasts > window_offset) & (so_far_total > 0), remaining, np.nan))
    panels = []
    ends = np.minimum(firsts + step, minutes) - 1
    for status in summary.rules:
        long_rates = _rates(good, total, status.rule.long_minutes, budget_share, offset)
        short_rates = _rates(good, total, status.rule.short_minutes, budget_share, offset)
        fired = _fired(long_rates, short_rates, float(status.rule.burn_rate_threshold))
        panels.append(
            BurnPanel(
                rule=status.rule,
                firing=status.firing,
                times=times,
                long=_floats(long_rates[ends]),
                short=_floats(short_rates[ends]),
                fired=np.logical_or.reduceat(fired, firsts).tolist(),
            )
        )
    incidents = list(Incident.objects.filter(slo=slo).order_by("-opened_at")[:20])
    events = list(
        IncidentEvent.objects.filter(incident__slo=slo, kind__in=[EventKind.FIRED, EventKind.CLEARED])
        .select_related("incident")
        .order_by("-at", "-id")[:50]
    )
    page_rule = next((r for r in summary.rules if r.rule.severity == "page"), None)
    exhaustion = None
    if summary.budget_remaining is not None and page_rule and page_rule.long_burn is not None:
        exhaustion = burn.time_to_exhaustion(
            summary.budget_remaining, page_rule.long_burn, timedelta(days=slo.window_days)
        )
    basis = burn.format_window(page_rule.rule.long_window) if page_rule else ""
    return SloDetail(summary, range_key, times, sli, budget, panels, incidents, events, exhaustion, basis)


def slo_backtest(*, slo: SLO, now: datetime) -> list[tuple[burn.AlertInterval, datetime, datetime | None]]:
    """Replay the SLO's own history over its window through its policy: each alert with its real times."""
    end = evaluation_minute(now)
    start = end - timedelta(days=slo.window_days) + MINUTE
    intervals = burn.backtest(sli_series(slo=slo, start=start, end=end), slo.objective, policy_rules(slo.policy))
    return [
        (i, start + MINUTE * i.fired_at, None if i.cleared_at is None else start + MINUTE * i.cleared_at)
        for i in intervals
    ]


# --------------------------------------------------------------------------------------------------
# Incidents
# --------------------------------------------------------------------------------------------------


ASSIGNEE_FILTERS = ("", "mine", "unassigned")  # or a member's username


def incidents_for(
    *, project: Project, status: str = "", assignee: str = "", user: User | None = None
) -> QuerySet[Incident]:
    """The project's incidents, newest first, by status ("unresolved", a status, or anything else: all) and by
    assignee ("mine": ``user``'s, "unassigned", a username, or "": anyone's)."""
    incidents = Incident.objects.filter(project=project).select_related(
        "slo", "acknowledged_by", "resolved_by", "assignee"
    )
    if status == "unresolved":
        incidents = incidents.exclude(status=IncidentStatus.RESOLVED)
    elif status in IncidentStatus.values:
        incidents = incidents.filter(status=status)
    if assignee == "mine":
        incidents = incidents.filter(assignee=user)
    elif assignee == "unassigned":
        incidents = incidents.filter(assignee=None)
    elif assignee:
        incidents = incidents.filter(assignee__username=assignee)
    return incidents


@dataclass
class IncidentRow:
    """One line of the incident list: the incident, how long it lasted (or has lasted), the budget it consumed."""

    incident: Incident
    duration: timedelta
    consumed: Decimal | None


def incident_rows(*, incidents: Sequence[Incident], now: datetime) -> list[IncidentRow]:
    """Each incident with its duration and the budget it consumed (``incident_budget_consumed``): the open ones
    against their SLO's budget now, summed for all of them in one window query."""
    open_slos = {i.slo.pk: i.slo for i in incidents if i.status != IncidentStatus.RESOLVED}
    end = evaluation_minute(now)
    counts = (
        window_counts(
            slos=list(open_slos.values()), end=end, windows=[slo.window_days * DAY for slo in open_slos.values()]
        )
        if open_slos
        else {}
    )
    rows = []
    for incident in incidents:
        slo = incident.slo
        budget_now = None
        if slo.pk in open_slos and (c := counts.get((slo.pk, slo.window_days * DAY))) is not None:
            budget_now = burn.budget_remaining(c.good, c.total, slo.objective)
        rows.append(
            IncidentRow(
                incident=incident,
                duration=(incident.resolved_at or now) - incident.opened_at,
                consumed=incident_budget_consumed(incident=incident, budget_now=budget_now),
            )
        )
    return rows


def incident_for(*, project: Project, incident_id: int) -> Incident | None:
    return (
        Incident.objects.filter(project=project, pk=incident_id)
        .select_related("slo", "slo__project", "slo__owner", "acknowledged_by", "resolved_by", "assignee")
        .prefetch_related(
            Prefetch(
                "events",
                queryset=IncidentEvent.objects.select_related("author", "assignee").prefetch_related(
                    Prefetch(
                        "deliveries",
                        queryset=Delivery.objects.select_related("channel").prefetch_related(
                            Prefetch("attempt_log", queryset=DeliveryAttempt.objects.order_by("at", "pk"))
                        ),
                    )
                ),
            )
        )
        .first()
    )


def delivery_state(delivery: Delivery) -> str:
    """sent, failed, skipped (not for this channel), retrying (failed, tried again later) or queued."""
    if delivery.status == DeliveryStatus.PENDING:
        return "retrying" if delivery.attempts else "queued"
    return str(delivery.status)


@dataclass
class TimelineEntry:
    """One line of "who did what": a timeline event, or a notification of one on a channel (placed at its last
    attempt). ``opened``: the event is the rule firing that opened the incident."""

    at: datetime
    event: IncidentEvent
    delivery: Delivery | None = None
    opened: bool = False

    @property
    def state(self) -> str:
        return delivery_state(self.delivery) if self.delivery else ""

    @property
    def last_attempt(self) -> DeliveryAttempt | None:
        attempts = list(self.delivery.attempt_log.all()) if self.delivery else []
        return attempts[-1] if attempts else None


def incident_timeline(incident: Incident) -> list[TimelineEntry]:
    """The incident's events and their notifications in time order (from ``incident_for``'s prefetch: no
    query). A notification sits at its last attempt, or at its event while none was made; at equal times the
    event comes before its notifications."""
    keyed: list[tuple[tuple[datetime, int, int], TimelineEntry]] = []
    opened = False
    for event in incident.events.all():
        first_fired = event.kind == EventKind.FIRED and not opened
        opened = opened or first_fired
        keyed.append(((event.at, 0, event.pk), TimelineEntry(at=event.at, event=event, opened=first_fired)))
        for delivery in event.deliveries.all():
            attempts = list(delivery.attempt_log.all())
            at = attempts[-1].at if attempts else event.at
            keyed.append(((at, 1, delivery.pk), TimelineEntry(at=at, event=event, delivery=delivery)))
    keyed.sort(key=lambda pair: pair[0])
    return [entry for _, entry in keyed]


@dataclass
class ChannelStatus:
    """Where the incident's notifications stand on one channel: the one it is on (``latest``: its oldest pending
    one, else its newest), how the others went, and the newest failed attempt of any of them."""

    channel: Channel
    latest: Delivery | None = None
    latest_event: IncidentEvent | None = None
    sent: int = 0
    failed: int = 0
    pending: int = 0
    last_failure: DeliveryAttempt | None = None

    @property
    def state(self) -> str:
        return delivery_state(self.latest) if self.latest else "none"

    @property
    def last_attempt(self) -> DeliveryAttempt | None:
        attempts = list(self.latest.attempt_log.all()) if self.latest else []
        return attempts[-1] if attempts else None


def incident_channel_status(*, incident: Incident, channels: Sequence[Channel]) -> list[ChannelStatus]:
    """Per channel (the SLO's now, and any that was notified of this incident), by name: from ``incident_for``'s
    prefetch plus the given channels, no query."""
    by_channel = {c.pk: ChannelStatus(channel=c) for c in channels}
    for event in incident.events.all():  # oldest first: the last one seen is the newest
        for delivery in event.deliveries.all():
            status = by_channel.setdefault(delivery.channel_id, ChannelStatus(channel=delivery.channel))
            # A channel hears an incident's changes in order: its oldest pending notification is what it is doing
            # now (a retry holds back the later ones), else its newest one says how the last went.
            if status.latest is None or status.latest.status != DeliveryStatus.PENDING:
                status.latest, status.latest_event = delivery, event
            if delivery.status == DeliveryStatus.SENT:
                status.sent += 1
            elif delivery.status == DeliveryStatus.FAILED:
                status.failed += 1
            elif delivery.status == DeliveryStatus.PENDING:
                status.pending += 1
            for attempt in delivery.attempt_log.all():
                if not attempt.ok and (status.last_failure is None or attempt.at >= status.last_failure.at):
                    status.last_failure = attempt
    return sorted(by_channel.values(), key=lambda s: s.channel.name)


@dataclass
class IncidentWindow:
    """The period the triage page studies and the baseline before it."""

    start: datetime
    end: datetime
    baseline_start: datetime


def incident_window(incident: Incident, now: datetime) -> IncidentWindow:
    """From the long window of the rule that opened the incident (at most a day) before it opened, to its
    resolution (or now); the baseline is the day before that."""
    first = next((e for e in incident.events.all() if e.kind == EventKind.FIRED), None)
    long_window = timedelta(hours=1)
    if first is not None and first.rule_key:
        long_window = burn.parse_window(first.rule_key.split(":")[2])
    start = incident.opened_at - min(long_window, timedelta(days=1))
    end = incident.resolved_at or now
    return IncidentWindow(start=start, end=end, baseline_start=start - timedelta(days=1))


@dataclass
class JudgedTrace:
    trace: dict[str, object]
    failing: list[Score] = field(default_factory=list)


@dataclass
class IncidentEvents:
    bad: list[int]
    good: list[int]
    baseline: list[int]
    baseline_bad: set[int]
    sample: list[JudgedTrace]
    # Release, model names and name of every trace above, as judged (selectors_triage.events_for reads them).
    facts: dict[int, tuple[str, list[str], str]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return len(self.bad) + len(self.good)


def incident_events(
    *, incident: Incident, window: IncidentWindow, limit: int = 2000, sample: int = 25
) -> IncidentEvents:
    """The SLO's events in the incident window and the baseline (the newest `limit` traces of each), judged by the
    SLO's own definition, and a sample of the bad ones with their failing scores."""
    slo = incident.slo
    definition = SliDefinition.of(slo)

    def judged(start: datetime, end: datetime) -> list[tuple[dict[str, object], bool]]:
        traces = Trace.objects.filter(
            project_id=slo.project_id, service=slo.service, start_time__gte=start, start_time__lt=end
        )
        if slo.environment:
            traces = traces.filter(environment=slo.environment)
        # The judging fields only: the sample's links and previews are read for its few traces below.
        rows = list(traces.order_by("-start_time").values(*TRACE_ROW_FIELDS)[:limit])
        names = definition.score_names
        verdicts = trace_verdicts([r["pk"] for r in rows], names, starts=(start, end)) if names else {}
        out = []
        for row in rows:
            good = definition.verdict(row, verdicts.get(row["pk"], {}))
            if good is not None:
                out.append((row, good))
        return out

    current = judged(window.start, window.end)
    before = judged(window.baseline_start, window.start)
    bad_rows = [row for row, good in current if not good]
    picked = bad_rows[:sample]
    shown: dict[Any, Any] = {}
    if picked:
        rows = Trace.objects.filter(
            AnyOf("pk", [int(r["pk"]) for r in picked]),  # type: ignore[call-overload]
            project_id=slo.project_id,
            start_time__gte=window.start,
            start_time__lt=window.end,
        ).values("pk", "trace_id", "input_preview", "output_preview")
        shown = {row["pk"]: row for row in rows}
    for row in picked:
        row.update(shown.get(row["pk"], {}))
    failing: dict[int, list[Score]] = {}
    around = (window.start - SCORE_START_SLACK, window.end + SCORE_START_SLACK)  # their partitions only
    for score in (
        Score.objects.current(starts=around)
        .filter(trace_id__in=[r["pk"] for r in picked], passed=False)
        .order_by("name")
    ):
        failing.setdefault(score.trace_id, []).append(score)
    return IncidentEvents(
        bad=[int(r["pk"]) for r in bad_rows],  # type: ignore[call-overload]
        good=[int(r["pk"]) for r, good in current if good],  # type: ignore[call-overload]
        baseline=[int(r["pk"]) for r, _ in before],  # type: ignore[call-overload]
        baseline_bad={int(r["pk"]) for r, good in before if not good},  # type: ignore[call-overload]
        sample=[JudgedTrace(trace=r, failing=failing.get(int(r["pk"]), [])) for r in picked],  # type: ignore[call-overload]
        facts={
            int(r["pk"]): (str(r["release"]), list(r["model_names"] or []), str(r["name"]))  # type: ignore[call-overload]
            for r, _ in (*current, *before)
        },
    )


def incident_budget_consumed(*, incident: Incident, budget_now: Decimal | None) -> Decimal | None:
    """The error budget the incident consumed: the budget left when it opened minus the budget left when it resolved
    (or now, while it is open); never negative (bad events ageing out of the window give budget back)."""
    end = incident.budget_at_resolve if incident.status == IncidentStatus.RESOLVED else budget_now
    if incident.budget_at_open is None or end is None:
        return None
    return max(Decimal(0), incident.budget_at_open - end)


def channels_for(*, project: Project) -> QuerySet[Channel]:
    return Channel.objects.filter(project=project).prefetch_related("slos")


def channel_deliveries(*, channels: Sequence[Channel], limit: int = 10) -> dict[int, list[Delivery]]:
    """Channel id → its newest `limit` deliveries with their attempts: two queries for every channel together."""
    # A test (no event) is dated by when it was asked for.
    at = Coalesce("event__at", "budget_alert__at", "next_attempt_at")
    newest = Window(RowNumber(), partition_by=[F("channel_id")], order_by=[at.desc(), F("pk").desc()])
    rows = (
        Delivery.objects.filter(channel__in=channels)
        .select_related("event", "event__incident", "event__incident__slo", "requested_by", "budget_alert__budget")
        .prefetch_related(Prefetch("attempt_log", queryset=DeliveryAttempt.objects.order_by("at", "pk")))
        .annotate(newest=newest)
        .filter(newest__lte=limit)
        .order_by("channel_id", "newest")
    )
    by_channel: dict[int, list[Delivery]] = {channel.pk: [] for channel in channels}
    for delivery in rows:
        by_channel[delivery.channel_id].append(delivery)
    return by_channel


def failing_traces_query(*, slo: SLO, since: datetime | None, until: datetime | None) -> tuple[str, bool]:
    """The trace list's query string for the SLO's bad events between ``since`` and ``until``, and whether it
    narrows to them (True) or can only show the slice's traces worst first (False). Its filters are the trace
    list's: a failed score (the evaluator's own verdict), errors, the latency or cost floor; a score compared with a
    threshold has no filter there, so the list is sorted by that score, worst first. Safety SLIs (any of six checks)
    show the slice."""
    params: dict[str, str] = {"service": slo.service}
    for key, value in (("environment", slo.environment), ("name", slo.route), ("model", slo.model)):
        if value:
            params[key] = value
    narrowed = True
    if slo.sli_kind == SliKind.PROBE or (slo.sli_kind == SliKind.SCORE and slo.comparator == Comparator.PASS):
        params["failing"] = PROBE_SCORE if slo.sli_kind == SliKind.PROBE else slo.evaluator
    elif slo.sli_kind == SliKind.SCORE:
        params["score"] = slo.evaluator
        params["sort"] = "score" if slo.comparator in (Comparator.GE, Comparator.GT) else "-score"
        narrowed = False
    elif slo.sli_kind == SliKind.ERROR:
        params["status"] = "error"
    elif slo.sli_kind == SliKind.LATENCY and slo.threshold is not None:
        params["min_duration_ms"] = format(slo.threshold.normalize(), "f")
        params["sort"] = "-latency"
        narrowed = False  # the list's floor includes a trace exactly at the limit, which is good
    elif slo.sli_kind == SliKind.COST and slo.threshold is not None:
        params["min_cost"] = format(slo.threshold.normalize(), "f")
        params["sort"] = "-cost"
        narrowed = False
    else:
        narrowed = False
    if since is not None:
        params["since"] = since.isoformat()
    if until is not None:
        params["until"] = until.isoformat()
    return urlencode(params), narrowed


# --- SLI windows (the tick and the pages read the same counts) ---------------------------------------------


DAY = 24 * 60  # minutes


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


def slo_budget_remaining(*, slo: SLO, now: datetime) -> Decimal | None:
    window = slo.window_days * DAY
    counts = window_counts(slos=[slo], end=evaluation_minute(now), windows=[window]).get((slo.pk, window))
    return burn.budget_remaining(counts.good, counts.total, slo.objective) if counts else None
