"""Reads for projects, members and keys; every project read is scoped to the user's memberships."""

import math
import os
from datetime import datetime

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Max, QuerySet
from django.http import Http404

from accounts import menus
from accounts.models import (
    ApiKey,
    AuditEvent,
    DataRemoval,
    LoginThrottle,
    Membership,
    Project,
    ProjectSecret,
    SessionGeneration,
)
from accounts.services import hash_secret, login_throttle_keys
from accounts.vault import unseal
from sre4ai_web.lib.ttl_cache import TTLCache


def projects_for_user(*, user: User | AnonymousUser) -> QuerySet[Project]:
    if not user.is_authenticated:
        return Project.objects.none()
    return Project.objects.filter(memberships__user=user).order_by("slug")


def membership_for(*, user: User | AnonymousUser, slug: str) -> Membership:
    """The user's membership in the project, or 404 (a non-member cannot tell the project exists)."""
    if not user.is_authenticated:
        raise Http404("No such project.")
    membership = Membership.objects.select_related("project").filter(user=user, project__slug=slug).first()
    if membership is None:
        raise Http404("No such project.")
    return membership


def api_key_by_secret(*, secret: str) -> ApiKey | None:
    return ApiKey.objects.select_related("project").filter(secret_hash=hash_secret(secret)).first()


# Keys by secret hash for the guard call, which answers in the app's request path (docs/guard.md): a key created,
# revoked or changed in this process applies at once (accounts.apps discards the entry on save); one changed in
# another process within SRE4AI_GUARD_CACHE_SECONDS. Unknown secrets are remembered too, so a flood of wrong keys
# does not reach the database.
API_KEY_CACHE: TTLCache[str, ApiKey | None] = TTLCache(settings.SRE4AI_GUARD_CACHE_SECONDS)


def api_key_by_secret_cached(*, secret: str) -> ApiKey | None:
    digest = hash_secret(secret)
    return API_KEY_CACHE.get_or_load(
        digest, lambda: ApiKey.objects.select_related("project").filter(secret_hash=digest).first()
    )


def api_keys_for_project(*, project: Project) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(project=project).select_related("created_by")


def members_of(*, project: Project) -> QuerySet[Membership]:
    return Membership.objects.filter(project=project).select_related("user").order_by("user__username")


def project_secrets(*, project: Project) -> QuerySet[ProjectSecret]:
    """Names and who set them; the sealed values are not even loaded."""
    return ProjectSecret.objects.filter(project=project).select_related("updated_by").defer("sealed")


class SecretUnavailable(LookupError):
    """A ${NAME} that cannot be resolved; the message says what to do."""


def env_secret(name: str) -> str:
    """An environment variable of the workers, only if the operator listed its name in SRE4AI_OUTBOUND_ENV_ALLOW:
    a user's configuration must never be able to send the server's own secrets (SECRET_KEY, database URLs)."""
    if name not in settings.SRE4AI_OUTBOUND_ENV_ALLOW:
        raise SecretUnavailable(
            f"{name} is not an environment variable the operator allows for outbound calls (SRE4AI_OUTBOUND_ENV_ALLOW)"
        )
    value = os.environ.get(name)
    if value is None:
        raise SecretUnavailable(f"environment variable {name} is not set where the call runs")
    return value


def secret_value(*, project_id: int, name: str) -> str:
    """What ``${NAME}`` means in the project's outbound calls: the project's secret of that name, else an allowed
    environment variable (:func:`env_secret`). Raises SecretUnavailable saying which is missing."""
    sealed = ProjectSecret.objects.filter(project_id=project_id, name=name).values_list("sealed", flat=True).first()
    if sealed is not None:
        try:
            return unseal(sealed)
        except ValueError as exc:
            raise SecretUnavailable(
                f"the project secret {name} cannot be decrypted ({exc}): an admin must set it again in {menus.SECRETS}"
            ) from None
    try:
        return env_secret(name)
    except SecretUnavailable:
        raise SecretUnavailable(
            f"no project secret named {name}: an admin sets it in {menus.SECRETS} (the server's environment "
            "variables are used only when the operator allows them in SRE4AI_OUTBOUND_ENV_ALLOW)"
        ) from None


def login_lockout_seconds(*, username: str, ip: str, now: datetime) -> int:
    """Seconds until this username and address may try again (0: not locked)."""
    keys = [key for key, _ in login_throttle_keys(username=username, ip=ip)]
    until = LoginThrottle.objects.filter(key__in=keys, locked_until__gt=now).aggregate(m=Max("locked_until"))["m"]
    return 0 if until is None else math.ceil((until - now).total_seconds())


def session_generation(*, user_id: int) -> int:
    return SessionGeneration.objects.filter(user_id=user_id).values_list("generation", flat=True).first() or 0


def audit_events(*, project: Project) -> QuerySet[AuditEvent]:
    """The project's audit log, newest first (index audit_project_at)."""
    return AuditEvent.objects.filter(project=project).order_by("-at", "-pk")


def data_removals(*, project: Project, limit: int = 60) -> list[DataRemoval]:
    """What retention removed from the project, newest day first, largest tables first within a day."""
    return list(DataRemoval.objects.filter(project=project).order_by("-day", "-rows")[:limit])
