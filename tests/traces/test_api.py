"""REST API: native ingest (POST /api/v1/traces), read API, OpenAPI schema, tenant isolation."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client, override_settings

from tests.conftest import Tenant
from tests.native_data import T0, native_trace
from traces.models import RetrievedDocument, Span, Trace


def ingest(client: Client, tenant: Tenant, traces: list[dict[str, Any]]):
    return client.post("/api/v1/traces", data=json.dumps({"traces": traces}), content_type="application/json",
                       headers=tenant.bearer)  # fmt: skip


@pytest.mark.django_db
def test_native_ingest_stores_nested_spans(client: Client, tenant: Tenant) -> None:
    response = ingest(client, tenant, [native_trace()])
    assert response.status_code == 200, response.content
    assert response.json() == {"accepted_traces": 1, "accepted_spans": 4, "rejected": []}

    trace = Trace.objects.get(project=tenant.project)
    assert (trace.service, trace.environment, trace.release, trace.tags) == (
        "support-bot",
        "production",
        "v2",
        ["beta"],
    )
    assert (trace.name, trace.span_count, trace.total_tokens) == ("answer", 4, 2050)
    assert trace.cost == Decimal("0.00033")  # 2000 × 0.15 / M + 50 × 0.60 / M
    spans = {s.name: s for s in Span.objects.all()}
    root_id = spans["answer_question"].span_id
    assert {s.parent_span_id for n, s in spans.items() if n != "answer_question"} == {root_id}
    assert spans["chat"].cost_source == "computed"
    assert spans["lookup_order"].tool_args == {"id": 7}
    assert spans["lookup_order"].tool_result == {"status": "shipped"}
    assert RetrievedDocument.objects.get().document_id == "kb-1"


@pytest.mark.django_db
def test_native_ingest_is_idempotent_without_ids(client: Client, tenant: Tenant) -> None:
    trace = native_trace()
    del trace["trace_id"]
    for _ in range(2):
        assert ingest(client, tenant, [trace]).status_code == 200
    assert Trace.objects.count() == 1
    assert Span.objects.count() == 4


@pytest.mark.django_db
def test_native_ingest_reports_bad_traces_by_index_and_keeps_good_ones(client: Client, tenant: Tenant) -> None:
    bad_time = native_trace(1)
    bad_time["spans"][0]["end_time"] = (T0 - timedelta(days=1)).isoformat()
    no_service = native_trace(2)
    del no_service["service"]
    bad_id = native_trace(3, trace_id="xyz")
    response = ingest(client, tenant, [native_trace(0), bad_time, no_service, bad_id])

    assert response.status_code == 200
    body = response.json()
    assert body["accepted_traces"] == 1
    errors = {e["index"]: e["error"] for e in body["rejected"]}
    assert set(errors) == {1, 2, 3}
    assert "end_time is before start_time" in errors[1]
    assert "service" in errors[2] and "Field required" in errors[2]
    assert "trace_id" in errors[3] and "32 hexadecimal" in errors[3]
    assert Trace.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("{not json", "not valid JSON"),
        ('{"spans": []}', "traces"),
        ('{"traces": []}', "at least 1"),
    ],
)
def test_native_ingest_rejects_bad_bodies_with_400(client: Client, tenant: Tenant, body: str, fragment: str) -> None:
    response = client.post("/api/v1/traces", data=body, content_type="application/json", headers=tenant.bearer)
    assert response.status_code == 400
    assert fragment in response.json()["error"]


@pytest.mark.django_db
def test_native_ingest_all_invalid_is_400_and_naive_times_are_explained(client: Client, tenant: Tenant) -> None:
    trace = native_trace()
    trace["spans"][0]["start_time"] = "2026-11-01T12:00:00"
    response = ingest(client, tenant, [trace])
    assert response.status_code == 400
    assert "give a timezone" in response.json()["rejected"][0]["error"]


@pytest.mark.django_db
def test_native_ingest_needs_a_key(client: Client, tenant: Tenant) -> None:
    response = client.post("/api/v1/traces", data="{}", content_type="application/json")
    assert response.status_code == 401
    assert "Missing API key" in response.json()["error"]


@pytest.mark.django_db
def test_native_ingest_span_limit_is_413(client: Client, tenant: Tenant) -> None:
    with override_settings(INGEST_MAX_SPANS_PER_REQUEST=3):
        response = ingest(client, tenant, [native_trace()])
    assert response.status_code == 413
    assert not Span.objects.exists()


@pytest.mark.django_db
def test_read_api_lists_with_filters_and_keyset_pages(client: Client, tenant: Tenant) -> None:
    traces = [native_trace(i) for i in range(7)]
    traces[3]["service"] = "summariser"
    traces[5]["spans"][0]["status"] = "error"
    traces[6]["spans"][0]["children"][1]["model"] = "claude-3-5-haiku-20241022"
    assert ingest(client, tenant, traces).status_code == 200

    seen: list[str] = []
    cursor = ""
    while True:
        page = client.get("/api/v1/traces", {"limit": "3", "cursor": cursor}, headers=tenant.bearer).json()
        seen += [t["trace_id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [f"{i + 1:032x}" for i in reversed(range(7))]  # newest first, no gaps, no repeats

    def ids(**params: Any) -> list[str]:
        response = client.get("/api/v1/traces", params, headers=tenant.bearer)
        assert response.status_code == 200, response.content
        return [t["trace_id"] for t in response.json()["items"]]

    assert ids(service="summariser") == [f"{4:032x}"]
    assert ids(status="error") == [f"{6:032x}"]
    assert ids(model="claude-3-5-haiku-20241022") == [f"{7:032x}"]
    assert len(ids(model="gpt-4o-mini")) == 6
    assert ids(since=(T0 + timedelta(minutes=5)).isoformat()) == [f"{7:032x}", f"{6:032x}"]
    assert ids(until=(T0 + timedelta(minutes=1)).isoformat()) == [f"{2:032x}", f"{1:032x}"]
    assert len(ids(q="REFUNDS take")) == 7
    assert ids(q="no such words") == []
    assert len(ids(min_duration_ms=1000)) == 7
    assert ids(min_duration_ms=5000) == []
    assert ids(min_cost="0.001") == [f"{7:032x}"]  # claude-3-5-haiku: 0.0018; gpt-4o-mini: 0.00033
    assert len(ids(min_cost="0.00033")) == 7
    assert ids(session_id="nope") == []
    assert len(ids(name="answer")) == 7
    assert ids(name="other route") == []
    first = client.get("/api/v1/traces", {"limit": 1}, headers=tenant.bearer).json()["items"][0]
    assert first["models"] == ["claude-3-5-haiku-20241022"]
    assert first["input_preview"] == "How long do refunds take?"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "abc"}, "limit"),
        ({"cursor": "!!!"}, "cursor"),
        ({"status": "maybe"}, "status"),
        ({"since": "yesterday"}, "since"),
        ({"min_cost": "-1"}, "min_cost"),
        ({"since": "2026-02-01T00:00Z", "until": "2026-01-01T00:00Z"}, "before"),
    ],
)
def test_read_api_rejects_bad_filters(client: Client, tenant: Tenant, params, fragment) -> None:
    response = client.get("/api/v1/traces", params, headers=tenant.bearer)
    assert response.status_code == 400
    assert fragment in json.dumps(response.json())


@pytest.mark.django_db
def test_read_api_detail_has_every_normalised_field(client: Client, tenant: Tenant) -> None:
    ingest(client, tenant, [native_trace()])
    response = client.get(f"/api/v1/traces/{1:032x}", headers=tenant.bearer)
    assert response.status_code == 200
    body = response.json()
    assert body["trace_id"] == f"{1:032x}"
    assert len(body["spans"]) == 4
    chat = next(s for s in body["spans"] if s["name"] == "chat")
    assert chat["model"] == "gpt-4o-mini"
    assert chat["input_tokens"] == 2000
    assert chat["cost"] == pytest.approx(0.00033)
    assert chat["output"] == [{"role": "assistant", "content": "Refunds take 14 days."}]
    retrieve = next(s for s in body["spans"] if s["name"] == "retrieve")
    assert retrieve["documents"] == [
        {"position": 0, "id": "kb-1", "score": 0.9, "content": "Refunds within 14 days.", "metadata": None}
    ]


@pytest.mark.django_db
def test_read_api_is_scoped_to_the_keys_project(client: Client, tenant: Tenant, other_tenant: Tenant) -> None:
    ingest(client, other_tenant, [native_trace()])
    assert client.get(f"/api/v1/traces/{1:032x}", headers=tenant.bearer).status_code == 404
    assert client.get("/api/v1/traces", headers=tenant.bearer).json()["items"] == []
    assert client.get(f"/api/v1/traces/{1:032x}", headers=other_tenant.bearer).status_code == 200


@pytest.mark.django_db
def test_openapi_schema_documents_the_endpoints(client: Client) -> None:
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = json.loads(response.content)
    assert {"/api/v1/traces", "/api/v1/traces/{trace_id}"} <= set(schema["paths"])
    assert "post" in schema["paths"]["/api/v1/traces"] and "get" in schema["paths"]["/api/v1/traces"]
    assert "NativeBatchIn" in json.dumps(schema["components"])
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"swagger-ui" in docs.content
    assert b"cdn." not in docs.content  # assets are served locally


@pytest.mark.django_db
def test_native_ingest_out_of_range_values_are_per_trace_errors_not_500(client: Client, tenant: Tenant) -> None:
    huge_cost, huge_tokens, nul = native_trace(0), native_trace(1), native_trace(2)
    huge_cost["spans"][0]["children"][1]["cost"] = 1e12
    huge_tokens["spans"][0]["children"][1]["input_tokens"] = 10**19
    nul["spans"][0]["output"] = "before\u0000after"
    response = ingest(client, tenant, [huge_cost, huge_tokens, nul])
    assert response.status_code == 200, response.content
    assert {e["index"] for e in response.json()["rejected"]} == {0, 1}
    assert Span.objects.get(trace__trace_id=f"{3:032x}", name="answer_question").output == "before\ufffdafter"
