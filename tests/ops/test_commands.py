"""Management commands run without prompts (automation), and production settings pass Django's deploy check."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from io import StringIO

import pytest
import redis
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from accounts.models import ApiKey, Membership, Project
from accounts.services import hash_secret
from tests import ROOT
from tests.conftest import broker_purge
from traces.models import RetrievedDocument, Span, Trace


@pytest.mark.django_db
def test_create_user_project_and_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SRE4AI_PASSWORD", "s3cret-pass")
    call_command("create_user", "carol", stdout=StringIO())
    assert User.objects.get(username="carol").check_password("s3cret-pass")
    call_command("create_project", "shop", "--owner", "carol", stdout=StringIO())
    assert Membership.objects.get(project__slug="shop", user__username="carol").role == "admin"
    out = StringIO()
    call_command("create_api_key", "shop", "--json", stdout=out)
    keys = json.loads(out.getvalue())
    assert set(keys) == {"public_key", "secret_key"}
    stored = ApiKey.objects.get(public_key=keys["public_key"])
    assert stored.secret_hash == hash_secret(keys["secret_key"]) and stored.project.slug == "shop"
    assert stored.scopes == ["ingest"]  # app keys can only write
    call_command("create_api_key", "shop", "--json", "--scope", "read", "--scope", "manage", stdout=(out := StringIO()))
    assert ApiKey.objects.get(public_key=json.loads(out.getvalue())["public_key"]).scopes == ["read", "manage"]


@pytest.mark.django_db
def test_commands_fail_with_a_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SRE4AI_PASSWORD", raising=False)
    with pytest.raises(CommandError, match="SRE4AI_PASSWORD"):
        call_command("create_user", "dave")
    with pytest.raises(CommandError, match="No user"):
        call_command("create_project", "shop", "--owner", "ghost")
    with pytest.raises(CommandError, match="lower-case"):
        call_command("create_project", "Bad Slug!")
    with pytest.raises(CommandError, match="No project"):
        call_command("create_api_key", "missing")
    assert not Project.objects.exists()


@pytest.mark.postgres_only("reads the queued drift message on Redis; test_browser_demo_walk seeds the demo on SQLite")
@pytest.mark.django_db(transaction=True)  # as `make run` runs it: outside a transaction, its services queue at once
def test_seed_demo_goes_through_otlp_and_builds_three_services() -> None:
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    broker_purge()
    call_command("seed_demo", "--traces", "120", "--hours", "6", verbosity=0, stdout=StringIO())
    # The first drift run is queued for after the scoring, not left to beat's first hourly tick.
    queued = [json.loads(m)["headers"] for m in broker.lrange("backfill", 0, -1)]
    drift = [h for h in queued if h["task"] == "evals.tasks.drift_schedule"]  # beside the SLOs' history jobs
    assert [(h["task"], h["eta"] is not None) for h in drift] == [("evals.tasks.drift_schedule", True)]
    broker_purge()  # the scoring and history jobs name rows this test's database drops
    project = Project.objects.get(slug="demo")
    traces = Trace.objects.filter(project=project)
    assert traces.count() == 120
    assert set(traces.values_list("service", flat=True)) == {"support-bot", "travel-agent", "summariser"}
    assert set(traces.values_list("release", flat=True)) == {"v1.4.0", "v1.5.0"}
    assert Span.objects.filter(project=project, source="otlp").count() == Span.objects.filter(project=project).count()
    assert RetrievedDocument.objects.filter(span__project=project).exists()
    assert Span.objects.filter(project=project, kind="tool").exclude(tool_name="").exists()
    assert len({m for t in traces for m in t.model_names}) >= 3
    # A conversation is one person's: every session of the demo has exactly one user.
    users_per_session: dict[str, set[str]] = {}
    for session, user in traces.exclude(session_id="").values_list("session_id", "user_id"):
        users_per_session.setdefault(session, set()).add(user)
    assert users_per_session and all(len(users) == 1 for users in users_per_session.values())
    assert len({u for users in users_per_session.values() for u in users}) > 10
    # Idempotent start-up: a second `make run` does not load the data again.
    call_command("seed_demo", "--if-empty", verbosity=0, stdout=StringIO())
    assert Trace.objects.filter(project=project).count() == 120


def test_production_settings_pass_the_deploy_check() -> None:
    env = {**os.environ, "DJANGO_SECRET_KEY": secrets.token_urlsafe(50), "SRE4AI_HTTPS": "1", "SRE4AI_REQUIRE_SECRET_KEY": "1",
           "DJANGO_DEBUG": "0"}  # fmt: skip
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
