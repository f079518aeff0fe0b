from django.conf import settings
from django.db import models
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Coalesce

from accounts.models import Project
from sre4ai_web.lib.claims import Job


class SpanKind(models.TextChoices):
    LLM = "llm", "LLM"
    EMBEDDING = "embedding", "Embedding"
    RETRIEVER = "retriever", "Retrieval"
    RERANKER = "reranker", "Reranker"
    TOOL = "tool", "Tool"
    AGENT = "agent", "Agent"
    CHAIN = "chain", "Chain"
    WORKFLOW = "workflow", "Workflow"
    GUARDRAIL = "guardrail", "Guardrail"
    EVALUATOR = "evaluator", "Evaluator"
    PROMPT = "prompt", "Prompt"
    MEMORY = "memory", "Memory"
    EVENT = "event", "Event"
    SPAN = "span", "Span"


class Status(models.TextChoices):
    OK = "ok", "OK"
    ERROR = "error", "Error"


class CostSource(models.TextChoices):
    REPORTED = "reported", "Reported by the app"
    COMPUTED = "computed", "Computed from tokens × price table"
    UNPRICED = "unpriced", "Model not in the price table"
    NONE = "", "No usage reported"


class Trace(models.Model):
    """One request through an LLM app. Every column is derived from its spans (see services).

    On PostgreSQL traces, spans and retrieved documents are partitioned by day on their start time
    (sre4ai_web.lib.partitions): there the primary key and unique constraints end with ``start_time``, and the
    foreign keys between them are not database constraints (an id alone is not unique in a partitioned table);
    ingest keeps them consistent under its per-trace locks, and Django cascades deletes itself.
    """

    # No single-column index: the unique (project, trace_id) constraint serves project lookups.
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="traces", db_index=False)
    trace_id = models.CharField(max_length=32)
    service = models.CharField(max_length=200, blank=True)
    environment = models.CharField(max_length=64, default="default")
    name = models.CharField(max_length=500, blank=True)
    start_time = models.DateTimeField()
    end_time = models.DateTimeField()
    duration_ms = models.FloatField(default=0)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OK)
    span_count = models.IntegerField(default=0)
    error_count = models.IntegerField(default=0)
    model_names = models.JSONField(default=list, blank=True)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    total_tokens = models.BigIntegerField(default=0)
    cost = models.DecimalField(max_digits=20, decimal_places=10, null=True, blank=True)
    # True when at least one span had usage for a model missing from the price table: the cost is a floor.
    has_unpriced = models.BooleanField(default=False)
    session_id = models.CharField(max_length=200, blank=True)
    user_id = models.CharField(max_length=200, blank=True)
    release = models.CharField(max_length=200, blank=True)
    tags = models.JSONField(default=list, blank=True)
    root_span_id = models.CharField(max_length=16, blank=True)
    input_preview = models.CharField(max_length=500, blank=True)
    output_preview = models.CharField(max_length=500, blank=True)
    # Capped flattened root input/output text, the target of the list's text search.
    search_text = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            # Re-sent spans update their trace; a trace id is unique within a project.
            models.UniqueConstraint(fields=["project", "trace_id"], name="trace_unique_id"),
        ]
        indexes = [
            # The trace list: newest first, keyset on (start_time, id).
            models.Index(fields=["project", "-start_time", "-id"], name="trace_list_idx"),
            # Errors only (about 1% of traces): the list filtered by status=error and its count, which would
            # otherwise read every trace of the project to find fewer than 10,000 errors.
            models.Index(
                fields=["project", "-start_time", "-id"], condition=models.Q(status="error"), name="trace_error_idx"
            ),
            # The list filtered by service (the most common filter, also for service pages).
            models.Index(fields=["project", "service", "-start_time", "-id"], name="trace_service_idx"),
            # Slow-trace hunting: minimum latency filter, and the list sorted by latency (keyset on duration, id).
            models.Index(fields=["project", "duration_ms", "id"], name="trace_latency_sort_idx"),
            # The list sorted by cost (a trace without a cost sorts as $0, see selectors.COST_SORT).
            models.Index(
                "project",
                Coalesce("cost", models.Value(0), output_field=models.DecimalField(max_digits=20, decimal_places=10)),
                "id",
                name="trace_cost_sort_idx",
            ),
            # The list sorted by tokens.
            models.Index(fields=["project", "total_tokens", "id"], name="trace_tokens_sort_idx"),
            # The most expensive traces of a service (service page), walked from the top; the id breaks ties in
            # the index, as the page orders them: without it, a cost shared by many traces was sorted in memory.
            models.Index(fields=["project", "service", "-cost", "-id"], name="trace_cost_idx"),
            # Sessions group traces of one conversation.
            models.Index(fields=["project", "session_id"], name="trace_session_idx"),
            # The user page: one end user's traces.
            models.Index(fields=["project", "user_id"], name="trace_user_idx"),
        ]

    def __str__(self) -> str:
        return self.trace_id


class Span(models.Model):
    """One operation in a trace, with normalised columns and the raw OTLP data kept beside them."""

    # Both foreign keys lead composite indexes below (and the unique constraint), so their own single-column
    # indexes would only slow every insert down.
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+", db_index=False)
    trace = models.ForeignKey(
        Trace, on_delete=models.CASCADE, related_name="spans", db_index=False, db_constraint=False
    )
    span_id = models.CharField(max_length=16)
    parent_span_id = models.CharField(max_length=16, blank=True)
    name = models.CharField(max_length=500, blank=True)
    kind = models.CharField(max_length=16, choices=SpanKind.choices, default=SpanKind.SPAN)
    start_time = models.DateTimeField()
    end_time = models.DateTimeField()
    duration_ms = models.FloatField(default=0)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OK)
    status_message = models.TextField(blank=True)
    service = models.CharField(max_length=200, blank=True)
    environment = models.CharField(max_length=64, blank=True)
    release = models.CharField(max_length=200, blank=True)
    session_id = models.CharField(max_length=200, blank=True)
    user_id = models.CharField(max_length=200, blank=True)
    tags = models.JSONField(default=list, blank=True)
    trace_name = models.CharField(max_length=500, blank=True)
    model = models.CharField(max_length=200, blank=True)
    request_model = models.CharField(max_length=200, blank=True)
    provider = models.CharField(max_length=100, blank=True)
    input_tokens = models.BigIntegerField(null=True, blank=True)
    output_tokens = models.BigIntegerField(null=True, blank=True)
    total_tokens = models.BigIntegerField(null=True, blank=True)
    cache_read_tokens = models.BigIntegerField(null=True, blank=True)
    cache_write_tokens = models.BigIntegerField(null=True, blank=True)
    cost = models.DecimalField(max_digits=20, decimal_places=10, null=True, blank=True)
    cost_source = models.CharField(max_length=10, choices=CostSource.choices, blank=True)
    prompt_name = models.CharField(max_length=200, blank=True)
    prompt_version = models.CharField(max_length=100, blank=True)
    tool_name = models.CharField(max_length=200, blank=True)
    tool_args = models.JSONField(null=True, blank=True)
    tool_result = models.JSONField(null=True, blank=True)
    input = models.JSONField(null=True, blank=True)
    output = models.JSONField(null=True, blank=True)
    input_preview = models.CharField(max_length=500, blank=True)
    output_preview = models.CharField(max_length=500, blank=True)
    model_parameters = models.JSONField(null=True, blank=True)
    finish_reason = models.CharField(max_length=64, blank=True)
    completion_start_time = models.DateTimeField(null=True, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    resource = models.JSONField(default=dict, blank=True)
    scope = models.JSONField(default=dict, blank=True)
    events = models.JSONField(default=list, blank=True)
    otlp_kind = models.SmallIntegerField(default=0)
    otlp_status_code = models.SmallIntegerField(default=0)
    source = models.CharField(max_length=8, default="otlp")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            # Idempotent ingest: the same span re-sent updates this row.
            models.UniqueConstraint(fields=["trace", "span_id"], name="span_unique_id"),
        ]
        indexes = [
            # Model filter on the trace list and per-model breakdowns.
            models.Index(fields=["project", "model", "trace"], name="span_model_idx"),
            # An evaluation event that names its span only by gen_ai.response.id (traces.services); partial, so
            # spans without one (most of them) cost nothing more at insert.
            models.Index(
                "project",
                KeyTextTransform("gen_ai.response.id", "attributes"),
                condition=models.Q(attributes__has_key="gen_ai.response.id"),
                name="span_response_id_idx",
            ),
        ]


class RetrievedDocument(models.Model):
    """A document a retriever or reranker returned, in rank order: queryable by id and content."""

    span = models.ForeignKey(
        Span, on_delete=models.CASCADE, related_name="documents", db_index=False, db_constraint=False
    )
    # Its span's start time: the partition key on PostgreSQL, so a day's documents go with that day's spans.
    # Documents stored before there was this column have 1970-01-01 (they are in the legacy partition).
    start_time = models.DateTimeField()
    position = models.IntegerField()
    document_id = models.CharField(max_length=500, blank=True)
    score = models.FloatField(null=True, blank=True)
    content = models.TextField(blank=True)
    metadata = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["span", "position"]
        constraints = [
            # Re-ingest replaces the documents of a span; one row per rank.
            models.UniqueConstraint(fields=["span", "position"], name="document_unique_position"),
        ]
        indexes = [
            # Find every retrieval of one source document.
            models.Index(fields=["document_id"], name="document_id_idx"),
        ]


class PendingLogEvent(models.Model):
    """A gen_ai log record (/v1/logs) kept for its span: applied when the span is (re)normalised.

    Logs and spans arrive independently, so a log may come before its span; keeping it here makes the
    result the same in either order.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    trace_id = models.CharField(max_length=32)
    span_id = models.CharField(max_length=16)
    # Hash of the record's content so a re-sent batch of logs does not duplicate messages.
    fingerprint = models.CharField(max_length=64)
    time_unix_nano = models.BigIntegerField()
    name = models.CharField(max_length=200)
    body = models.JSONField(null=True, blank=True)
    attributes = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "trace_id", "span_id", "fingerprint"], name="log_unique"),
        ]
        indexes = [
            # Lookup of a span's log events at span ingest.
            models.Index(fields=["project", "trace_id", "span_id"], name="log_span_idx"),
            # Retention: a project's oldest events first (accounts.retention), whether or not their span came.
            models.Index(fields=["project", "time_unix_nano"], name="log_time_idx"),
        ]


class FollowupOutbox(Job):
    """Follow-up work of an ingest (a scoring task and its traces), written in the ingest's transaction; scoring
    writes the judge's when the judge is on.

    The row stays until its task has done the work: the task claims it first (sre4ai_web.lib.claims), so two
    copies of the message never both run it, and deletes it when done. Beat (traces.tasks.followups_requeue)
    queues again the rows whose publish failed (the broker was down, the server died between commit and publish),
    whose message the broker lost, or whose worker died mid-task. Scores are upserted, so a trace scored twice
    in a race still has one score per evaluator.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    task_name = models.CharField(max_length=200)
    # The traces still to do: the judge removes each one as its scores commit, so a retry asks only the rest.
    trace_pks = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)


# Columns of the trace list a person can hide; the start time and name always show (they open the trace).
LIST_COLUMN_CHOICES = (
    ("service", "Service"),
    ("environment", "Env"),
    ("duration", "Duration"),
    ("status", "Status"),
    ("scores", "Scores"),
    ("models", "Model(s)"),
    ("tokens", "Tokens"),
    ("cost", "Cost"),
    ("session", "Session"),
    ("user", "User"),
    ("release", "Release"),
    ("io", "Input → output"),
)
DEFAULT_LIST_COLUMNS = ["service", "duration", "status", "scores", "models", "tokens", "cost", "io"]


class ListPreference(models.Model):
    """The trace-list columns one person chose in one project."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    columns = models.JSONField(default=list)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            # One choice per person and project, upserted when it changes.
            models.UniqueConstraint(fields=["user", "project"], name="list_preference_unique"),
        ]


class SavedView(models.Model):
    """A named set of trace-list filters (and sort), shared by the project's members."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="saved_views", db_index=False)
    name = models.CharField(max_length=100)
    # The list's query string without the cursor, as validated by the filter form when saved.
    query = models.CharField(max_length=2000)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            # Views are picked by name above the list; the unique constraint also serves the project lookup.
            models.UniqueConstraint(fields=["project", "name"], name="saved_view_unique_name"),
        ]

    def __str__(self) -> str:
        return self.name


class DirtyBucket(models.Model):
    """The change log of trace minutes: a minute whose traces or scores changed since the layers that sum them
    (rollups, SLIs) last read it, late data included. Writers of traces and scores mark it in their transaction
    (services.minutes_mark_dirty); the rollup beat claims and clears it."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    minute = models.DateTimeField()
    marked_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "rollups_dirtybucket"  # kept from when rollups owned it: no data moved
        constraints = [
            # Marking is an idempotent insert: many writers, one row per minute.
            models.UniqueConstraint(fields=["project", "minute"], name="dirty_bucket_unique"),
        ]
