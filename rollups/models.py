"""Per-minute, per-hour and per-day aggregates per project, service and environment: derived data that dashboards
and SLOs read instead of raw spans. Recomputable from raw rows at any time (see services)."""

from django.db import models

from accounts.models import Project


class Granularity(models.TextChoices):
    MINUTE = "m", "Minute"
    HOUR = "h", "Hour"
    # UTC days: what reads of whole days (a 30-day window's totals, the /metrics counters) sum, 24 times fewer rows.
    DAY = "d", "Day"


class Dimension(models.TextChoices):
    ALL = "", "All traces"
    MODEL = "model", "Model"
    RELEASE = "release", "Release"
    PROMPT = "prompt", "Prompt version"
    ROUTE = "route", "Route (trace name)"


class TrafficRollup(models.Model):
    """Golden signals of the traces that started in one bucket, for one slice (all, or one model/release/...)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    service = models.CharField(max_length=200)
    environment = models.CharField(max_length=64)
    granularity = models.CharField(max_length=1, choices=Granularity.choices)
    bucket = models.DateTimeField()
    dimension = models.CharField(max_length=10, choices=Dimension.choices, blank=True)
    value = models.CharField(max_length=200, blank=True)
    traces = models.IntegerField(default=0)
    errors = models.IntegerField(default=0)
    latency_hist = models.JSONField(default=dict)
    latency_sum_ms = models.FloatField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cost = models.DecimalField(max_digits=20, decimal_places=10, default=0)
    unpriced = models.IntegerField(default=0)
    # Traces that a safety check judged, and those with a safety flag (evals.signals.safety_flagged).
    safety_judged = models.IntegerField(default=0)
    safety_flagged = models.IntegerField(default=0)

    class Meta:
        constraints = [
            # One row per slice and bucket: a recompute replaces it.
            models.UniqueConstraint(
                fields=["project", "service", "environment", "granularity", "bucket", "dimension", "value"],
                name="traffic_rollup_unique",
            ),
        ]
        indexes = [
            # Dashboards: one project, one granularity, a time range, sliced by dimension.
            models.Index(fields=["project", "granularity", "dimension", "bucket"], name="traffic_range_idx"),
        ]


class ScoreRollup(models.Model):
    """good/total per score name for the traces that started in one bucket (good = passed; total = judged)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    service = models.CharField(max_length=200)
    environment = models.CharField(max_length=64)
    granularity = models.CharField(max_length=1, choices=Granularity.choices)
    bucket = models.DateTimeField()
    dimension = models.CharField(max_length=10, choices=Dimension.choices, blank=True)
    value = models.CharField(max_length=200, blank=True)
    name = models.CharField(max_length=100)
    good = models.IntegerField(default=0)
    total = models.IntegerField(default=0)
    value_sum = models.FloatField(default=0)
    value_count = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "service", "environment", "granularity", "bucket", "dimension", "value", "name"],
                name="score_rollup_unique",
            ),
        ]
        indexes = [
            models.Index(fields=["project", "granularity", "dimension", "bucket"], name="score_range_idx"),
        ]


class RetiredTotal(models.Model):
    """What retention removed of one /metrics series' day rollups (``name`` blank: the traffic series; else one
    check's). Added in the transaction that removes them (rollups.retention), so the counters on /metrics, these
    plus the kept rollups, never go down: Prometheus reads a counter that goes down as a restart from zero."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    service = models.CharField(max_length=200)
    environment = models.CharField(max_length=64)
    name = models.CharField(max_length=100, blank=True)
    traces = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)
    cost = models.DecimalField(max_digits=24, decimal_places=10, default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    safety_judged = models.BigIntegerField(default=0)
    safety_flagged = models.BigIntegerField(default=0)
    good = models.BigIntegerField(default=0)
    total = models.BigIntegerField(default=0)

    # The columns summed from TrafficRollup (the traffic series) and from ScoreRollup (a check's), same names there.
    TRAFFIC = ("traces", "errors", "cost", "input_tokens", "output_tokens", "safety_judged", "safety_flagged")
    CHECKS = ("good", "total")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "service", "environment", "name"], name="retired_total_unique")
        ]
