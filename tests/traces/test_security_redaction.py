"""PII redaction at ingest (opt-in per project): e-mail, phone, card, IBAN and secrets never reach the database
when it is on, every path that stores text included; counts are kept and the pii evaluator still flags the leak."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test import Client

from accounts.models import AuditEvent
from accounts.services import project_redaction_set
from evals.models import Score
from evals.services import traces_score
from tests import otlp_build as ob
from tests.conftest import PASSWORD, Tenant
from tests.native_data import native_trace
from traces.models import PendingLogEvent, Trace

EMAIL = "jane.doe@acme-corp.io"
PHONE = "+44 20 7946 0958"
CARD = "4111 1111 1111 1111"
IBAN = "GB82 WEST 1234 5698 7654 32"
TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
RAW = [EMAIL, "7946 0958", CARD, "1234 5698", TOKEN]


def _leaky_trace() -> dict:
    trace = native_trace(0)
    root = trace["spans"][0]
    root["input"] = f"My card is {CARD}, call me on {PHONE}."
    root["output"] = f"Done. We will write to {EMAIL}."
    retrieve, chat, tool = root["children"]
    retrieve["documents"][0]["content"] = f"Refunds go to IBAN {IBAN}."
    chat["output"] = [{"role": "assistant", "content": f"Done. We will write to {EMAIL}."}]
    tool["tool"] = {"name": "lookup_order", "arguments": {"token": TOKEN}, "result": {"phone": f"tel {PHONE}"}}
    return trace


def _database_text(project_id: int) -> str:
    """Everything the project's spans, traces and documents hold, read past the ORM."""
    with connection.cursor() as cursor:
        # CAST(... AS TEXT) reads JSON as stored on PostgreSQL and SQLite alike.
        cursor.execute(
            "SELECT CAST(s.input AS TEXT), CAST(s.output AS TEXT), CAST(s.tool_args AS TEXT), "
            "CAST(s.tool_result AS TEXT), s.input_preview, s.output_preview, CAST(s.attributes AS TEXT), "
            "CAST(s.events AS TEXT), t.input_preview, t.output_preview FROM traces_span s "
            "JOIN traces_trace t ON t.id = s.trace_id WHERE s.project_id = %s",
            [project_id],
        )
        rows = ["|".join(value or "" for value in row) for row in cursor.fetchall()]
        cursor.execute(
            "SELECT d.content FROM traces_retrieveddocument d JOIN traces_span s ON s.id = d.span_id "
            "WHERE s.project_id = %s",
            [project_id],
        )
        return "\n".join(rows + [row[0] or "" for row in cursor.fetchall()])


def _ingest(client: Client, tenant: Tenant, trace: dict) -> None:
    response = client.post("/api/v1/traces", json.dumps({"traces": [trace]}), content_type="application/json",
                           headers=tenant.bearer)  # fmt: skip
    assert response.status_code == 200, response.content


@pytest.mark.django_db
def test_with_redaction_on_no_value_is_stored_counts_are_kept_and_pii_still_fails(client: Client,
                                                                                  tenant: Tenant) -> None:  # fmt: skip
    project_redaction_set(project=tenant.project, enabled=True, actor=tenant.user)
    _ingest(client, tenant, _leaky_trace())
    stored = _database_text(tenant.project.pk)
    assert [value for value in RAW if value in stored] == []
    for kind in ("email", "phone", "card", "iban", "secret"):
        assert f"[REDACTED:{kind}]" in stored
    trace = Trace.objects.get(project=tenant.project)
    root = trace.spans.get(parent_span_id="")
    assert root.output_preview == "Done. We will write to [REDACTED:email]."
    assert {k: v for k, v in root.attributes.items() if k.startswith("sre4ai.redacted.")} == {
        "sre4ai.redacted.card": 1, "sre4ai.redacted.email": 1, "sre4ai.redacted.phone": 1}  # fmt: skip
    tool = trace.spans.get(name="lookup_order")
    assert tool.tool_args == {"token": "[REDACTED:secret]"} and tool.attributes["sre4ai.redacted.secret"] == 1
    traces_score(project_id=tenant.project.pk, trace_pks=[trace.pk])
    pii = Score.objects.get(trace=trace, name="pii", span=None)
    assert pii.passed is False and pii.evidence["counts"] == {"email": 1}


@pytest.mark.django_db
def test_otlp_attributes_and_early_log_events_are_redacted_too(client: Client, tenant: Tenant) -> None:
    project_redaction_set(project=tenant.project, enabled=True)
    trace_id, span_id = ob.new_trace_id(), ob.new_span_id()
    # The log event (with the prompt) arrives before its span and waits in the database.
    log = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{
        "traceId": trace_id, "spanId": span_id, "timeUnixNano": "1", "eventName": "gen_ai.user.message",
        "attributes": [{"key": "event.name", "value": {"stringValue": "gen_ai.user.message"}}],
        "body": {"kvlistValue": {"values": [{"key": "content", "value": {"stringValue": f"I am {EMAIL}"}}]}},
    }]}]}]}  # fmt: skip
    sent = client.post("/v1/logs", json.dumps(log), content_type="application/json", headers=tenant.bearer)
    assert sent.status_code == 200, sent.content
    waiting = json.dumps(list(PendingLogEvent.objects.filter(project=tenant.project).values("body", "attributes")))
    assert "[REDACTED:email]" in waiting and EMAIL not in waiting
    messages = json.dumps([{"role": "user", "parts": [{"type": "text", "content": f"Card {CARD} please"}]}])
    span = ob.span(trace_id, span_id, name="chat", attributes={"gen_ai.operation.name": "chat",
                                                               "gen_ai.input.messages": messages})  # fmt: skip
    body = ob.request([span]).SerializeToString()
    assert (
        client.post("/v1/traces", body, content_type="application/x-protobuf", headers=tenant.bearer).status_code == 200
    )
    stored = _database_text(tenant.project.pk)
    assert CARD not in stored and EMAIL not in stored and "[REDACTED:card]" in stored
    assert Trace.objects.get(project=tenant.project).spans.get().attributes["sre4ai.redacted.card"] == 1
    # The raw attribute stays a JSON document the trace page can still read.
    raw = Trace.objects.get(project=tenant.project).spans.get().attributes["gen_ai.input.messages"]
    assert json.loads(raw)[0]["parts"][0]["content"] == "Card [REDACTED:card] please"


@pytest.mark.django_db
def test_redaction_is_off_by_default_and_switched_by_admins_on_the_settings_page(client: Client,
                                                                                 tenant: Tenant) -> None:  # fmt: skip
    _ingest(client, tenant, _leaky_trace())
    assert EMAIL in _database_text(tenant.project.pk)  # off: stored as sent
    admin = Client()
    assert admin.login(username="alice", password=PASSWORD)
    page = admin.get("/p/acme/settings/").content.decode()
    assert "Turn redaction on" in page
    admin.post("/p/acme/settings/", {"redact_pii": "1", "set_redaction": "1"})
    tenant.project.refresh_from_db()
    assert tenant.project.redact_pii
    assert AuditEvent.objects.filter(project=tenant.project, action="project.redact_pii", actor="alice").exists()
    assert "Turn redaction off" in admin.get("/p/acme/settings/").content.decode()
