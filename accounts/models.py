from django.apps import apps
from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

SLUG_VALIDATOR = RegexValidator(
    r"^[a-z0-9][a-z0-9-]{0,62}$",
    "Use 1-63 lower-case letters, digits and dashes, starting with a letter or digit.",
)


class Project(models.Model):
    slug = models.CharField(max_length=63, unique=True, validators=[SLUG_VALIDATOR])
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    # E-mail addresses, phone, card and IBAN numbers and secrets in span texts are replaced by markers before they
    # are stored (traces.ingest.redact). Off by default: the evaluators then see the real text.
    redact_pii = models.BooleanField(default=False)
    # Retention (accounts.retention): spans, traces, documents, scores and other raw rows are removed this many
    # days after they started; rollups, which pages read for long ranges, after the second.
    raw_retention_days = models.PositiveSmallIntegerField(default=30)
    aggregate_retention_days = models.PositiveSmallIntegerField(default=400)

    class Meta:
        ordering = ["slug"]
        constraints = [
            # Aggregates outlive the raw rows they are computed from (accounts.forms.RetentionForm says why).
            models.CheckConstraint(
                condition=models.Q(
                    raw_retention_days__gte=1, aggregate_retention_days__gte=models.F("raw_retention_days")
                ),
                name="project_retention_order",
            ),
        ]

    def __str__(self) -> str:
        return self.slug


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer"
    EDITOR = "editor", "Editor"
    ADMIN = "admin", "Admin"


ROLE_RANK = {Role.VIEWER: 1, Role.EDITOR: 2, Role.ADMIN: 3}


class Membership(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER)

    class Meta:
        constraints = [
            # One role per user and project.
            models.UniqueConstraint(fields=["project", "user"], name="membership_unique_user"),
        ]

    def allows(self, needed: str) -> bool:
        return ROLE_RANK[Role(self.role)] >= ROLE_RANK[Role(needed)]


class Scope(models.TextChoices):
    """What an API key may do. A new app key gets only INGEST: the key an app embeds can write, not read back
    prompts and answers, and cannot silence alerting."""

    INGEST = "ingest", "ingest: send traces, logs and scores"
    READ = "read", "read: trace API, canary, SLO reads and /metrics"
    MANAGE = "manage", "manage: define, change and delete SLOs through the API"
    GUARD = "guard", "guard: ask the guard API to allow, block or redact (docs/guard.md)"


DEFAULT_SCOPES = [Scope.INGEST.value]


def default_scopes() -> list[str]:
    return list(DEFAULT_SCOPES)


class ApiKey(models.Model):
    """A project key pair. Only a hash of the secret is stored; the secret is shown once."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, blank=True)
    public_key = models.CharField(max_length=64, unique=True)
    # SHA-256 of the secret: the secret is 32 random bytes, so a fast hash is enough and keeps ingest cheap.
    secret_hash = models.CharField(max_length=64, unique=True)
    secret_hint = models.CharField(max_length=12)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    # Scope values (a list, so SQLite for `make run` stores it too); checked on every API endpoint.
    scopes = models.JSONField(default=default_scopes)

    class Meta:
        ordering = ["-created_at"]

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def allows(self, scope: str) -> bool:
        return scope in self.scopes


SECRET_NAME_VALIDATOR = RegexValidator(
    r"^[A-Za-z_][A-Za-z0-9_]{0,99}$",
    "Use letters, digits and underscores, not starting with a digit (e.g. OPENAI_API_KEY).",
)


class ProjectSecret(models.Model):
    """A named secret that outbound calls use (a probe's header ``Bearer ${APP_TOKEN}``, a model key): set by
    admins, never shown back to anyone, stored encrypted (accounts.vault) and decrypted only for the call."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="secrets")
    name = models.CharField(max_length=100, validators=[SECRET_NAME_VALIDATOR])
    sealed = models.TextField()  # Fernet token of the value
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="project_secret_unique_name")]


class LoginThrottle(models.Model):
    """Failed sign-ins counted per username and per client address (``key`` = "user:alice" / "ip:10.0.0.1");
    at the limit the key is locked for a while. In the database so every web process sees the same count."""

    key = models.CharField(max_length=200, unique=True)
    failures = models.PositiveIntegerField(default=0)
    window_start = models.DateTimeField()
    locked_until = models.DateTimeField(null=True, blank=True)


class SessionGeneration(models.Model):
    """Bumped by "log out everywhere": a session stamped with an older generation is signed out on its next
    request (sre4ai_web.middleware.SessionGenerationMiddleware). No row means generation 0."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True)
    generation = models.PositiveIntegerField(default=0)


class AuditEvent(models.Model):
    """Who changed what, and when: written by the services that make the change, in the same transaction; shown to
    a project's admins. Append-only: no code updates or deletes a row, and on PostgreSQL a trigger refuses it
    (migration 0007). Project and actor are kept as plain values, so the record outlives them."""

    project = models.ForeignKey(Project, null=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+")
    at = models.DateTimeField(default=timezone.now)
    actor = models.CharField(max_length=200)  # "alice", "API key pk-sre-…", "system"
    action = models.CharField(max_length=50)  # "api_key.create", "slo.delete", ...
    target = models.CharField(max_length=300)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        # The audit page: one project's events, newest first.
        indexes = [models.Index(fields=["project", "-at"], name="audit_project_at")]


class RemovalKind(models.TextChoices):
    RAW = "raw", "Raw data"
    AGGREGATE = "aggregate", "Aggregates"


class DataRemoval(models.Model):
    """What retention removed from one table of one project on one UTC day (accounts.retention): the rows and the
    range of their times. A day's sweeps add up in one row, so the record stays small however often beat runs."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    table = models.CharField(max_length=100)  # a model label, e.g. "traces.Span"
    kind = models.CharField(max_length=10, choices=RemovalKind.choices)
    oldest = models.DateTimeField()  # earliest time (start, bucket, minute) among the rows removed
    newest = models.DateTimeField()  # latest one: below the cutoff of the sweep
    rows = models.BigIntegerField(default=0)
    # Rows of a partition dropped whole are estimated from its statistics (sre4ai_web.lib.partitions._per_project).
    estimated = models.BooleanField(default=False)
    first_at = models.DateTimeField()  # the day's first and last sweep that removed some of these rows
    last_at = models.DateTimeField()

    class Meta:
        constraints = [
            # One row per project, day and table, added to by each sweep of the day; it also serves the page.
            models.UniqueConstraint(fields=["project", "day", "table"], name="data_removal_unique_day"),
        ]

    @property
    def table_name(self) -> str:
        """What the rows were, e.g. "span rows" for traces.Span."""
        try:
            return f"{apps.get_model(self.table)._meta.verbose_name} rows"
        except (LookupError, ValueError):  # a model removed since
            return self.table
