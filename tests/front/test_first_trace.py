"""An empty project's overview: "send your first trace" with this server's endpoints, an ingest key made by an editor
(CSRF, audit, shown once), OpenTelemetry environment variables and a curl command that really work, and a status
endpoint that says when the overview is ready. The browser side is in test_first_trace_browser.py."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from datetime import datetime, timedelta
from html import unescape
from typing import Any

import pytest
from django.test import Client, override_settings
from django.utils import timezone

from accounts.models import ApiKey, AuditEvent, Role
from accounts.services import hash_secret, membership_set, user_create
from rollups.services import dirty_process
from tests import ROOT
from tests.conftest import PASSWORD, Tenant
from traces.models import Trace

pytestmark = pytest.mark.django_db


def login(user: str = "alice", **kwargs: Any) -> Client:
    client = Client(**kwargs)
    assert client.login(username=user, password=PASSWORD)
    return client


def member(tenant: Tenant, username: str, role: str) -> None:
    membership_set(project=tenant.project, user=user_create(username=username, password=PASSWORD), role=role)


def block(html: str, element_id: str) -> str:
    """The text of the element with that id, as a person copies it."""
    match = re.search(rf'id="{element_id}">(.*?)</', html, re.S)
    assert match, f"no #{element_id}"
    return unescape(match[1])


def send_native(tenant: Tenant, service: str = "bot") -> None:
    now = timezone.now()
    body = {"traces": [{"service": service, "spans": [{"name": "answer", "start_time": now.isoformat(),
                                                       "end_time": (now + timedelta(seconds=1)).isoformat()}]}]}  # fmt: skip
    response = Client().post("/api/v1/traces", json.dumps(body), content_type="application/json", headers=tenant.bearer)
    assert response.status_code == 200, response.content


def test_an_empty_project_shows_how_to_send_the_first_trace(tenant: Tenant, django_assert_max_num_queries: Any) -> None:
    client = login()
    # 9: the environments offered (the last 30 days' rollups) and whether anything was ever counted are two reads.
    with django_assert_max_num_queries(9):
        response = client.get("/p/acme/")
    html = response.content.decode()
    assert response.status_code == 200 and "Send your first trace" in html
    assert block(html, "otlp-traces-url") == "http://testserver/v1/traces"
    assert block(html, "rest-url") == "http://testserver/api/v1/traces"
    env = block(html, "first-trace-env")
    assert "export OTEL_EXPORTER_OTLP_ENDPOINT=http://testserver\n" in env
    assert "export OTEL_EXPORTER_OTLP_HEADERS='Authorization=Bearer%20sk-sre-…'" in env  # no key yet: a placeholder
    curl = block(html, "first-trace-curl")
    sent = json.loads(shlex.split(curl.replace("\\\n", " "))[-1])
    started = datetime.fromisoformat(sent["traces"][0]["spans"][0]["start_time"])
    assert abs((started - timezone.now()).total_seconds()) < 60, "the example uses the time of the page"
    assert "Create an ingest key" in html and 'action="/p/acme/first-trace/key/"' in html
    assert '<table class="overview">' not in html


@override_settings(SRE4AI_BASE_URL="https://sre4ai.example.com", SRE4AI_BASE_URL_CONFIGURED=True)
def test_the_configured_base_url_is_the_endpoint_apps_are_given(tenant: Tenant) -> None:
    html = login().get("/p/acme/").content.decode()
    assert block(html, "otlp-traces-url") == "https://sre4ai.example.com/v1/traces"
    assert "OTEL_EXPORTER_OTLP_ENDPOINT=https://sre4ai.example.com\n" in block(html, "first-trace-env")


def test_an_editor_creates_an_ingest_key_shown_once_and_audited(tenant: Tenant) -> None:
    member(tenant, "erin", Role.EDITOR)
    client = login("erin", enforce_csrf_checks=True)
    page = client.get("/p/acme/")
    assert client.post("/p/acme/first-trace/key/").status_code == 403  # no CSRF token
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())[1]  # type: ignore[index]
    response = client.post("/p/acme/first-trace/key/", {"csrfmiddlewaretoken": token})
    assert response.status_code == 302 and response["Location"] == "/p/acme/"
    key = ApiKey.objects.exclude(pk=tenant.api_key.pk).get()
    assert key.created_by is not None and key.created_by.get_username() == "erin"
    assert (key.project, key.scopes, key.name) == (tenant.project, ["ingest"], "first trace")
    event = AuditEvent.objects.get(action="api_key.create", target=key.public_key)
    assert event.actor == "erin" and event.details["scopes"] == ["ingest"]

    html = client.get("/p/acme/").content.decode()
    secret = block(html, "new-secret-key")
    assert hash_secret(secret) == key.secret_hash and block(html, "new-public-key") == key.public_key
    assert f"Authorization=Bearer%20{secret}" in block(html, "first-trace-env")
    assert f"Authorization: Bearer {secret}" in block(html, "first-trace-curl")
    again = client.get("/p/acme/").content.decode()
    assert secret not in again and "sk-sre-…" in again  # shown once


def test_viewers_cannot_create_keys_and_non_members_see_nothing(tenant: Tenant, other_tenant: Tenant) -> None:
    member(tenant, "vic", Role.VIEWER)
    viewer = login("vic")
    html = viewer.get("/p/acme/").content.decode()
    assert "Create an ingest key" not in html and "Ask an editor or admin" in html
    assert "Settings &amp; keys → Create API key" in html
    refused = viewer.post("/p/acme/first-trace/key/")
    assert refused.status_code == 403 and "Settings & keys → Create API key" in refused.content.decode()
    outsider = login("bob")
    assert outsider.post("/p/acme/first-trace/key/").status_code == 404
    assert outsider.get("/p/acme/first-trace/").status_code == 404
    assert Client().get("/p/acme/first-trace/").status_code == 302  # to the login page
    assert viewer.get("/p/acme/first-trace/key/").status_code == 405
    assert ApiKey.objects.filter(project=tenant.project).count() == 1


def test_status_says_when_a_trace_arrived_and_when_the_overview_is_ready(tenant: Tenant) -> None:
    client = login()
    assert client.get("/p/acme/first-trace/").json() == {"ready": False, "trace": None}
    send_native(tenant, service="<b>bot</b>")
    status = client.get("/p/acme/first-trace/").json()
    assert status["ready"] is False and status["trace"]["service"] == "<b>bot</b>"
    waiting = client.get("/p/acme/").content.decode()
    assert "A trace from <b>&lt;b&gt;bot&lt;/b&gt;</b> arrived" in waiting  # escaped
    while dirty_process():  # what the worker does every 10 seconds
        pass
    assert client.get("/p/acme/first-trace/").json()["ready"] is True
    overview = client.get("/p/acme/").content.decode()
    assert '<table class="overview">' in overview and "Send your first trace" not in overview
    # Once it receives traces, keys are made in Settings & keys, not here.
    response = client.post("/p/acme/first-trace/key/", follow=True)
    assert "already receives traces" in response.content.decode()
    assert ApiKey.objects.filter(project=tenant.project).count() == 1


def test_the_same_otlp_header_variable_in_readme_settings_and_panel(tenant: Tenant) -> None:
    readme = (ROOT / "README.md").read_text()
    assert 'OTEL_EXPORTER_OTLP_HEADERS="Authorization=Bearer%20sk-sre-…"' in readme
    assert "OTEL_EXPORTER_OTLP_TRACES_HEADERS" not in readme
    client = login()
    client.post("/p/acme/settings/", {"create_key": "1", "key-name": "app", "key-scopes": ["ingest"]})
    settings_html = client.get("/p/acme/settings/").content.decode()
    secret = block(settings_html, "new-secret-key")
    assert (
        block(settings_html, "new-otlp-headers") == f"export OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20{secret}"
    )
    panel = block(client.get("/p/acme/").content.decode(), "first-trace-env")
    assert "export OTEL_EXPORTER_OTLP_HEADERS=" in panel and "TRACES_HEADERS" not in panel


# --- the commands on the panel, run as a person would paste them -----------------------------------------------


@pytest.fixture
def shown(transactional_db: Any, live_server: Any, tenant: Tenant) -> tuple[str, str, str]:
    """The panel of the live server after creating a key: (environment lines, curl command, secret)."""
    client = login()
    client.post("/p/acme/first-trace/key/")
    page = client.get("/p/acme/", headers={"host": live_server.url.removeprefix("http://")}).content.decode()
    assert f"OTEL_EXPORTER_OTLP_ENDPOINT={live_server.url}\n" in block(page, "first-trace-env")
    return block(page, "first-trace-env"), block(page, "first-trace-curl"), block(page, "new-secret-key")


def test_the_curl_command_shown_stores_a_trace(shown: tuple[str, str, str], tenant: Tenant) -> None:
    _, curl, _ = shown
    result = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=30, check=True)
    assert json.loads(result.stdout) == {"accepted_traces": 1, "accepted_spans": 2, "rejected": []}
    trace = Trace.objects.get(project=tenant.project)
    assert trace.service == "my-app" and trace.span_count == 2
    assert abs((trace.start_time - timezone.now()).total_seconds()) < 120


SDK_APP = """
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

provider = TracerProvider()  # service name, endpoint, protocol and header: all from the environment
provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter()))
with provider.get_tracer("app").start_as_current_span("chat gpt-4o-mini") as span:
    span.set_attribute("gen_ai.operation.name", "chat")
    span.set_attribute("gen_ai.request.model", "gpt-4o-mini")
provider.shutdown()
"""


def test_the_environment_variables_shown_configure_the_opentelemetry_sdk(
    shown: tuple[str, str, str], tenant: Tenant
) -> None:
    """The real SDK, configured only by the lines on the page, exports to this server with the new key."""
    env_lines, _, _ = shown
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    for line in env_lines.splitlines():
        name, _, value = shlex.split(line.removeprefix("export "))[0].partition("=")
        env[name] = value
    result = subprocess.run([sys.executable, "-c", SDK_APP], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "Failed to export" not in result.stderr, result.stderr
    trace = Trace.objects.get(project=tenant.project)
    assert trace.service == "my-app" and trace.model_names == ["gpt-4o-mini"]


def test_empty_states_say_what_to_do(tenant: Tenant) -> None:
    client = login()
    empty = client.get("/p/acme/traces/").content.decode()
    assert "README" not in empty and 'No traces yet. <a href="/p/acme/">Services</a> shows how to send' in empty
    send_native(tenant)
    while dirty_process():
        pass
    filtered = client.get("/p/acme/traces/", {"service": "nobody"}).content.decode()
    assert "No traces match these filters." in filtered and 'href="/p/acme/traces/">Clear the filters</a>' in filtered
    assert "Clear the filters</a>." in filtered  # all time already: no longer range to choose
    in_a_day = client.get("/p/acme/traces/", {"service": "nobody", "range": "24h"}).content.decode()
    assert "Clear the filters</a>, or choose a longer time range." in in_a_day
    quiet = client.get("/p/acme/", {"range": "custom", "since": "2020-01-01T00:00Z", "until": "2020-01-02T00:00Z"})
    assert "No traffic in this range: choose a longer range above" in quiet.content.decode()


def test_favicon_is_linked_and_served(tenant: Tenant) -> None:
    html = login().get("/p/acme/").content.decode()
    icon = re.search(r'<link rel="icon" href="([^"]+)" type="image/svg\+xml">', html)
    assert icon and icon[1].startswith("/static/favicon.")
    redirect = Client().get("/favicon.ico")
    assert redirect.status_code == 302 and redirect["Location"] == icon[1]
    served = Client().get(icon[1])
    assert served.status_code == 200 and served["Content-Type"] == "image/svg+xml"
