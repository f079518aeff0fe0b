"""The audit log: the services record who changed keys, members, secrets, SLOs, channels and evaluator settings;
admins read it on Settings → Audit log, newest first and paginated; nothing can change or remove an entry."""

from __future__ import annotations

import json
import re

import pytest
from django.db import DatabaseError, transaction
from django.test import Client

from accounts.models import AuditEvent, Project, Role
from accounts.services import audit_record, membership_set, user_create
from evals.services import evaluator_config_reset, evaluator_config_set
from slos.models import Channel
from tests.conftest import PASSWORD, Tenant
from tests.slo_data import FORM, ingest, make_trace, manager, recompute


def _login(username: str = "alice") -> Client:
    client = Client()
    assert client.login(username=username, password=PASSWORD)
    return client


def _log(project: Project) -> list[tuple[str, str, str]]:
    """(actor, action, target), oldest first."""
    return list(AuditEvent.objects.filter(project=project).order_by("pk").values_list("actor", "action", "target"))


@pytest.mark.django_db
def test_settings_changes_are_recorded_with_who_did_them(tenant: Tenant) -> None:
    start = AuditEvent.objects.filter(project=tenant.project).count()
    user_create(username="bob", password=PASSWORD)
    alice = _login()
    alice.post("/p/acme/settings/", {"key-name": "bot", "key-scopes": ["ingest"], "create_key": "1"})
    key = tenant.project.api_keys.get(name="bot")
    alice.post(f"/p/acme/settings/keys/{key.pk}/revoke/")
    alice.post("/p/acme/settings/", {"member-username": "bob", "member-role": "viewer", "add_member": "1"})
    alice.post("/p/acme/settings/", {"member-username": "bob", "member-role": "editor", "add_member": "1"})
    alice.post("/p/acme/settings/secrets/", {"name": "APP_TOKEN", "value": "tok-123456", "set_secret": "1"})
    alice.post("/p/acme/settings/secrets/", {"delete_secret": "APP_TOKEN"})
    assert _log(tenant.project)[start:] == [
        ("alice", "api_key.create", key.public_key),
        ("alice", "api_key.revoke", key.public_key),
        ("alice", "member.add", "bob"),
        ("alice", "member.role_change", "bob"),
        ("alice", "secret.set", "APP_TOKEN"),
        ("alice", "secret.delete", "APP_TOKEN"),
    ]
    change = AuditEvent.objects.get(project=tenant.project, action="member.role_change")
    assert change.details == {"role": "editor", "previous_role": "viewer"}
    assert "tok-123456" not in json.dumps(list(AuditEvent.objects.values_list("details", flat=True)))


@pytest.mark.django_db
def test_slo_channel_and_evaluator_changes_are_recorded(tenant: Tenant) -> None:
    alice = _login()
    ingest(tenant, [make_trace(0)])  # the service exists
    recompute()
    api = Client(headers=manager(tenant))
    body = {**FORM, "policy": [{"severity": "page", "burn_rate_threshold": "10", "long_window": "1h",
                                "short_window": "5m"}]}  # fmt: skip
    body.pop("policy_mode")
    created = api.post("/api/v1/slos", json.dumps(body), content_type="application/json").json()
    api.put(f"/api/v1/slos/{created['id']}", json.dumps({**body, "objective": 0.99}), content_type="application/json")
    api.delete(f"/api/v1/slos/{created['id']}")
    alice.post("/p/acme/channels/", {"name": "hook", "kind": "webhook",
                                     "config": '{"url": "https://hooks.example.com/x", "secret": "s3cret-s3cret-s3cret"}'})  # fmt: skip
    channel = Channel.objects.get(project=tenant.project, name="hook")
    alice.post(f"/p/acme/channels/{channel.pk}/delete/")
    evaluator_config_set(project=tenant.project, service="", evaluator="pii", enabled=False, params={},
                         sampling_rate=1.0, user=tenant.user)  # fmt: skip
    evaluator_config_reset(project=tenant.project, service="", evaluator="pii", actor=tenant.user)
    public = tenant.project.api_keys.get(name="ops").public_key
    assert [(a, act) for a, act, _ in _log(tenant.project) if act.split(".")[0] in ("slo", "channel", "evaluator")] == [
        (f"API key {public}", "slo.create"),
        (f"API key {public}", "slo.update"),
        (f"API key {public}", "slo.delete"),
        ("alice", "channel.create"),
        ("alice", "channel.delete"),
        ("alice", "evaluator.set"),
        ("alice", "evaluator.reset"),
    ]
    update = AuditEvent.objects.get(project=tenant.project, action="slo.update")
    assert update.details == {"fields": ["objective"]}
    assert "s3cret" not in json.dumps(list(AuditEvent.objects.values_list("details", flat=True)))


@pytest.mark.django_db
def test_audit_page_is_for_admins_newest_first_and_paginated(tenant: Tenant, other_tenant: Tenant) -> None:
    for n in range(60):
        audit_record(project=tenant.project, actor=None, action="test.event", target=f"<b>target-{n:02d}</b>")
    page = _login().get("/p/acme/settings/audit/").content.decode()
    targets = re.findall(r"&lt;b&gt;target-(\d\d)&lt;/b&gt;", page)  # escaped, never rendered as HTML
    assert targets[:3] == ["59", "58", "57"] and len(targets) == 50 and "page 1 of 2" in page
    older = _login().get("/p/acme/settings/audit/?page=2").content.decode()
    assert re.findall(r"target-(\d\d)", older)[-1] == "00"
    user_create(username="vera", password=PASSWORD)
    membership_set(project=tenant.project, user=tenant.user.__class__.objects.get(username="vera"), role=Role.EDITOR)
    assert _login("vera").get("/p/acme/settings/audit/").status_code == 403
    assert _login("bob").get("/p/acme/settings/audit/").status_code == 404
    assert "target-" not in _login("bob").get("/p/globex/settings/audit/").content.decode()


@pytest.mark.postgres_only("the append-only trigger is PostgreSQL's (SQLite's test flush deletes rows)")
@pytest.mark.django_db
def test_audit_entries_cannot_be_changed_or_removed(tenant: Tenant) -> None:
    event = audit_record(project=tenant.project, actor=tenant.user, action="test.event", target="x")
    for attempt in (
        lambda: AuditEvent.objects.filter(pk=event.pk).update(actor="mallory"),
        lambda: AuditEvent.objects.filter(pk=event.pk).delete(),
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            attempt()
    assert AuditEvent.objects.get(pk=event.pk).actor == "alice"
