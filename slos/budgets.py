"""Spend budgets: reads (spend per key in the current window, forecast) and writes (alerts when a level is crossed).

A window is the current UTC day, ISO week (from Monday) or calendar month; spend is the cost of the traces that
started in it. ``budgets_evaluate`` (beat, every minute) writes one BudgetAlert per budget, key, level and window
the first time the level is reached, with one Delivery row per channel of the budget in the same transaction;
the SLO dispatcher sends them like incident events (``budget_alert_message`` is what it sends).

The same evaluation stores each budget's most spent keys (``BudgetSpend``): the overview, the Budgets page and
/metrics read that stored figure (``budget_statuses``) and say when it was computed, instead of summing the
window's traces on every view. The guard's "user over budget" check reads the alert rows the same evaluation
writes (one index lookup in the request path). So all of them follow the spend with at most one beat interval of
lag, and agree with each other; except spend that reaches a trace which started before the previous hour (a late
span): that counts at the next hour's sum of the settled traces (``SETTLED_LAG``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import CharField, F, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone

from accounts.models import Project
from slos.models import (
    Budget,
    BudgetAlert,
    BudgetLevel,
    BudgetScope,
    BudgetSpend,
    BudgetWindow,
    Channel,
    Delivery,
)
from slos.transports.base import AlertMessage
from sre4ai_web.lib.queue import enqueue_on_commit
from traces.models import Span, Trace

# The forecast extrapolates the spend rate so far; before an hour has passed that rate says little.
MIN_FORECAST_ELAPSED = timedelta(hours=1)
# Keys shown per budget on the budgets page (the most spent first); alerts cover every key.
KEYS_SHOWN = 20
# Traces that started before the hour before the current one are settled: their spend per key is summed once an
# hour and stored, and each minute's evaluation sums only the traces since, which may still be getting spans. A
# month of an attribute budget at 1M spans took a second a minute summed whole (docs/budgets.md). A span that
# reaches an older trace counts at the next hour's sum.
SETTLED_LAG = timedelta(hours=1)


def window_bounds(window: str, now: datetime) -> tuple[datetime, datetime]:
    """The UTC day, ISO week or calendar month that contains ``now``."""
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if window == BudgetWindow.DAY:
        return day, day + timedelta(days=1)
    if window == BudgetWindow.WEEK:
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    start = day.replace(day=1)
    end = (start + timedelta(days=32)).replace(day=1)
    return start, end


def forecast(spend: Decimal, start: datetime, end: datetime, now: datetime) -> Decimal:
    """Spend at the end of the window if it goes on at the rate so far."""
    elapsed = max(now - start, MIN_FORECAST_ELAPSED)
    return spend + spend * Decimal((end - now).total_seconds()) / Decimal(elapsed.total_seconds())


def _spend_by_key(budget: Budget, start: datetime, end: datetime) -> QuerySet[Any, Any]:
    traces = Trace.objects.filter(project_id=budget.project_id, start_time__gte=start, start_time__lt=end)
    traces = traces.filter(cost__isnull=False)
    if budget.service and budget.scope != BudgetScope.SERVICE:
        traces = traces.filter(service=budget.service)
    key: Any
    if budget.scope == BudgetScope.SERVICE:
        key = F("service")
    elif budget.scope == BudgetScope.USER:
        key = F("user_id")
    else:
        # The first span of the trace that carries the attribute (span attributes first, then resource).
        name = budget.attribute
        carrier = Span.objects.filter(trace=OuterRef("pk")).filter(
            Q(attributes__has_key=name) | Q(resource__has_key=name)
        )
        value = Coalesce(
            KeyTextTransform(name, "attributes"),
            KeyTextTransform(name, "resource"),
            Value(""),
            output_field=CharField(),
        )
        key = Subquery(carrier.annotate(v=value).values("v")[:1], output_field=CharField())
    rows = traces.annotate(key=key).exclude(key="").exclude(key__isnull=True)
    if budget.value:
        rows = rows.filter(key=budget.value)
    return rows.values("key").annotate(spend=Sum("cost")).order_by("-spend", "key")


@dataclass(frozen=True)
class KeySpend:
    key: str
    spend: Decimal
    forecast: Decimal
    level: str  # "" (under the warning), "warning" or "limit"


@dataclass(frozen=True)
class BudgetStatus:
    budget: Budget
    start: datetime
    end: datetime
    keys: list[KeySpend]
    # When the figure was computed (None: not yet evaluated in this window).
    as_of: datetime | None

    @property
    def top(self) -> KeySpend | None:
        return self.keys[0] if self.keys else None


def _level(budget: Budget, spend: Decimal) -> str:
    if spend >= budget.limit_usd:
        return BudgetLevel.LIMIT
    if budget.warning_usd is not None and spend >= budget.warning_usd:
        return BudgetLevel.WARNING
    return ""


def budget_status(*, budget: Budget, now: datetime) -> BudgetStatus:
    """The budget's spend in the window containing ``now``, as its last evaluation stored it: no keys and no
    ``as_of`` before the first evaluation in this window. The forecast extrapolates from when it was computed."""
    start, end = window_bounds(budget.window, now)
    stored: BudgetSpend | None = getattr(budget, "spend", None)
    if stored is None or stored.window_start != start:
        return BudgetStatus(budget=budget, start=start, end=end, keys=[], as_of=None)
    at = stored.computed_at
    keys = []
    for key, text in stored.keys:
        spend = Decimal(text)
        keys.append(KeySpend(key, spend, forecast(spend, start, end, at), _level(budget, spend)))
    return BudgetStatus(budget=budget, start=start, end=end, keys=keys, as_of=at)


def budget_statuses(*, project: Project, now: datetime) -> list[BudgetStatus]:
    """Every budget of the project with its stored spend and its channels: two queries for all."""
    rows = Budget.objects.filter(project=project).select_related("spend").prefetch_related("channels")
    return [budget_status(budget=b, now=now) for b in rows]


def per_user_budgets(*, project_id: int) -> list[Budget]:
    """The project's budgets per end user, for the guard call's user_budget check (user_budgets_over)."""
    return list(Budget.objects.filter(project_id=project_id, scope=BudgetScope.USER).order_by("name"))


def user_budgets_over(*, budgets: Iterable[Budget], user_id: str, service: str, now: datetime) -> list[dict[str, str]]:
    """Of these per-user budgets, those (of every service or of ``service``, for every user or this one) whose limit
    this user reached in the current window, as beat's evaluation recorded it: one query, none when no budget
    applies."""
    applying = {b.pk: b for b in budgets if b.service in ("", service) and b.value in ("", user_id)}
    if not applying:
        return []
    starts = {pk: window_bounds(b.window, now)[0] for pk, b in applying.items()}
    alerts = BudgetAlert.objects.filter(
        budget_id__in=applying, key=user_id, level=BudgetLevel.LIMIT, window_start__in=set(starts.values())
    ).values_list("budget_id", "window_start", "spend_usd")
    return [
        {
            "budget": applying[pk].name,
            "window": applying[pk].window,
            "spend_usd": str(spend),
            "limit_usd": str(applying[pk].limit_usd),
        }
        for pk, start, spend in sorted(alerts, key=lambda a: applying[a[0]].name)
        if starts[pk] == start
    ]


def budget_create(
    *,
    project: Project,
    name: str,
    scope: str,
    window: str,
    limit_usd: Decimal,
    warning_usd: Decimal | None = None,
    attribute: str = "",
    value: str = "",
    service: str = "",
    channels: Iterable[Channel] = (),
) -> Budget:
    budget = Budget.objects.create(
        project=project,
        name=name,
        scope=scope,
        attribute=attribute.strip(),
        value=value.strip(),
        service=service.strip(),
        window=window,
        warning_usd=warning_usd,
        limit_usd=limit_usd,
    )
    budget.channels.set(channels)
    return budget


def budget_delete(*, budget: Budget) -> None:
    budget.delete()


def recent_alerts(*, project: Project, limit: int = 20) -> QuerySet[BudgetAlert]:
    return BudgetAlert.objects.filter(budget__project=project).select_related("budget")[:limit]


def budgets_evaluate(*, now: datetime | None = None) -> int:
    """Alert on every level newly crossed in the current windows, for every budget. Returns alerts written."""
    now = now or timezone.now()
    return sum(budget_evaluate(budget_id=pk, now=now) for pk in Budget.objects.values_list("pk", flat=True))


def _spend_between(budget: Budget, start: datetime, end: datetime) -> dict[str, Decimal]:
    return {str(row["key"]): row["spend"] for row in _spend_by_key(budget, start, end)} if end > start else {}


def _window_spend(budget: Budget, start: datetime, end: datetime, now: datetime) -> list[tuple[str, Decimal]]:
    """Every key's spend in the window, the most spent first, stored with the settled part (``SETTLED_LAG``): the
    settled traces' sums are read back from the last evaluation unless the hour moved on, the others summed."""
    hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    settle_to = min(max(start, hour - SETTLED_LAG), end)
    stored = BudgetSpend.objects.filter(budget=budget).first()
    kept = stored.settled if stored and stored.window_start == start and stored.settled_until == settle_to else None
    if kept is not None:
        settled = {key: Decimal(text) for key, text in kept.items()}
    else:
        settled = _spend_between(budget, start, settle_to)
    totals = dict(settled)
    for key, spend in _spend_between(budget, settle_to, end).items():
        totals[key] = totals.get(key, Decimal(0)) + spend
    rows = sorted(totals.items(), key=lambda row: (-row[1], row[0]))
    figure: dict[str, Any] = {
        "window_start": start,
        "computed_at": now,
        "keys": [[key, str(spend)] for key, spend in rows[:KEYS_SHOWN]],
    }
    if kept is None:  # the settled sums (every key's) are written once an hour, not every minute
        figure |= {"settled_until": settle_to, "settled": {key: str(spend) for key, spend in settled.items()}}
    BudgetSpend.objects.update_or_create(budget=budget, defaults=figure)
    return rows


@transaction.atomic
def budget_evaluate(*, budget_id: int, now: datetime) -> int:
    # The row lock makes overlapping runs wait: each level of a key is alerted once per window.
    budget = Budget.objects.select_for_update().filter(pk=budget_id).first()
    if budget is None:
        return 0
    start, end = window_bounds(budget.window, now)
    alerted = set(BudgetAlert.objects.filter(budget=budget, window_start=start).values_list("key", "level"))
    levels = [(BudgetLevel.LIMIT, budget.limit_usd)]
    if budget.warning_usd is not None:
        levels.append((BudgetLevel.WARNING, budget.warning_usd))
    rows = _window_spend(budget, start, end, now)
    new = [
        BudgetAlert(
            budget=budget,
            key=key,
            level=level,
            window_start=start,
            spend_usd=spend,
            threshold_usd=threshold,
            at=now,
        )
        for key, spend in rows
        for level, threshold in levels
        if spend >= threshold and (key, level) not in alerted
    ]
    if not new:
        return 0
    BudgetAlert.objects.bulk_create(new)
    channels = list(budget.channels.all())
    Delivery.objects.bulk_create(
        [Delivery(budget_alert=alert, channel=c, next_attempt_at=now) for alert in new for c in channels]
    )
    if channels:
        enqueue_on_commit("slos.tasks.dispatch")
    return len(new)


def _usd(amount: Decimal) -> str:
    return f"{amount:,.2f}"


def budget_alert_message(alert: BudgetAlert) -> AlertMessage:
    """What the channels receive for a budget alert. Its ids are negative: budget alerts have their own id
    sequence, and receivers that deduplicate on the event id must never take one for an incident event."""
    budget = alert.budget
    project = budget.project
    who = f"{budget.get_scope_display().lower()} {alert.key}"
    if budget.scope == BudgetScope.ATTRIBUTE:
        who = f"{budget.attribute}={alert.key}"
    spent = f"${_usd(alert.spend_usd)} this {budget.window}"
    return AlertMessage(
        event_id=-alert.pk,
        kind="fired",
        incident_id=-alert.pk,
        incident_url=settings.SRE4AI_BASE_URL + reverse("budget_list", args=[project.slug]),
        incident_status="open",
        project=project.slug,
        slo_id=0,
        slo_name=f"Budget {budget.name}",
        service=alert.key if budget.scope == BudgetScope.SERVICE else budget.service,
        environment="",
        objective=f"${_usd(budget.limit_usd)} per {budget.window}",
        severity="page" if alert.level == BudgetLevel.LIMIT else "ticket",
        rule=f"{alert.level} at ${_usd(alert.threshold_usd)} per {budget.window}",
        burn_rate_long=None,
        burn_rate_short=None,
        budget_remaining=f"{(1 - alert.spend_usd / budget.limit_usd) * 100:.0f}%" if budget.limit_usd else None,
        summary=f"Budget {budget.name}: {who} spent {spent}, over its {alert.level} of ${_usd(alert.threshold_usd)}",
        occurred_at=alert.at.astimezone(UTC),
    )
