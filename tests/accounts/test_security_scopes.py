"""API key scopes: a new app key can only write; reading and managing need their own scope, on every endpoint,
with a 403 that names the missing scope. Keys made before scopes keep working (migration)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from typing import Any

import psycopg
import pytest
from django.db import connection
from django.test import Client

from accounts.models import ApiKey, Scope
from accounts.services import api_key_issue
from tests import ROOT, otlp_build
from tests.conftest import Tenant, database_url
from tests.native_data import native_trace

SLO_BODY = {"name": "x", "service": "support-bot", "sli": "availability", "objective": "0.99", "window_days": 7}


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _calls(trace_id: str) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """Every API endpoint with the scope it needs: name → (scope, method, client kwargs)."""
    otlp = otlp_build.request([otlp_build.span(otlp_build.new_trace_id())]).SerializeToString()
    pb = {"data": otlp, "content_type": "application/x-protobuf"}
    logs = {"data": json.dumps({"resourceLogs": []}), "content_type": "application/json"}
    score = {
        "data": json.dumps({"trace_id": trace_id, "name": "thumbs", "value": 1}),
        "content_type": "application/json",
    }
    lf_score = {"data": json.dumps({"traceId": trace_id, "name": "thumbs", "value": 1}),
                "content_type": "application/json"}  # fmt: skip
    native = {"data": json.dumps({"traces": [native_trace(5)]}), "content_type": "application/json"}
    slo = {"data": json.dumps(SLO_BODY), "content_type": "application/json"}
    return {
        "/v1/traces": (Scope.INGEST, "post", {"path": "/v1/traces", **pb}),
        "/v1/logs": (Scope.INGEST, "post", {"path": "/v1/logs", **logs}),
        "langfuse otel": (Scope.INGEST, "post", {"path": "/api/public/otel/v1/traces", **pb}),
        "native ingest": (Scope.INGEST, "post", {"path": "/api/v1/traces", **native}),
        "scores": (Scope.INGEST, "post", {"path": "/api/v1/scores", **score}),
        "langfuse scores": (Scope.INGEST, "post", {"path": "/api/public/scores", **lf_score}),
        "trace list": (Scope.READ, "get", {"path": "/api/v1/traces"}),
        "trace detail": (Scope.READ, "get", {"path": f"/api/v1/traces/{trace_id}"}),
        "canary": (Scope.READ, "get", {"path": "/api/v1/canary", "data": {"service": "support-bot"}}),
        "slo list": (Scope.READ, "get", {"path": "/api/v1/slos"}),
        "slo detail": (Scope.READ, "get", {"path": "/api/v1/slos/999999"}),
        "metrics": (Scope.READ, "get", {"path": "/metrics"}),
        "slo create": (Scope.MANAGE, "post", {"path": "/api/v1/slos", **slo}),
        "slo update": (Scope.MANAGE, "put", {"path": "/api/v1/slos/999999", **slo}),
        "slo delete": (Scope.MANAGE, "delete", {"path": "/api/v1/slos/999999"}),
    }


def _error_text(response: Any) -> str:
    if response["Content-Type"].startswith("application/json"):
        return response.json().get("error", "") or response.json().get("message", "")
    if "protobuf" in response["Content-Type"]:
        from google.rpc.status_pb2 import Status

        return Status.FromString(response.content).message
    return response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("scope", list(Scope.values))
def test_every_endpoint_refuses_a_key_without_its_scope_and_names_it(client: Client, tenant: Tenant,
                                                                      scope: str) -> None:  # fmt: skip
    trace_id = native_trace(0)["trace_id"]
    assert client.post("/api/v1/traces", json.dumps({"traces": [native_trace(0)]}), content_type="application/json",
                       headers=tenant.bearer).status_code == 200  # fmt: skip
    only = api_key_issue(project=tenant.project, scopes=[scope]).secret_key
    for name, (needed, method, kwargs) in _calls(trace_id).items():
        response = getattr(client, method)(**kwargs, headers=_bearer(only))
        if needed == scope:
            assert response.status_code != 403, (name, response.content)
        else:
            assert response.status_code == 403, (name, response.status_code, response.content)
            assert f"lacks the '{needed}' scope" in _error_text(response), (name, response.content)


@pytest.mark.django_db
def test_a_new_default_key_can_write_but_not_read_prompts(client: Client, tenant: Tenant) -> None:
    issued = api_key_issue(project=tenant.project, name="support-bot prod")
    assert issued.api_key.scopes == [Scope.INGEST]
    sent = client.post("/api/v1/traces", json.dumps({"traces": [native_trace(0)]}), content_type="application/json",
                       headers=_bearer(issued.secret_key))  # fmt: skip
    assert sent.status_code == 200
    read = client.get(f"/api/v1/traces/{native_trace(0)['trace_id']}", headers=_bearer(issued.secret_key))
    assert read.status_code == 403 and "Refunds" not in read.content.decode()
    # Langfuse SDKs authenticate with Basic public:secret: the same scopes apply.
    basic = base64.b64encode(f"{issued.api_key.public_key}:{issued.secret_key}".encode()).decode()
    assert client.get("/api/v1/traces", headers={"Authorization": f"Basic {basic}"}).status_code == 403


@pytest.mark.django_db
def test_settings_page_creates_a_key_with_the_checked_scopes(client: Client, tenant: Tenant) -> None:
    client.force_login(tenant.user)
    page = client.get("/p/acme/settings/").content.decode()
    assert 'name="key-scopes" value="ingest"' in page and 'value="manage"' in page
    refused = client.post("/p/acme/settings/", {"key-name": "none", "create_key": "1"})
    assert refused.status_code == 200 and "Pick at least one scope" in refused.content.decode()
    created = client.post("/p/acme/settings/", {"key-name": "grafana", "key-scopes": ["read"], "create_key": "1"})
    assert created.status_code == 302
    assert ApiKey.objects.get(project=tenant.project, name="grafana").scopes == ["read"]
    listing = client.get("/p/acme/settings/").content.decode()
    assert '<span class="chip scope">read</span>' in listing


# An installation from before scopes (accounts 0003), upgraded: run in a process of its own on a database of its own,
# migrated forward only, as a user's upgrade is (the partitioned tables of later migrations cannot go back).
UPGRADE = """
import json, django
django.setup()
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
old = [("accounts", "0003_project_secret")]
executor = MigrationExecutor(connection)
executor.migrate(old)
apps = executor.loader.project_state(old).apps
project = apps.get_model("accounts", "Project").objects.create(slug="old", name="old")
old_key = apps.get_model("accounts", "ApiKey")
old_key.objects.create(project=project, public_key="pk-app", secret_hash="a" * 64, secret_hint="x")
old_key.objects.create(project=project, public_key="pk-ops", secret_hash="b" * 64, secret_hint="y", can_manage=True)
executor = MigrationExecutor(connection)
executor.migrate(executor.loader.graph.leaf_nodes())
from accounts.models import ApiKey
print("\\nscopes", json.dumps(dict(ApiKey.objects.values_list("public_key", "scopes"))))
"""


@pytest.mark.postgres_only("creates a PostgreSQL database of its own to upgrade")
def test_migration_keeps_existing_keys_working_as_before() -> None:
    fresh = f"{connection.settings_dict['NAME']}_upgrade"
    server = database_url().rsplit("/", 1)[0]
    admin = psycopg.connect(f"{server}/postgres", autocommit=True)
    admin.execute(f'DROP DATABASE IF EXISTS "{fresh}"')
    admin.execute(f'CREATE DATABASE "{fresh}"')
    try:
        done = subprocess.run(
            [sys.executable, "-c", UPGRADE], cwd=ROOT, capture_output=True, text=True, timeout=300,
            env={**os.environ, "DATABASE_URL": f"{server}/{fresh}"},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        scopes = json.loads(done.stdout.rsplit("\nscopes ", 1)[1])  # after what the migrations print
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{fresh}" WITH (FORCE)')
        admin.close()
    assert scopes == {"pk-app": ["ingest", "read"], "pk-ops": ["ingest", "read", "manage"]}


@pytest.mark.django_db
def test_a_method_an_endpoint_lacks_is_405_not_403(client: Client, tenant: Tenant) -> None:
    assert (
        client.patch("/api/v1/traces", "{}", content_type="application/json", headers=tenant.bearer).status_code == 405
    )
    assert client.delete("/api/v1/scores", headers=tenant.bearer).status_code == 405
