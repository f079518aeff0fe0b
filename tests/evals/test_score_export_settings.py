"""Per-project export of our verdicts (Settings → "Scores to an OpenTelemetry collector"): a project configured on the
page sends its built-in scores to a real OTLP receiver (the project's own /v1/logs on a live server) whatever the
server's default, the headers are sealed, never shown or logged and kept when left empty, bad endpoints are form
errors, only admins see or change it, every change is in the audit log, and "Send test" runs on the export worker."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from django.test import Client
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from accounts.models import AuditEvent
from accounts.services import membership_set
from evals.models import Score, ScoreExportTarget, ScoreSource
from evals.otel_export import export_test_run
from tests import export_data, processes
from tests.conftest import PASSWORD, Tenant, make_tenant
from tests.export_data import built_in, counters, scored_trace
from tests.processes import start_worker, stop, wait_for
from tests.receiver import Receiver

# Shared fixtures: pytest finds a fixture by its name in the test's module.
eager = export_data.eager
clean_queues = processes.clean_queues

SETTINGS = "/p/acme/settings/"
EXPORT = "/p/acme/settings/export/"
TOKEN = "tok-3f9a77c1d2"  # a header value that must never come back


def admin(tenant: Tenant) -> Client:
    client = Client()
    assert client.login(username=tenant.user.username, password=PASSWORD)
    return client


def save(client: Client, endpoint: str, headers: str = "", protocol: str = "http/protobuf", **extra: str) -> Any:
    data = {"export-endpoint": endpoint, "export-protocol": protocol, "export-headers": headers, "save": "1", **extra}
    return client.post(EXPORT, data)


def closed_port_url() -> str:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{closed.getsockname()[1]}/v1/logs"  # nothing listens once it is closed


@pytest.mark.usefixtures("eager")
@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json"])
def test_a_project_set_up_in_settings_exports_to_its_collector_over_the_server_default(
    transactional_db: Any, live_server: Any, tenant: Tenant, settings: Any, protocol: str
) -> None:
    settings.SRE4AI_OTEL_EXPORT_ENDPOINT = closed_port_url()  # the server's default would drop every batch
    client = admin(tenant)
    headers = f"Authorization: Bearer {tenant.secret}\nX-Team: {TOKEN}"
    response = save(client, f"{live_server.url}/v1/logs", headers, protocol)
    assert response.status_code == 302 and response["Location"].endswith("/settings/#score-export")

    scored_trace(tenant)
    ours = built_in(tenant)
    assert len(ours) >= 3
    came_back = Score.objects.filter(project=tenant.project, source=ScoreSource.APP)
    assert sorted(s.name for s in came_back) == sorted(s.name for s in ours)  # round trip through our /v1/logs
    assert counters(tenant) == (len(ours), 0)

    page = client.get(SETTINGS).content.decode()
    section = page[page.index('id="score-export"') :]
    assert "on</span> to <b" in section and live_server.url.removeprefix("http://") in section
    assert "<code>Authorization</code>, <code>X-Team</code>" in section
    assert TOKEN not in page and tenant.secret not in page
    assert f"Sent {len(ours)}, dropped 0" in section


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("endpoint", "headers", "message"),
    [
        ("ftp://collector.example.com/v1/logs", "", "The endpoint must start with https:// or http://"),
        ("collector.example.com:4318", "", "The endpoint must start with https:// or http://"),
        ("https://collector example.com/v1/logs", "", "The endpoint must not contain spaces"),
        ("http://10.1.2.3:4318/v1/logs", "", "an internal address"),
        ("http://[::1]:4318/v1/logs", "", "an internal address"),
        ("https://ops:hunter2@collector.example.com/v1/logs", "", "Put credentials in a header"),
        ("https://collector.example.com/v1/logs", f"Authorization Bearer {TOKEN}", "Line 1: write Name: value"),
        ("https://collector.example.com/v1/logs", f"X-Ok: 1\nX Bad: {TOKEN}", "Line 2: a header name has"),
        ("https://collector.example.com/v1/logs", "Content-Type: text/plain", "Content-Type is set by sre4ai"),
        ("https://collector.example.com/v1/logs", f"X-Key: {TOKEN}é", "must be printable ASCII"),
    ],
)
def test_a_bad_endpoint_or_header_is_a_form_error_that_says_what_to_fix(
    tenant: Tenant, endpoint: str, headers: str, message: str
) -> None:
    response = save(admin(tenant), endpoint, headers)
    assert response.status_code == 400
    page = response.content.decode()
    assert message in page
    assert TOKEN not in page  # the typed headers are not echoed back
    assert 'name="export-endpoint"' in page  # the form, to fix it
    assert not ScoreExportTarget.objects.exists()


@pytest.mark.django_db
def test_only_admins_see_or_change_the_export(tenant: Tenant) -> None:
    save(admin(tenant), "https://collector.example.com/v1/logs", f"Authorization: Bearer {TOKEN}")
    for role in ("viewer", "editor"):
        member = make_tenant(f"{role}-co", f"{role}-user", role=role)
        membership_set(project=tenant.project, user=member.user, role=role)
        client = Client()
        assert client.login(username=f"{role}-user", password=PASSWORD)
        page = client.get(SETTINGS).content.decode()
        assert 'id="score-export"' not in page and "collector.example.com" not in page
        assert save(client, "https://evil.example.com/v1/logs").status_code == 403
        assert client.post(EXPORT, {"reset": "1"}).status_code == 403
        assert client.post(EXPORT, {"test": "1"}).status_code == 403
    assert ScoreExportTarget.objects.get().endpoint == "https://collector.example.com/v1/logs"
    assert Client().post(EXPORT, {"reset": "1"}).status_code == 302  # signed out: to the login page
    assert ScoreExportTarget.objects.exists()


@pytest.mark.usefixtures("eager")
def test_headers_are_kept_when_left_empty_and_every_change_is_audited_without_them(
    transactional_db: Any, tenant: Tenant, settings: Any, receiver: Receiver
) -> None:
    settings.SRE4AI_OTEL_EXPORT_ENDPOINT = f"{receiver.url}/default/v1/logs"
    client = admin(tenant)
    assert save(client, f"{receiver.url}/first/v1/logs", f"Authorization: Bearer {TOKEN}").status_code == 302
    assert save(client, f"{receiver.url}/second/v1/logs", "", "http/json").status_code == 302  # headers left empty
    scored_trace(tenant)
    (sent,) = receiver.requests
    assert (sent.path, sent.headers["authorization"]) == ("/second/v1/logs", f"Bearer {TOKEN}")
    assert sent.headers["content-type"] == "application/json"
    row = ScoreExportTarget.objects.get()
    assert row.header_names == ["Authorization"] and TOKEN not in row.headers_sealed

    # Removed on request; then off for the project although the server has a default; then back to that default.
    assert save(client, f"{receiver.url}/third/v1/logs", "", **{"export-clear_headers": "on"}).status_code == 302
    assert save(client, "").status_code == 302
    scored_trace(tenant)
    assert len(receiver.requests) == 1
    assert client.post(EXPORT, {"reset": "1"}).status_code == 302
    assert not ScoreExportTarget.objects.exists()
    scored_trace(tenant)
    assert [r.path for r in receiver.requests] == ["/second/v1/logs", "/default/v1/logs"]

    events = list(
        AuditEvent.objects.filter(project=tenant.project, action__startswith="score_export")
        .order_by("pk")
        .values("action", "target", "details")
    )
    host = receiver.url.removeprefix("http://")
    assert [(e["action"], e["target"]) for e in events] == [
        ("score_export.set", host), ("score_export.set", host), ("score_export.set", host),
        ("score_export.set", "off"), ("score_export.reset", "server default"),
    ]  # fmt: skip
    assert [e["details"].get("headers") for e in events[:4]] == [["Authorization"], ["Authorization"], [], []]
    assert TOKEN not in str(events) and "/first/" not in str(events)  # no header value, no path


@pytest.mark.django_db(transaction=True)
def test_send_test_is_posted_by_the_export_worker_and_its_answer_shows(
    tenant: Tenant, receiver: Receiver, clean_queues: None
) -> None:
    client = admin(tenant)
    assert client.post(EXPORT, {"test": "1"}).status_code == 302  # nothing of its own to test yet
    assert "Cannot send a test: this project has no collector of its own" in client.get(SETTINGS).content.decode()
    save(client, f"{receiver.url}/v1/logs", f"X-Team: {TOKEN}")
    receiver.statuses = [200, 401]
    for expected in ("ok", "failed"):
        assert client.post(EXPORT, {"test": "1"}).status_code == 302
        # Read before a worker runs: a running one may answer the test before the page is read.
        assert "queued</span> waiting for the export worker" in client.get(SETTINGS).content.decode()
        worker = start_worker("export-test", queues=("export",))
        try:
            wait_for(lambda: ScoreExportTarget.objects.get().test_ok is not None, 60, "the export worker's test")
        finally:
            stop(worker)
        page = client.get(SETTINGS).content.decode()
        assert f'<span class="status {"ok" if expected == "ok" else "error"}">{expected}</span>' in page
    assert "the collector answered 401" in page and TOKEN not in page
    first = receiver.requests[0]
    assert (first.path, first.headers["x-team"], first.headers["content-type"]) == (
        "/v1/logs", TOKEN, "application/x-protobuf")  # fmt: skip
    assert ExportLogsServiceRequest.FromString(first.body).resource_logs[0].scope_logs[0].log_records == []


@pytest.mark.usefixtures("eager")
def test_headers_sealed_under_a_lost_key_drop_the_batch_with_a_counter_and_say_so(
    transactional_db: Any, tenant: Tenant, receiver: Receiver, settings: Any
) -> None:
    save(admin(tenant), f"{receiver.url}/v1/logs", f"Authorization: Bearer {TOKEN}")
    settings.SECRET_KEY = "another-secret-key-" + "x" * 40  # rotated without the old one in SECRET_KEY_FALLBACKS
    scored_trace(tenant)
    assert receiver.requests == []  # nothing sent without its headers
    assert counters(tenant) == (0, len(built_in(tenant)))
    export_test_run(project_id=tenant.project.pk)
    row = ScoreExportTarget.objects.get()
    assert row.test_ok is False and "an admin must set them again in Settings" in row.test_result
