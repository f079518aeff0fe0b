"""SLOs on trace-level signals, their per-minute SLI counts, alert rule state, incidents and the notification
outbox.

Flow: rollup recomputes write SliMinute rows (good/total per SLO and minute) and their SliHour sums; window
sums (the tick, the SLO list, /metrics) read whole hours from SliHour and the partial ones from SliMinute,
keeps a RuleState per alert rule, and writes every state change as an IncidentEvent together with one
Delivery row per notification channel (the outbox) in the same transaction; the dispatcher claims pending
deliveries with SKIP LOCKED and logs each attempt as a DeliveryAttempt.
"""

from django.conf import settings
from django.db import models

from accounts.models import Project


class SliKind(models.TextChoices):
    SCORE = "score", "A score passes"
    LATENCY = "latency", "Latency at most N ms"
    ERROR = "error", "No error"
    COST = "cost", "Cost per trace at most $X"
    SAFETY = "safety", "No safety flag"
    PROBE = "probe", "Golden probe passed"


class Comparator(models.TextChoices):
    PASS = "pass", "passes (the evaluator's own verdict)"
    GE = ">=", "≥"
    GT = ">", ">"
    LE = "<=", "≤"
    LT = "<", "<"


class Channel(models.Model):
    """Where a project's alerts go: one transport (slos.transports) and its validated config."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="channels")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=20)
    config = models.JSONField(default=dict)
    # Set when a delivery failed for good (a 4xx, a bad config); cleared by the next successful one.
    failing_since = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="channel_unique_name")]

    def __str__(self) -> str:
        return self.name


class SLO(models.Model):
    """good events / valid events of one service over a rolling window, an objective and an alert policy.

    An event is a trace of the service (optionally one environment, route or model). What makes it good is
    the SLI kind: a score compared with a threshold (or the evaluator's pass), latency ≤ threshold ms, no
    error, cost ≤ threshold dollars, no failing safety check, or a passed golden probe. Traces the SLI
    cannot judge (no such score, unpriced cost) are not valid events.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="slos")
    name = models.CharField(max_length=200)
    service = models.CharField(max_length=200)
    environment = models.CharField(max_length=64, blank=True)
    route = models.CharField(max_length=500, blank=True)
    model = models.CharField(max_length=200, blank=True)
    sli_kind = models.CharField(max_length=10, choices=SliKind.choices)
    evaluator = models.CharField(max_length=100, blank=True)
    comparator = models.CharField(max_length=4, choices=Comparator.choices, blank=True)
    # The score threshold, the latency limit in ms or the cost limit in dollars, by SLI kind.
    threshold = models.DecimalField(max_digits=20, decimal_places=10, null=True, blank=True)
    # Exactly as typed (0.995 is 0.995, not a float near it).
    objective = models.DecimalField(max_digits=12, decimal_places=10)
    window_days = models.PositiveSmallIntegerField(default=30)
    # [{"severity", "burn_rate_threshold", "long_window", "short_window"}] as strings ("14.4", "1h", "5m").
    policy = models.JSONField(default=list)
    runbook = models.TextField(blank=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    channels = models.ManyToManyField(Channel, blank=True, related_name="slos")
    # When the SLI history of the window was last computed from raw rows (None: not yet, the tick waits).
    history_ready_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="slo_unique_name")]

    def __str__(self) -> str:
        return self.name


class SliMinute(models.Model):
    """The SLO's events among the traces that started in one minute (derived: recomputed with the rollups)."""

    slo = models.ForeignKey(SLO, on_delete=models.CASCADE, related_name="+")
    minute = models.DateTimeField()
    good = models.IntegerField()
    total = models.IntegerField()

    class Meta:
        constraints = [
            # One row per SLO and minute; the unique index also serves every window sum (slo, minute range).
            models.UniqueConstraint(fields=["slo", "minute"], name="sli_minute_unique"),
        ]


class SliHour(models.Model):
    """The sum of the SLO's SliMinute rows of one hour (derived, written with them): a 30-day window is 720 of
    these plus the minutes of its two partial hours, not 43,200 minute rows."""

    slo = models.ForeignKey(SLO, on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField()
    good = models.IntegerField()
    total = models.IntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["slo", "hour"], name="sli_hour_unique")]


class RuleState(models.Model):
    """The last evaluation of one alert rule of an SLO and the burn rates that decided it."""

    slo = models.ForeignKey(SLO, on_delete=models.CASCADE, related_name="rule_states")
    rule_key = models.CharField(max_length=100)
    severity = models.CharField(max_length=10)
    firing = models.BooleanField(default=False)
    long_burn = models.DecimalField(max_digits=24, decimal_places=10, null=True, blank=True)
    short_burn = models.DecimalField(max_digits=24, decimal_places=10, null=True, blank=True)
    since = models.DateTimeField()
    evaluated_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["slo", "rule_key"], name="rule_state_unique")]


class IncidentStatus(models.TextChoices):
    OPEN = "open", "Open"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"


class Incident(models.Model):
    """Opened by the first firing rule of an SLO; later rules join it until it is resolved."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="incidents")
    slo = models.ForeignKey(SLO, on_delete=models.CASCADE, related_name="incidents")
    status = models.CharField(max_length=12, choices=IncidentStatus.choices, default=IncidentStatus.OPEN)
    severity = models.CharField(max_length=10)
    opened_at = models.DateTimeField()
    # Budget remaining when the incident opened: the triage page shows what this incident consumed.
    budget_at_open = models.DecimalField(max_digits=24, decimal_places=10, null=True, blank=True)
    # The window's budget left when the incident resolved: what it consumed is budget_at_open minus this.
    budget_at_resolve = models.DecimalField(max_digits=24, decimal_places=10, null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The project member handling it (set and cleared by editors; each change is on the timeline).
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="assigned_incidents"
    )

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            # At most one unresolved incident per SLO: a firing rule joins it instead of opening another.
            models.UniqueConstraint(
                fields=["slo"], condition=~models.Q(status="resolved"), name="incident_one_open_per_slo"
            ),
        ]
        indexes = [
            # Incident list of a project, newest first, open ones on top.
            models.Index(fields=["project", "status", "-opened_at"], name="incident_list_idx"),
        ]


class EventKind(models.TextChoices):
    FIRED = "fired", "Rule fired"
    CLEARED = "cleared", "Rule cleared"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"
    NOTE = "note", "Note"
    ASSIGNED = "assigned", "Assigned"
    UNASSIGNED = "unassigned", "Unassigned"


# The events that change the incident's state: these are notified on the SLO's channels. Notes and assignments
# are the team's own bookkeeping and only go on the timeline.
NOTIFIED_KINDS = frozenset({EventKind.FIRED, EventKind.CLEARED, EventKind.ACKNOWLEDGED, EventKind.RESOLVED})


class IncidentEvent(models.Model):
    """One entry of an incident's timeline. Every state change (fired, cleared, acknowledged, resolved) is
    written together with its Delivery rows: the outbox."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=12, choices=EventKind.choices)
    # The incident's status right after this change (notifications sent later must describe that moment).
    incident_status = models.CharField(max_length=12, choices=IncidentStatus.choices, blank=True)
    at = models.DateTimeField()
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    # assigned: who was assigned; unassigned: who no longer is.
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    rule_key = models.CharField(max_length=100, blank=True)
    severity = models.CharField(max_length=10, blank=True)
    rule = models.CharField(max_length=200, blank=True)
    long_burn = models.DecimalField(max_digits=24, decimal_places=10, null=True, blank=True)
    short_burn = models.DecimalField(max_digits=24, decimal_places=10, null=True, blank=True)
    # The SLO's budget left when the change was written: every delivery of it (retries included) says the same.
    budget_remaining = models.DecimalField(max_digits=24, decimal_places=10, null=True, blank=True)
    text = models.TextField(blank=True)

    class Meta:
        ordering = ["at", "id"]


class BudgetScope(models.TextChoices):
    SERVICE = "service", "Service"
    USER = "user", "End user (user.id)"
    ATTRIBUTE = "attribute", "Trace attribute value"


class BudgetWindow(models.TextChoices):
    DAY = "day", "Day"
    WEEK = "week", "Week"
    MONTH = "month", "Month"


class Budget(models.Model):
    """A spend budget: the cost of the traces that started in the current day, week or month (UTC), summed per
    key (a service, an end user, or the value of a trace attribute such as tenant), with a warning and a limit
    level in USD. ``value`` "" gives every key its own budget; a value restricts it to that one key."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="budgets")
    name = models.CharField(max_length=200)
    scope = models.CharField(max_length=10, choices=BudgetScope.choices)
    # The attribute whose value is the key (scope attribute), looked up on span attributes, then resource.
    attribute = models.CharField(max_length=200, blank=True)
    value = models.CharField(max_length=200, blank=True)
    # Only traces of this service count ("" = every service); for scope service, ``value`` names the service.
    service = models.CharField(max_length=200, blank=True)
    window = models.CharField(max_length=5, choices=BudgetWindow.choices)
    warning_usd = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    limit_usd = models.DecimalField(max_digits=20, decimal_places=6)
    channels = models.ManyToManyField(Channel, blank=True, related_name="budgets")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="budget_unique_name")]

    def __str__(self) -> str:
        return self.name


class BudgetSpend(models.Model):
    """A budget's spend as the last evaluation (``budgets_evaluate``, every minute) summed it: the most spent keys
    of the window that started at ``window_start``. The overview, the Budgets page and /metrics read this row
    instead of summing the window's traces on every view (seconds on a month of a busy project)."""

    budget = models.OneToOneField(Budget, on_delete=models.CASCADE, primary_key=True, related_name="spend")
    window_start = models.DateTimeField()
    computed_at = models.DateTimeField()
    # [[key, spend in USD as a decimal string], ...], the most spent first (slos.budgets.KEYS_SHOWN of them).
    keys = models.JSONField(default=list)
    # The spend per key ({key: decimal string}) of the window's traces that started before ``settled_until``,
    # summed once an hour; each minute's evaluation adds only the traces since (slos.budgets.SETTLED_LAG).
    settled_until = models.DateTimeField(null=True)
    settled = models.JSONField(default=dict)


class BudgetLevel(models.TextChoices):
    WARNING = "warning", "Warning"
    LIMIT = "limit", "Limit"


class BudgetAlert(models.Model):
    """A key's spend crossed a level of a budget in one window: notified once, through the budget's channels (one
    Delivery row each, sent by the SLO dispatcher)."""

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="alerts")
    key = models.CharField(max_length=200)
    level = models.CharField(max_length=8, choices=BudgetLevel.choices)
    window_start = models.DateTimeField()
    spend_usd = models.DecimalField(max_digits=20, decimal_places=6)
    threshold_usd = models.DecimalField(max_digits=20, decimal_places=6)
    at = models.DateTimeField()

    class Meta:
        ordering = ["-at", "-id"]
        constraints = [
            # Once per window, key and level, however often the budget is evaluated; the guard's "user over
            # budget" lookup (budget, key, level, window) is this index too.
            models.UniqueConstraint(fields=["budget", "key", "level", "window_start"], name="budget_alert_once"),
        ]


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    SKIPPED = "skipped", "Not for this channel"
    FAILED = "failed", "Failed"


class Delivery(models.Model):
    """Outbox row: one state change to notify on one channel. A dispatcher claims it for the length of one send
    (``claimed_until``), sends with no transaction open, then records the answer (slos.services)."""

    # None (and no budget_alert): a test message asked for on the channel page (by requested_by); tried once.
    event = models.ForeignKey(IncidentEvent, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries")
    # Set instead of ``event`` for a spend budget alert (slos.budgets): retried like an incident event.
    budget_alert = models.ForeignKey(
        BudgetAlert, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries"
    )
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="deliveries")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=8, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.IntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    last_error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    # While in the future, a dispatcher is sending it; other dispatchers skip it.
    claimed_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # A state change is notified once per channel.
            models.UniqueConstraint(fields=["event", "channel"], name="delivery_unique"),
            models.UniqueConstraint(fields=["budget_alert", "channel"], name="delivery_budget_alert_unique"),
        ]
        indexes = [
            # The dispatcher's claim: pending rows that are due (a small set).
            models.Index(fields=["next_attempt_at"], condition=models.Q(status="pending"), name="delivery_due_idx"),
        ]


class DeliveryAttempt(models.Model):
    """What one try to deliver answered: the log shown on the channel and incident pages."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    at = models.DateTimeField()
    ok = models.BooleanField()
    retryable = models.BooleanField(default=False)
    response = models.CharField(max_length=500, blank=True)
    duration_ms = models.FloatField(default=0)

    class Meta:
        ordering = ["at", "id"]
