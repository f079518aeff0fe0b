"""The OTLP endpoints' contract: responses, errors, limits, idempotency and ordering (on PostgreSQL)."""

from __future__ import annotations

import base64
import gzip
import json
import time
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tests import otlp_build as ob
from tests.conftest import Tenant
from traces.models import RetrievedDocument, Span, Trace

PROTO = "application/x-protobuf"


def post(client: Client, tenant: Tenant, body: bytes, content_type: str = PROTO, path: str = "/v1/traces", **headers):
    return client.post(path, data=body, content_type=content_type, headers={**tenant.bearer, **headers})


def rag_trace(trace_id: str, root_id: str, start: int) -> list:
    return [
        ob.span(trace_id, root_id, name="answer", start_ns=start, duration_ms=900,
                attributes={"openinference.span.kind": "CHAIN", "input.value": "What is the refund window?",
                            "output.value": "14 days.", "session.id": "s-1", "user.id": "u-1"}),
        ob.span(trace_id, "1" * 16, parent=root_id, name="retrieve", start_ns=start + 10**6, duration_ms=50,
                attributes={"openinference.span.kind": "RETRIEVER",
                            "retrieval.documents.0.document.id": "kb-1",
                            "retrieval.documents.0.document.content": "Refunds within 14 days.",
                            "retrieval.documents.0.document.score": 0.91,
                            "retrieval.documents.1.document.id": "kb-2",
                            "retrieval.documents.1.document.content": "Shipping takes 3 days.",
                            "retrieval.documents.1.document.score": 0.55}),
        ob.span(trace_id, "2" * 16, parent=root_id, name="chat", start_ns=start + 60 * 10**6, duration_ms=800,
                attributes={"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                            "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 1000,
                            "gen_ai.usage.output_tokens": 100}),
    ]  # fmt: skip


@pytest.mark.django_db
def test_protobuf_ingest_stores_trace_and_answers_otlp_response(client: Client, tenant: Tenant) -> None:
    trace_id, start = ob.new_trace_id(), time.time_ns()
    response = post(client, tenant, ob.request(rag_trace(trace_id, "a" * 16, start)).SerializeToString())

    assert response.status_code == 200
    assert response["Content-Type"] == PROTO
    parsed = ExportTraceServiceResponse.FromString(response.content)
    assert not parsed.HasField("partial_success")
    trace = Trace.objects.get(project=tenant.project, trace_id=trace_id)
    assert (trace.span_count, trace.service, trace.session_id, trace.user_id) == (3, "test-svc", "s-1", "u-1")
    assert trace.input_preview == "What is the refund window?"
    assert trace.output_preview == "14 days."
    assert trace.model_names == ["gpt-4o-mini"]
    assert (trace.input_tokens, trace.output_tokens, trace.total_tokens) == (1000, 100, 1100)
    # gpt-4o-mini: $0.15 / M input, $0.60 / M output → 0.00015 + 0.00006.
    assert trace.cost == Decimal("0.00021")
    assert trace.duration_ms == pytest.approx(900, abs=0.01)
    docs = list(RetrievedDocument.objects.filter(span__trace=trace).values_list("document_id", "score", "content"))
    assert docs == [("kb-1", 0.91, "Refunds within 14 days."), ("kb-2", 0.55, "Shipping takes 3 days.")]


@pytest.mark.django_db
def test_otlp_json_with_hex_ids_and_string_int64(client: Client, tenant: Tenant) -> None:
    trace_id, span_id = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"
    start = time.time_ns()
    body = {
        "resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-svc"}}]},
            "scopeSpans": [{"scope": {"name": "x"}, "spans": [{
                "traceId": trace_id, "spanId": span_id, "name": "chat", "kind": 3,
                "startTimeUnixNano": str(start), "endTimeUnixNano": str(start + 5_000_000),
                "attributes": [{"key": "gen_ai.usage.input_tokens", "value": {"intValue": "12"}},
                               {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}}],
                "status": {"code": 1}, "someFutureField": {"ignored": True},
            }]}],
        }]
    }  # fmt: skip
    response = post(client, tenant, json.dumps(body).encode(), content_type="application/json; charset=utf-8")

    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("application/json")
    assert json.loads(response.content) == {}
    span = Span.objects.get(trace__trace_id=trace_id)
    assert span.span_id == span_id
    assert (span.input_tokens, span.model, span.otlp_kind, span.duration_ms) == (12, "gpt-4o", 3, 5.0)


@pytest.mark.django_db
def test_gzip_body_is_accepted(client: Client, tenant: Tenant) -> None:
    trace_id = ob.new_trace_id()
    body = gzip.compress(ob.request([ob.span(trace_id, name="root")]).SerializeToString())
    response = post(client, tenant, body, **{"Content-Encoding": "gzip"})
    assert response.status_code == 200
    assert Trace.objects.filter(trace_id=trace_id).exists()


@pytest.mark.django_db
def test_invalid_spans_are_reported_in_partial_success_and_valid_ones_stored(client: Client, tenant: Tenant) -> None:
    trace_id = ob.new_trace_id()
    good = ob.span(trace_id, name="good")
    zero_trace = ob.span(trace_id, name="zeros")
    zero_trace.trace_id = b"\0" * 16
    short_id = ob.span(trace_id, name="short")
    short_id.span_id = b"\1\2\3"
    response = post(client, tenant, ob.request([good, zero_trace, short_id]).SerializeToString())

    assert response.status_code == 200
    partial = ExportTraceServiceResponse.FromString(response.content).partial_success
    assert partial.rejected_spans == 2
    assert "all zeros" in partial.error_message and "8 bytes" in partial.error_message
    assert list(Span.objects.values_list("name", flat=True)) == ["good"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "content_type", "status", "fragment"),
    [
        (b"\xff\xff\xff\xff garbage", PROTO, 400, "not a valid OTLP protobuf"),
        (b"{not json", "application/json", 400, "not valid JSON"),
        (b"[1, 2]", "application/json", 400, "must be an object"),
        (b'{"resourceSpans": "nope"}', "application/json", 400, "not valid OTLP/JSON"),
        (b"resourceSpans", "text/plain", 415, "application/x-protobuf or application/json"),
    ],
)
def test_undecodable_bodies_get_a_clear_4xx(client, tenant, body, content_type, status, fragment) -> None:
    response = post(client, tenant, body, content_type=content_type)
    assert response.status_code == status
    if response["Content-Type"] == PROTO:
        message = Status.FromString(response.content).message
    else:
        message = json.loads(response.content)["message"]
    assert fragment in message
    assert not Span.objects.exists()


@pytest.mark.django_db
def test_gzip_bomb_stops_at_the_cap_with_413(client: Client, tenant: Tenant) -> None:
    bomb = gzip.compress(b"\0" * (20 * 1024 * 1024))
    with override_settings(INGEST_MAX_BODY_BYTES=1024 * 1024):
        response = post(client, tenant, bomb, **{"Content-Encoding": "gzip"})
    assert response.status_code == 413
    assert "after decompression" in Status.FromString(response.content).message


@pytest.mark.django_db
def test_oversize_plain_body_and_too_many_spans_get_413(client: Client, tenant: Tenant) -> None:
    trace_id = ob.new_trace_id()
    body = ob.request([ob.span(trace_id, name=f"s{i}") for i in range(30)]).SerializeToString()
    with override_settings(INGEST_MAX_SPANS_PER_REQUEST=10):
        response = post(client, tenant, body)
    assert response.status_code == 413
    assert "30 spans" in Status.FromString(response.content).message
    with override_settings(INGEST_MAX_BODY_BYTES=100, DATA_UPLOAD_MAX_MEMORY_SIZE=100):
        response = post(client, tenant, body)
    assert response.status_code == 413
    assert not Span.objects.exists()


@pytest.mark.django_db
def test_long_attribute_is_truncated_with_a_mark(client: Client, tenant: Tenant) -> None:
    trace_id = ob.new_trace_id()
    body = ob.request([ob.span(trace_id, name="big", attributes={"input.value": "x" * 5000})]).SerializeToString()
    with override_settings(INGEST_MAX_ATTRIBUTE_BYTES=1000):
        assert post(client, tenant, body).status_code == 200
    value = Span.objects.get().attributes["input.value"]
    assert value.startswith("x" * 1000) and "truncated by sre4ai" in value and len(value) < 1200


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("headers", "status", "fragment"),
    [
        ({}, 401, "Missing API key"),
        ({"Authorization": "Bearer sk-sre-wrong"}, 401, "Unknown API key"),
        ({"Authorization": "Token abc"}, 401, "Unsupported Authorization"),
        ({"Authorization": "Basic !!!"}, 401, "Malformed Basic"),
    ],
)
def test_missing_or_wrong_key_is_401(client: Client, tenant: Tenant, headers, status, fragment) -> None:
    body = ob.request([ob.span(ob.new_trace_id())]).SerializeToString()
    response = client.post("/v1/traces", data=body, content_type=PROTO, headers=headers)
    assert response.status_code == status
    assert fragment in Status.FromString(response.content).message
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert not Span.objects.exists()


@pytest.mark.django_db
def test_basic_auth_needs_the_matching_public_key(client: Client, tenant: Tenant, other_tenant: Tenant) -> None:
    body = ob.request([ob.span(ob.new_trace_id())]).SerializeToString()
    mixed = base64.b64encode(f"{other_tenant.api_key.public_key}:{tenant.secret}".encode()).decode()
    response = client.post("/api/public/otel/v1/traces", data=body, content_type=PROTO,
                           headers={"Authorization": f"Basic {mixed}"})  # fmt: skip
    assert response.status_code == 401
    good = base64.b64encode(f"{tenant.api_key.public_key}:{tenant.secret}".encode()).decode()
    response = client.post("/api/public/otel/v1/traces", data=body, content_type=PROTO,
                           headers={"Authorization": f"Basic {good}"})  # fmt: skip
    assert response.status_code == 200
    assert Trace.objects.get().project == tenant.project


@pytest.mark.django_db
def test_revoked_key_is_403(client: Client, tenant: Tenant) -> None:
    from accounts.services import api_key_revoke

    api_key_revoke(api_key=tenant.api_key)
    response = post(client, tenant, ob.request([ob.span(ob.new_trace_id())]).SerializeToString())
    assert response.status_code == 403
    assert "revoked" in Status.FromString(response.content).message


@pytest.mark.django_db
def test_ingest_reads_its_key_from_the_process_cache_and_a_revocation_here_applies_at_once(
    client: Client, tenant: Tenant
) -> None:
    from accounts.services import api_key_revoke

    body = ob.request([ob.span(ob.new_trace_id())]).SerializeToString()
    assert post(client, tenant, body).status_code == 200  # loads the key
    with CaptureQueriesContext(connection) as queries:
        assert post(client, tenant, ob.request([ob.span(ob.new_trace_id())]).SerializeToString()).status_code == 200
    assert not [q for q in queries.captured_queries if "accounts_apikey" in q["sql"]]
    api_key_revoke(api_key=tenant.api_key)  # in this process: the cached key is dropped with it
    assert post(client, tenant, body).status_code == 403


@pytest.mark.django_db
def test_a_key_writes_only_to_its_own_project(client: Client, tenant: Tenant, other_tenant: Tenant) -> None:
    trace_id = ob.new_trace_id()
    post(client, other_tenant, ob.request([ob.span(trace_id, name="theirs")]).SerializeToString())
    post(client, tenant, ob.request([ob.span(trace_id, name="ours")]).SerializeToString())
    # The same trace id in two projects is two traces; neither write touched the other's.
    assert Trace.objects.filter(trace_id=trace_id).count() == 2
    assert Span.objects.get(project=tenant.project).name == "ours"
    assert Span.objects.get(project=other_tenant.project).name == "theirs"


@pytest.mark.django_db
def test_resending_the_same_spans_updates_and_never_duplicates(client: Client, tenant: Tenant) -> None:
    trace_id, start = ob.new_trace_id(), time.time_ns()
    spans = rag_trace(trace_id, "a" * 16, start)
    for _ in range(3):
        assert post(client, tenant, ob.request(spans).SerializeToString()).status_code == 200
    spans[2].attributes.extend(ob.to_key_values({"gen_ai.usage.output_tokens": 200}))
    assert post(client, tenant, ob.request(spans).SerializeToString()).status_code == 200

    assert Span.objects.count() == 3
    assert RetrievedDocument.objects.count() == 2
    trace = Trace.objects.get()
    assert trace.output_tokens == 200
    assert trace.span_count == 3


@pytest.mark.django_db
@pytest.mark.parametrize("order", [(0, 1, 2), (2, 1, 0), (1, 2, 0), (2, 0, 1)])
def test_spans_in_any_order_across_requests_give_the_same_trace(client: Client, tenant: Tenant, order) -> None:
    trace_id, start = ob.new_trace_id(), time.time_ns()
    spans = rag_trace(trace_id, "a" * 16, start)
    spans[2].status.code = 2
    spans[2].status.message = "rate limited"
    for index in order:
        assert post(client, tenant, ob.request([spans[index]]).SerializeToString()).status_code == 200

    trace = Trace.objects.get()
    assert (trace.span_count, trace.error_count, trace.status) == (3, 1, "error")
    assert trace.root_span_id == "a" * 16
    assert trace.name == "answer"
    assert trace.input_preview == "What is the refund window?"
    assert trace.total_tokens == 1100
    assert trace.duration_ms == pytest.approx(900, abs=0.01)
    assert trace.session_id == "s-1"
    assert "refund window" in trace.search_text


@pytest.mark.django_db
def test_a_span_whose_parent_never_arrives_is_kept_and_stands_in_for_the_root(client: Client, tenant: Tenant) -> None:
    trace_id = ob.new_trace_id()
    orphan = ob.span(trace_id, "3" * 16, parent="9" * 16, name="orphan-llm",
                     attributes={"gen_ai.request.model": "gpt-4o", "gen_ai.input.messages": json.dumps(
                         [{"role": "user", "parts": [{"type": "text", "content": "hello?"}]}])})  # fmt: skip
    assert post(client, tenant, ob.request([orphan]).SerializeToString()).status_code == 200
    trace = Trace.objects.get()
    assert (trace.root_span_id, trace.name, trace.input_preview) == ("3" * 16, "orphan-llm", "hello?")
    assert Span.objects.get().parent_span_id == "9" * 16


@pytest.mark.django_db
def test_trace_level_fields_on_any_span(client: Client, tenant: Tenant) -> None:
    trace_id, start = ob.new_trace_id(), time.time_ns()
    root = ob.span(trace_id, "a" * 16, name="root", start_ns=start)
    child = ob.span(trace_id, "b" * 16, parent="a" * 16, name="child", start_ns=start + 1000,
                    attributes={"langfuse.session.id": "sess-9", "langfuse.user.id": "user-9",
                                "langfuse.trace.tags": ["beta", "vip"], "langfuse.trace.name": "checkout",
                                "langfuse.environment": "Staging"})  # fmt: skip
    post(client, tenant, ob.request([root, child], resource={"service.name": "shop", "service.version": "2.1"})
         .SerializeToString())  # fmt: skip
    trace = Trace.objects.get()
    assert (trace.session_id, trace.user_id, trace.tags, trace.name) == (
        "sess-9",
        "user-9",
        ["beta", "vip"],
        "checkout",
    )
    assert (trace.environment, trace.release, trace.service) == ("staging", "2.1", "shop")


@pytest.mark.django_db
def test_back_pressure_answers_429_with_retry_after(client: Client, tenant: Tenant) -> None:
    with override_settings(INGEST_MAX_CONCURRENT_REQUESTS=0, INGEST_RETRY_AFTER_SECONDS=7):
        response = post(client, tenant, ob.request([ob.span(ob.new_trace_id())]).SerializeToString())
    assert response.status_code == 429
    assert response["Retry-After"] == "7"
    assert not Span.objects.exists()


@pytest.mark.django_db
def test_unknown_model_is_unpriced_not_free(client: Client, tenant: Tenant) -> None:
    trace_id = ob.new_trace_id()
    spans = [
        ob.span(trace_id, "a" * 16, name="known", attributes={"gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 0}),
        ob.span(trace_id, "b" * 16, parent="a" * 16, name="mystery", attributes={
                "gen_ai.request.model": "acme-internal-7b", "gen_ai.usage.input_tokens": 10}),
        ob.span(trace_id, "c" * 16, parent="a" * 16, name="reported", attributes={
                "gen_ai.request.model": "acme-internal-7b", "gen_ai.usage.input_tokens": 10, "llm.cost.total": 0.5}),
    ]  # fmt: skip
    post(client, tenant, ob.request(spans).SerializeToString())
    by_name = {s.name: s for s in Span.objects.all()}
    assert (by_name["known"].cost_source, by_name["known"].cost) == ("computed", Decimal("0.00015"))
    assert (by_name["mystery"].cost_source, by_name["mystery"].cost) == ("unpriced", None)
    assert (by_name["reported"].cost_source, by_name["reported"].cost) == ("reported", Decimal("0.5"))
    trace = Trace.objects.get()
    assert trace.has_unpriced is True
    assert trace.cost == Decimal("0.50015")
