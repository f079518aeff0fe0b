"""Shared fixtures. Tests run on the real PostgreSQL (DATABASE_URL) and Redis (CELERY_BROKER_URL) given by
``make test``; a test that needs them fails rather than silently falling back to SQLite."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command

from accounts.models import ApiKey, Project, Role, Scope
from accounts.services import api_key_issue, membership_set, project_create, user_create

PASSWORD = "correct-horse-battery"
# Fixtures shared by several test modules.
pytest_plugins = ["tests.receiver"]
# Test receivers listen on loopback, which outbound calls refuse by default: allow exactly that address, here and
# in the workers the end-to-end tests start (they inherit the environment). tests/test_outbound.py proves the
# refusal without it.
LOOPBACK_ALLOWED = "127.0.0.1"
os.environ["SRE4AI_OUTBOUND_ALLOW"] = LOOPBACK_ALLOWED


@pytest.fixture(autouse=True)
def _loopback_allowed(settings: Any) -> None:
    settings.SRE4AI_OUTBOUND_ALLOW = [LOOPBACK_ALLOWED]


@pytest.fixture(scope="session", autouse=True)
def _require_postgres() -> None:
    if os.environ.get("SRE4AI_ALLOW_SQLITE_TESTS") != "1":
        assert settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql", (
            "Tests run on PostgreSQL: set DATABASE_URL (make test does)."
        )


@pytest.fixture(scope="session", autouse=True)
def _collected_static() -> None:
    """Pages are tested with the production static storage (hashed manifest), so collect once per run."""
    call_command("collectstatic", interactive=False, verbosity=0)


@dataclass
class Tenant:
    user: User
    project: Project
    api_key: ApiKey
    secret: str

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}"}


def make_tenant(slug: str, username: str, role: str = Role.ADMIN) -> Tenant:
    user = User.objects.filter(username=username).first() or user_create(username=username, password=PASSWORD)
    project = project_create(slug=slug)
    membership_set(project=project, user=user, role=role)
    # Ingest and read, like keys made before scopes existed: most tests send traces and read them back.
    issued = api_key_issue(project=project, name="test", scopes=[Scope.INGEST, Scope.READ])
    return Tenant(user=user, project=project, api_key=issued.api_key, secret=issued.secret_key)


@pytest.fixture
def tenant(db: Any) -> Tenant:
    """Project 'acme' with admin 'alice' and an API key."""
    return make_tenant("acme", "alice")


@pytest.fixture
def other_tenant(db: Any) -> Tenant:
    """Project 'globex' with admin 'bob': what tenant must never see."""
    return make_tenant("globex", "bob")
