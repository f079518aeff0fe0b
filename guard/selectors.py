"""Reads of the guard: which policy a service's calls run under, and which per-user budgets the project has.

The guard call answers in the app's request path, so both are kept per server process (``POLICY_CACHE``,
``BUDGET_CACHE``): a policy or budget saved or deleted in this process applies at once (guard.apps discards the
project's entries); one changed in another process within SRE4AI_GUARD_CACHE_SECONDS.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from pydantic import ValidationError

from guard.models import GuardPolicy
from guard.policy import DEFAULT_SPEC, FailMode, PolicySpec
from slos.budgets import per_user_budgets
from slos.models import Budget
from sre4ai_web.lib.ttl_cache import TTLCache


@dataclass(frozen=True)
class Policy:
    """The policy a call runs under: a valid spec, or the error of a stored one that no longer validates (a check
    or parameter since removed) and the fail mode it asked for."""

    spec: PolicySpec | None
    error: str = ""
    fail: FailMode = "open"


# (project id, service) → the policy of that service's calls.
POLICY_CACHE: TTLCache[tuple[int, str], Policy] = TTLCache(settings.SRE4AI_GUARD_CACHE_SECONDS)
# project id → its per-user budgets (most projects have none: then the user_budget check reads nothing).
BUDGET_CACHE: TTLCache[int, list[Budget]] = TTLCache(settings.SRE4AI_GUARD_CACHE_SECONDS)


def policy_for(*, project_id: int, service: str) -> GuardPolicy | None:
    """The service's own policy, else the project's default (service ""), else None (the built-in default)."""
    rows = {p.service: p for p in GuardPolicy.objects.filter(project_id=project_id, service__in={service, ""})}
    return rows.get(service) or rows.get("")


def _load(project_id: int, service: str) -> Policy:
    stored = policy_for(project_id=project_id, service=service)
    if stored is None:
        return Policy(DEFAULT_SPEC)
    try:
        return Policy(PolicySpec.model_validate(stored.spec))
    except ValidationError as exc:
        return Policy(None, str(exc), "closed" if stored.spec.get("fail") == "closed" else "open")


def effective_policy(*, project_id: int, service: str) -> Policy:
    return POLICY_CACHE.get_or_load((project_id, service), lambda: _load(project_id, service))


def user_budgets(*, project_id: int) -> list[Budget]:
    return BUDGET_CACHE.get_or_load(project_id, lambda: per_user_budgets(project_id=project_id))
