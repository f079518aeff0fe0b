"""Writes for projects, members and API keys."""

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from accounts.models import (
    DEFAULT_SCOPES,
    ApiKey,
    AuditEvent,
    LoginThrottle,
    Membership,
    Project,
    ProjectSecret,
    Role,
    Scope,
    SessionGeneration,
)
from accounts.vault import seal

SECRET_PREFIX = "sk-sre-"  # noqa: S105 (a prefix, not a secret)
PUBLIC_PREFIX = "pk-sre-"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# Who made a change: a signed-in user, a project key (API), or None for the system (manage.py, automation).
Actor = User | ApiKey | None


def actor_label(actor: Actor) -> str:
    if isinstance(actor, ApiKey):
        return f"API key {actor.public_key}"
    return actor.get_username() if actor is not None else "system"


def audit_record(
    *, project: Project | None, actor: Actor, action: str, target: str, details: dict[str, Any] | None = None
) -> AuditEvent:
    """Append one event to the audit log; called by the service that makes the change, inside its transaction."""
    return AuditEvent.objects.create(
        project=project, actor=actor_label(actor)[:200], action=action, target=target[:300], details=details or {}
    )


@dataclass(frozen=True)
class IssuedKey:
    api_key: ApiKey
    secret_key: str


def user_create(*, username: str, password: str, email: str = "", is_superuser: bool = False) -> User:
    user_model = get_user_model()
    if is_superuser:
        return user_model.objects.create_superuser(username=username, password=password, email=email)
    return user_model.objects.create_user(username=username, password=password, email=email)


@transaction.atomic
@transaction.atomic
def project_create(*, slug: str, name: str = "", owner: User | None = None) -> Project:
    project = Project(slug=slug, name=name or slug)
    project.full_clean()
    project.save()
    if owner is not None:
        Membership.objects.create(project=project, user=owner, role=Role.ADMIN)
    audit_record(project=project, actor=owner, action="project.create", target=slug, details={"name": project.name})
    return project


@transaction.atomic
def membership_set(*, project: Project, user: User, role: str, actor: Actor = None) -> Membership:
    previous = Membership.objects.filter(project=project, user=user).values_list("role", flat=True).first()
    membership, _ = Membership.objects.update_or_create(project=project, user=user, defaults={"role": role})
    if previous != role:
        action = "member.add" if previous is None else "member.role_change"
        audit_record(
            project=project,
            actor=actor,
            action=action,
            target=user.get_username(),
            details={"role": role, **({"previous_role": previous} if previous else {})},
        )
    return membership


@transaction.atomic
def api_key_issue(
    *, project: Project, name: str = "", created_by: User | None = None, scopes: Sequence[str] = DEFAULT_SCOPES
) -> IssuedKey:
    """A new key with ``scopes`` (ingest only by default: what an app embeds)."""
    unknown = set(scopes) - set(Scope.values)
    if unknown or not scopes:
        raise ValueError(f"Scopes must be a non-empty subset of {', '.join(Scope.values)}; got {sorted(scopes)}.")
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    api_key = ApiKey.objects.create(
        project=project,
        name=name,
        public_key=PUBLIC_PREFIX + secrets.token_hex(12),
        secret_hash=hash_secret(secret),
        secret_hint=secret[-4:],
        created_by=created_by,
        scopes=[s for s in Scope.values if s in scopes],
    )
    audit_record(
        project=project,
        actor=created_by,
        action="api_key.create",
        target=api_key.public_key,
        details={"name": name, "scopes": api_key.scopes},
    )
    return IssuedKey(api_key=api_key, secret_key=secret)


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey, actor: Actor = None) -> ApiKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
        audit_record(project=api_key.project, actor=actor, action="api_key.revoke", target=api_key.public_key)
    return api_key


@transaction.atomic
def project_secret_set(*, project: Project, name: str, value: str, user: User | None) -> ProjectSecret:
    """Create or replace the project's secret ``name``; only its sealed form is stored (the audit has no value)."""
    secret, _ = ProjectSecret.objects.update_or_create(
        project=project, name=name, defaults={"sealed": seal(value), "updated_by": user}
    )
    audit_record(project=project, actor=user, action="secret.set", target=name)
    return secret


@transaction.atomic
def project_secret_delete(*, project: Project, name: str, actor: Actor = None) -> bool:
    deleted, _ = ProjectSecret.objects.filter(project=project, name=name).delete()
    if deleted:
        audit_record(project=project, actor=actor, action="secret.delete", target=name)
    return deleted > 0


def _user_throttle_key(username: str) -> str:
    return f"user:{username.strip().lower()[:150]}"


def login_throttle_keys(*, username: str, ip: str) -> list[tuple[str, int]]:
    """The counters a sign-in attempt touches, each with its failure limit."""
    return [
        (_user_throttle_key(username), settings.SRE4AI_LOGIN_MAX_FAILURES),
        (f"ip:{ip}", settings.SRE4AI_LOGIN_MAX_FAILURES_PER_IP),
    ]


@transaction.atomic
def login_failure_record(*, username: str, ip: str, now: datetime) -> None:
    """Count a failed sign-in; a counter that reaches its limit within the lockout period locks its key."""
    period = timedelta(seconds=settings.SRE4AI_LOGIN_LOCKOUT_SECONDS)
    for key, limit in login_throttle_keys(username=username, ip=ip):
        row, _ = LoginThrottle.objects.select_for_update().get_or_create(key=key, defaults={"window_start": now})
        if now - row.window_start > period:
            row.failures, row.window_start = 0, now
        row.failures += 1
        if row.failures >= limit:
            row.failures, row.window_start, row.locked_until = 0, now, now + period
        row.save()


def login_success_record(*, username: str) -> None:
    """A correct password clears the account's count (not the address's: one good login must not reset a spray)."""
    LoginThrottle.objects.filter(key=_user_throttle_key(username)).delete()


def user_sessions_revoke(*, user: User) -> int:
    """Sign the user out of every session: the new generation no existing session carries."""
    with transaction.atomic():
        row, _ = SessionGeneration.objects.select_for_update().get_or_create(user=user)
        row.generation += 1
        row.save(update_fields=["generation"])
    return row.generation


@transaction.atomic
def project_redaction_set(*, project: Project, enabled: bool, actor: Actor = None) -> Project:
    """Turn PII redaction at ingest on or off; spans stored before keep their text as it was."""
    if project.redact_pii != enabled:
        project.redact_pii = enabled
        project.save(update_fields=["redact_pii"])
        audit_record(
            project=project, actor=actor, action="project.redact_pii", target=project.slug, details={"enabled": enabled}
        )
    return project


@transaction.atomic
def project_retention_set(*, project: Project, raw_days: int, aggregate_days: int, actor: Actor = None) -> Project:
    """Change how long the project keeps raw rows and aggregates; the next sweep (accounts.retention) applies it."""
    before = {"raw_days": project.raw_retention_days, "aggregate_days": project.aggregate_retention_days}
    after = {"raw_days": raw_days, "aggregate_days": aggregate_days}
    if before != after:
        project.raw_retention_days, project.aggregate_retention_days = raw_days, aggregate_days
        project.save(update_fields=["raw_retention_days", "aggregate_retention_days"])
        audit_record(
            project=project,
            actor=actor,
            action="project.retention",
            target=project.slug,
            details={"before": before, "after": after},
        )
    return project
