from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from accounts.models import Project
from traces.models import Span, Trace


class ScoreSource(models.TextChoices):
    EVALUATOR = "evaluator", "Evaluator"
    HUMAN = "human", "Human"
    API = "api", "API"
    PROBE = "probe", "Probe"


class Score(models.Model):
    """A judgement on a trace or one of its spans: from an evaluator, a person, an app (API) or a probe."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    trace = models.ForeignKey(Trace, on_delete=models.CASCADE, related_name="scores")
    span = models.ForeignKey(Span, on_delete=models.CASCADE, null=True, blank=True, related_name="scores")
    # Identity of the judgement within the project, so a repeated judgement replaces the previous one:
    # evaluator scores by (trace, span, evaluator, version, name); human ones by (trace, span, author, name);
    # API ones by their optional id. See services.score_key_*.
    key = models.CharField(max_length=300)
    # Copied from the trace when the score is written, so panels filter scores by service and time without a
    # join (a trace's start moves only when an earlier span arrives late, by seconds).
    service = models.CharField(max_length=200, blank=True)
    trace_start = models.DateTimeField(null=True, blank=True)
    name = models.CharField(max_length=100)
    value = models.FloatField(null=True, blank=True)
    label = models.CharField(max_length=100, blank=True)
    passed = models.BooleanField(null=True, blank=True)
    explanation = models.TextField(blank=True)
    evidence = models.JSONField(default=dict, blank=True)
    evaluator = models.CharField(max_length=100, blank=True)
    evaluator_version = models.IntegerField(default=0)
    source = models.CharField(max_length=10, choices=ScoreSource.choices)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    comment = models.TextField(blank=True)
    # What producing this score cost (an LLM judge's own tokens), kept apart from the app's cost.
    cost = models.DecimalField(max_digits=20, decimal_places=10, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            # At-least-once scoring and retried API calls upsert on this key: never a duplicate.
            models.UniqueConstraint(fields=["project", "key"], name="score_unique_key"),
        ]
        indexes = [
            # Service page panels: one check's scores of a service in a time window.
            models.Index(fields=["project", "service", "name", "trace_start"], name="score_panel_idx"),
            # "Least grounded answers": walk one check's scores from the lowest value.
            models.Index(fields=["project", "service", "name", "value", "-trace_start"], name="score_value_idx"),
            # Failing scores only (a small share): runaway traces and other "what failed" lists.
            models.Index(
                fields=["project", "service", "name", "trace_start"],
                condition=models.Q(passed=False),
                name="score_failing_idx",
            ),
        ]


class EvaluatorConfig(models.Model):
    """Per project (service "") or per service: whether an evaluator runs, its params and sampling rate.

    Absent rows mean the evaluator's registry defaults, so a new project scores with sensible defaults.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="evaluator_configs")
    service = models.CharField(max_length=200, blank=True)
    evaluator = models.CharField(max_length=100)
    enabled = models.BooleanField(default=True)
    params = models.JSONField(default=dict, blank=True)
    sampling_rate = models.FloatField(default=1.0, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)])
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        constraints = [
            # One setting per evaluator for the project default and for each service.
            models.UniqueConstraint(fields=["project", "service", "evaluator"], name="evaluator_config_unique"),
        ]


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    CANCELLED = "cancelled", "Cancelled"
    FAILED = "failed", "Failed"


class EvalRun(models.Model):
    """A rescoring job over a service and time range: the row the UI and the CLI show progress from."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="eval_runs")
    service = models.CharField(max_length=200, blank=True)
    since = models.DateTimeField()
    until = models.DateTimeField()
    evaluators = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED)
    total = models.IntegerField(default=0)
    done = models.IntegerField(default=0)
    failed = models.IntegerField(default=0)
    # Keyset position of the next chunk: a run resumes where it stopped if a worker dies.
    cursor = models.BigIntegerField(default=0)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    @property
    def percent(self) -> int:
        return 100 if self.total == 0 and self.is_finished else int(100 * self.done / self.total) if self.total else 0

    @property
    def is_finished(self) -> bool:
        return self.status in (RunStatus.DONE, RunStatus.CANCELLED, RunStatus.FAILED)


class DriftRun(models.Model):
    """One drift analysis of a service: this window against a baseline window, every signal's verdict."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="drift_runs")
    service = models.CharField(max_length=200)
    baseline_since = models.DateTimeField()
    baseline_until = models.DateTimeField()
    current_since = models.DateTimeField()
    current_until = models.DateTimeField()
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED)
    trigger = models.CharField(max_length=10, default="schedule")  # "schedule" or "manual"
    # "drift" when any signal drifted, "no_drift", or "insufficient_data" when no signal had enough samples.
    verdict = models.CharField(max_length=20, blank=True)
    results = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # The latest run of each service (overview, drift page).
            models.Index(fields=["project", "service", "-created_at"], name="drift_latest_idx"),
        ]
