from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Exists, OuterRef
from django.utils import timezone

from accounts.models import Project
from evals.evaluators.registry import REGISTRY
from sre4ai_web.lib.bounds import SCORE_VALUE_LIMIT
from sre4ai_web.lib.claims import Job
from traces.models import Span, Trace


class ScoreSource(models.TextChoices):
    EVALUATOR = "evaluator", "Evaluator"
    HUMAN = "human", "Human"
    API = "api", "API"
    PROBE = "probe", "Probe"
    # A gen_ai.evaluation.result event the app sent over OTLP (/v1/logs or a span event on /v1/traces).
    APP = "app", "App (OpenTelemetry)"


def score_value_in_range(value: float) -> bool:
    """Within ±SCORE_VALUE_LIMIT: every entry point checks it (API, Langfuse API, evaluator results, app scores over
    OTLP); rollups skip any older row outside it. False for NaN and ±inf too; an int too large for a float compares
    without converting."""
    return abs(value) <= SCORE_VALUE_LIMIT


class ScoreQuerySet(models.QuerySet["Score"]):
    def current(self, *, starts: tuple[datetime | None, datetime | None] | None = None) -> ScoreQuerySet:
        """The scores that count, for every reader (pages, API, rollups, SLIs, drift, canary): every human, API and
        probe score, and of evaluator scores only the newest evaluator version per trace, name and evaluator. A
        rescore with a new version supersedes the older rows (``superseded``, set as they are written); they are
        kept until the trace is deleted.

        ``starts``: only scores whose trace started in this range (inclusive; None leaves that end open), which on
        PostgreSQL reads only the partitions of that range."""
        rows = self.filter(superseded=False)
        if starts is not None:
            bounds = {"trace_start__gte": starts[0], "trace_start__lte": starts[1]}
            rows = rows.filter(**{lookup: bound for lookup, bound in bounds.items() if bound is not None})
        return rows

    def superseded_now(self, *, starts: tuple[datetime, datetime] | None = None) -> ScoreQuerySet:
        """Of these rows, the evaluator rows not yet marked superseded that a newer version of the same evaluator,
        trace and name has replaced: what ``evals.services.scores_upsert`` marks after each write. ``starts``: a
        range that holds the trace starts of these rows and of their newer versions (fewer partitions to search)."""
        newer = Score.objects.filter(
            trace=OuterRef("trace"),
            name=OuterRef("name"),
            evaluator=OuterRef("evaluator"),
            source=ScoreSource.EVALUATOR,
            evaluator_version__gt=OuterRef("evaluator_version"),
        )
        rows = self.filter(source=ScoreSource.EVALUATOR, superseded=False)
        if starts is not None:
            newer = newer.filter(trace_start__range=starts)
            rows = rows.filter(trace_start__range=starts)
        return rows.filter(Exists(newer))


class Score(models.Model):
    """A judgement on a trace or one of its spans: from an evaluator, a person, an app (API) or a probe."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    # Scores are partitioned by ``trace_start`` on PostgreSQL like traces (traces.models.Trace): no database
    # constraint on these keys, and there the unique key is (project, key, trace_start) (services.scores_upsert).
    trace = models.ForeignKey(Trace, on_delete=models.CASCADE, related_name="scores", db_constraint=False)
    span = models.ForeignKey(
        Span, on_delete=models.CASCADE, null=True, blank=True, related_name="scores", db_constraint=False
    )
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
    # An evaluator row a newer version of its evaluator replaced (ScoreQuerySet.current leaves it out). Kept on the
    # row rather than looked up per read: that lookup was most of the time of every score filter and count.
    superseded = models.BooleanField(default=False)

    objects = ScoreQuerySet.as_manager()

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
            # The trace list sorted by a score: walk one check's values in order, ties by trace, every service.
            models.Index(fields=["project", "name", "value", "trace"], name="score_rank_idx"),
            # Failing scores only (a small share): runaway traces and other "what failed" lists.
            models.Index(
                fields=["project", "service", "name", "trace_start"],
                condition=models.Q(passed=False),
                name="score_failing_idx",
            ),
        ]

    @property
    def summary(self) -> str:
        """What the score says in a few words, with its unit (an evaluator's own wording for its scores)."""
        evaluator = REGISTRY.get(self.evaluator) if self.source == ScoreSource.EVALUATOR else None
        if evaluator is not None:
            return evaluator.summary(self.value, self.passed, self.label, self.evidence or {})
        shown = [f"{self.value:g}" if self.value is not None else "", self.label.replace("_", " ")]
        return " ".join(part for part in shown if part)


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


class JobRun(Job):
    """A background job's row (rescoring, drift and probe runs): the UI shows its state from here, and evals.jobs
    fails, cancels and runs every kind the same way. Each is claimed by the task that runs it
    (sre4ai_web.lib.claims), so a redelivered message never runs it twice at once."""

    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    @property
    def is_finished(self) -> bool:
        return self.status in (RunStatus.DONE, RunStatus.CANCELLED, RunStatus.FAILED)


class CountedJobRun(JobRun):
    """A job over a known number of units (traces, dataset items), with its progress."""

    total = models.IntegerField(default=0)
    done = models.IntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    @property
    def percent(self) -> int:
        return 100 if self.total == 0 and self.is_finished else int(100 * self.done / self.total) if self.total else 0


class EvalRun(CountedJobRun):
    """A rescoring job over a service and time range: the row the UI and the CLI show progress from."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="eval_runs")
    service = models.CharField(max_length=200, blank=True)
    since = models.DateTimeField()
    until = models.DateTimeField()
    evaluators = models.JSONField(default=list, blank=True)
    failed = models.IntegerField(default=0)
    # Keyset position of the next chunk: a run resumes where it stopped if a worker dies.
    cursor = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]


class DriftRun(JobRun):
    """One drift analysis of a service: this window against a baseline window, every signal's verdict."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="drift_runs")
    service = models.CharField(max_length=200)
    baseline_since = models.DateTimeField()
    baseline_until = models.DateTimeField()
    current_since = models.DateTimeField()
    current_until = models.DateTimeField()
    trigger = models.CharField(max_length=10, default="schedule")  # "schedule" or "manual"
    # "drift" when any signal drifted, "no_drift", or "insufficient_data" when no signal had enough samples.
    verdict = models.CharField(max_length=20, blank=True)
    results = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # The latest run of each service (overview, drift page).
            models.Index(fields=["project", "service", "-created_at"], name="drift_latest_idx"),
        ]


class Dataset(models.Model):
    """A golden dataset: questions whose right answers are known, asked again and again by probes."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="datasets")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            # Datasets are picked by name in forms and exports.
            models.UniqueConstraint(fields=["project", "name"], name="dataset_unique_name"),
        ]

    def __str__(self) -> str:
        return self.name  # how forms list the datasets to choose from


class DatasetItem(models.Model):
    """One golden item. ``input`` is a string or a list of chat messages ``[{"role", "content"}]``."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="items")
    input = models.JSONField()
    expected = models.TextField(blank=True)
    context = models.JSONField(default=list, blank=True)  # documents (strings) the answer should rely on
    tags = models.JSONField(default=list, blank=True)
    source_trace_id = models.CharField(max_length=32, blank=True)  # the trace it was added from, if any
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]

    @property
    def is_chat(self) -> bool:
        return isinstance(self.input, list)


class ProbeTargetKind(models.TextChoices):
    HTTP = "http_endpoint", "HTTP endpoint of the app"
    OPENAI = "openai_chat", "OpenAI-compatible chat completions"


class Probe(models.Model):
    """Runs a dataset against a target every N minutes, on a cron expression, or only on demand."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="probes")
    name = models.CharField(max_length=200)
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="probes")
    # The traces of a run are recorded as this service's, in this environment, tagged "probe".
    service = models.CharField(max_length=200)
    environment = models.CharField(max_length=64, default="probe")
    target_kind = models.CharField(max_length=20, choices=ProbeTargetKind.choices)
    # The target's pydantic config (evals.probes). Secrets are ``${NAME}`` references to project secrets, never values.
    target_config = models.JSONField(default=dict)
    evaluators = models.JSONField(default=list)  # evaluator names; params come from the service's settings
    interval_minutes = models.PositiveIntegerField(null=True, blank=True)
    cron = models.CharField(max_length=100, blank=True)
    enabled = models.BooleanField(default=True)
    # The next scheduled start; beat claims it by moving it forward with a conditional update.
    next_run_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="probe_unique_name"),
        ]
        indexes = [
            # Beat, every minute: the enabled probes that are due.
            models.Index(fields=["next_run_at"], condition=models.Q(enabled=True), name="probe_due_idx"),
        ]


class ProbeRun(CountedJobRun):
    """One run of a probe over every item of its dataset: the job row the probe page shows progress from."""

    probe = models.ForeignKey(Probe, on_delete=models.CASCADE, related_name="runs")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    trigger = models.CharField(max_length=10, default="manual")  # "schedule" or "manual"
    scheduled_for = models.DateTimeField(null=True, blank=True)
    passed = models.IntegerField(default=0)
    errors = models.IntegerField(default=0)  # items whose target call failed (timeout, bad response)
    changed = models.IntegerField(default=0)  # items whose answer differs from the previous run's
    flipped = models.IntegerField(default=0)  # items whose verdict differs from the previous run's
    latency_ms_total = models.FloatField(default=0.0)
    cost = models.DecimalField(max_digits=20, decimal_places=10, null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            # Two beats (or a redelivered beat message) can never start the same scheduled slot twice.
            models.UniqueConstraint(fields=["probe", "scheduled_for"], name="probe_run_unique_slot"),
        ]
        indexes = [
            # Run history of a probe, newest first.
            models.Index(fields=["probe", "-created_at"], name="probe_run_history_idx"),
        ]

    @property
    def pass_rate(self) -> float | None:
        return self.passed / self.done if self.done else None

    @property
    def latency_ms_avg(self) -> float | None:
        return self.latency_ms_total / self.done if self.done else None


class ProbeResult(models.Model):
    """One item of one run: the answer, its verdict, and how it compares with the previous run's."""

    run = models.ForeignKey(ProbeRun, on_delete=models.CASCADE, related_name="results")
    item = models.ForeignKey(DatasetItem, on_delete=models.SET_NULL, null=True, related_name="+")
    # Traces are partitioned on PostgreSQL (no database constraint to them); a dropped partition's traces are
    # unset here by evals.retention.
    trace = models.ForeignKey(
        Trace, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_constraint=False
    )
    question = models.TextField(blank=True)  # the item's input as text, kept if the item is edited later
    expected = models.TextField(blank=True)
    answer = models.TextField(blank=True)
    error = models.TextField(blank=True)
    passed = models.BooleanField(default=False)
    scores = models.JSONField(default=dict, blank=True)  # evaluator → {passed, value, explanation}
    latency_ms = models.FloatField(default=0.0)
    cost = models.DecimalField(max_digits=20, decimal_places=10, null=True, blank=True)
    has_previous = models.BooleanField(default=False)
    previous_answer = models.TextField(blank=True)
    previous_passed = models.BooleanField(null=True, blank=True)
    answer_changed = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]
        constraints = [
            # A run resumed after a worker died re-does an item at most once.
            models.UniqueConstraint(fields=["run", "item"], name="probe_result_unique_item"),
        ]

    @property
    def flipped(self) -> bool:
        return self.previous_passed is not None and self.previous_passed != self.passed


class PendingEvaluation(models.Model):
    """A gen_ai.evaluation.result event whose evaluated span has not arrived yet: applied (and deleted) when it
    does. The span is named by its trace and span ids, or by ``gen_ai.response.id`` alone (then both ids are "")."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    trace_id = models.CharField(max_length=32, blank=True)
    span_id = models.CharField(max_length=16, blank=True)
    response_id = models.CharField(max_length=200, blank=True)
    name = models.CharField(max_length=100)
    value = models.FloatField(null=True, blank=True)
    label = models.CharField(max_length=100, blank=True)
    explanation = models.TextField(blank=True)
    error_type = models.CharField(max_length=100, blank=True)
    # When it first came: an event whose span never arrives is removed with the project's raw data.
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            # A re-sent event replaces the kept one (the same identity as its score's key).
            models.UniqueConstraint(
                fields=["project", "trace_id", "span_id", "response_id", "name"], name="pending_evaluation_unique"
            ),
        ]
        indexes = [
            # Span ingest: the events waiting for the batch's spans, by ids and by response id.
            models.Index(fields=["project", "trace_id", "span_id"], name="pending_eval_span_idx"),
            models.Index(fields=["project", "response_id"], name="pending_eval_response_idx"),
            # Retention: a project's oldest waiting events first (accounts.retention).
            models.Index(fields=["project", "received_at"], name="pending_eval_received_idx"),
        ]


class ScoreExportCounter(models.Model):
    """Scores sent to (and dropped by failure of) the OpenTelemetry exporter, per project: /metrics reads it."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="+")
    sent = models.BigIntegerField(default=0)
    failed = models.BigIntegerField(default=0)


class ExportProtocol(models.TextChoices):
    PROTOBUF = "http/protobuf", "OTLP/HTTP, protobuf"
    JSON = "http/json", "OTLP/HTTP, JSON"


class ScoreExportTarget(models.Model):
    """The project's own OpenTelemetry collector for its built-in scores (evals.otel_export), set by an admin in
    Settings. It overrides the server's default (SRE4AI_OTEL_EXPORT_*); an empty endpoint turns export off for the
    project. Without a row the server's default applies."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="+")
    endpoint = models.CharField(max_length=2000, blank=True)
    protocol = models.CharField(max_length=20, choices=ExportProtocol.choices, default=ExportProtocol.PROTOBUF)
    # The headers as a JSON object, sealed (accounts.vault): their values never leave the server again. The names
    # are not secret and are shown.
    headers_sealed = models.TextField(blank=True)
    header_names = models.JSONField(default=list)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    # The last "Send test": asked for when, answered when, and what came back.
    test_requested_at = models.DateTimeField(null=True, blank=True)
    test_finished_at = models.DateTimeField(null=True, blank=True)
    test_ok = models.BooleanField(null=True)
    test_result = models.CharField(max_length=500, blank=True)
