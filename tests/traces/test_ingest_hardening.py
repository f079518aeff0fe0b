"""Bad input at ingest: chunked bodies (under gunicorn, as make run serves, and Django's own server), gzip on the
native API, JSON nested past the limit, span times outside the window, over-long attribute keys, and the
per-key and per-project rate limits. Every bad input gets a 4xx or a per-span rejection with its reason."""

from __future__ import annotations

import gzip
import json
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.core.cache import caches
from django.test import Client, override_settings
from django.urls import reverse
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest, ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs

from accounts.services import api_key_issue, project_retention_set
from tests import otlp_build as ob
from tests.conftest import PASSWORD, Tenant
from tests.web_server import gunicorn
from traces.models import Span, Trace

PROTO = "application/x-protobuf"


# --- servers and raw requests ---------------------------------------------------------------------------------


def post_chunked(base_url: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """A raw HTTP/1.1 POST whose body is sent with Transfer-Encoding: chunked (no Content-Length)."""
    where = urlsplit(base_url)
    with socket.create_connection((where.hostname, where.port), timeout=60) as sock:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {where.netloc}\r\n{head}Transfer-Encoding: chunked\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        try:
            for start in range(0, len(body), 256 * 1024):
                piece = body[start : start + 256 * 1024]
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server answered (413) and closed before reading everything; its answer is read below
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    status_line, _, rest = received.partition(b"\r\n")
    header_block, _, content = rest.partition(b"\r\n\r\n")
    answer_headers = {}
    for line in header_block.decode().split("\r\n"):
        name, _, value = line.partition(":")
        answer_headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), answer_headers, content


def otlp_body(spans: list) -> bytes:
    return ob.request(spans, resource={"service.name": "chunky"}).SerializeToString()


def native_body(trace_ids: list[str], padding: int = 0) -> bytes:
    start = datetime.now(UTC) - timedelta(minutes=1)
    traces = [
        {"trace_id": t, "service": "chunky",
         "spans": [{"name": "chat", "start_time": start.isoformat(), "input": "x" * padding, "output": "ok"}]}
        for t in trace_ids
    ]  # fmt: skip
    return json.dumps({"traces": traces}).encode()


# --- chunked bodies -------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_chunked_bodies_are_read_and_capped_under_gunicorn(tenant: Tenant) -> None:
    otlp_trace, native_trace = ob.new_trace_id(), ob.new_trace_id()
    auth = {"Authorization": f"Bearer {tenant.secret}"}
    with gunicorn(SRE4AI_INGEST_MAX_BODY_BYTES=str(2 * 1024 * 1024)) as url:
        status, _, content = post_chunked(url, "/v1/traces", otlp_body([ob.span(otlp_trace)]),
                                          {**auth, "Content-Type": PROTO})  # fmt: skip
        assert status == 200, content
        assert not ExportTraceServiceResponse.FromString(content).HasField("partial_success")

        status, _, content = post_chunked(url, "/api/v1/traces", native_body([native_trace]),
                                          {**auth, "Content-Type": "application/json"})  # fmt: skip
        assert status == 200, content
        assert json.loads(content)["accepted_spans"] == 1

        # Chunked and gzip-compressed: the cap counts the inflated size (5 MB of spans, 2 MB cap).
        big = otlp_body([ob.span(ob.new_trace_id(), attributes={"input.value": "y" * 100_000}) for _ in range(50)])
        status, _, content = post_chunked(url, "/v1/traces", gzip.compress(big),
                                          {**auth, "Content-Type": PROTO, "Content-Encoding": "gzip"})  # fmt: skip
        assert status == 413, content
        assert b"SRE4AI_INGEST_MAX_BODY_BYTES" in content

        # 20 MB sent chunked: refused once the cap is passed, not read to the end and not stored.
        status, _, content = post_chunked(url, "/api/v1/traces", native_body([ob.new_trace_id()], 20 * 1024 * 1024),
                                          {**auth, "Content-Type": "application/json"})  # fmt: skip
        assert status == 413, content
        assert "SRE4AI_INGEST_MAX_BODY_BYTES" in json.loads(content)["error"]
    assert set(Trace.objects.values_list("trace_id", flat=True)) == {otlp_trace, native_trace}


@pytest.mark.django_db(transaction=True)
def test_a_server_that_cannot_read_chunked_bodies_answers_411(live_server: Any, tenant: Tenant) -> None:
    """Django's own server hands Django no chunked body: refused with 411, never 200 with nothing stored."""
    auth = {"Authorization": f"Bearer {tenant.secret}"}
    status, _, content = post_chunked(live_server.url, "/v1/traces", otlp_body([ob.span(ob.new_trace_id())]),
                                      {**auth, "Content-Type": PROTO})  # fmt: skip
    assert status == 411
    assert b"Content-Length" in content
    status, _, content = post_chunked(live_server.url, "/api/v1/traces", native_body([ob.new_trace_id()]),
                                      {**auth, "Content-Type": "application/json"})  # fmt: skip
    assert status == 411
    assert "Content-Length" in json.loads(content)["error"]
    assert not Trace.objects.exists()


# --- gzip on the native API -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_native_api_accepts_gzip_and_caps_the_inflated_body(client: Client, tenant: Tenant) -> None:
    trace_id = ob.new_trace_id()
    response = client.post("/api/v1/traces", data=gzip.compress(native_body([trace_id])),
                           content_type="application/json", headers={**tenant.bearer, "Content-Encoding": "gzip"})  # fmt: skip
    assert response.status_code == 200, response.content
    assert Trace.objects.filter(trace_id=trace_id).exists()

    with override_settings(INGEST_MAX_BODY_BYTES=100_000):
        bomb = gzip.compress(native_body([ob.new_trace_id()], padding=1_000_000))
        assert len(bomb) < 100_000
        response = client.post("/api/v1/traces", data=bomb, content_type="application/json",
                               headers={**tenant.bearer, "Content-Encoding": "gzip"})  # fmt: skip
    assert response.status_code == 413
    assert "after decompression" in response.json()["error"]

    response = client.post("/api/v1/traces", data=native_body([ob.new_trace_id()]), content_type="application/json",
                           headers={**tenant.bearer, "Content-Encoding": "br"})  # fmt: skip
    assert response.status_code == 415
    assert Trace.objects.count() == 1


# --- nesting --------------------------------------------------------------------------------------------------


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


def otlp_post(client: Client, tenant: Tenant, spans: list) -> ExportTraceServiceResponse:
    response = client.post("/v1/traces", data=otlp_body(spans), content_type=PROTO, headers=tenant.bearer)
    assert response.status_code == 200, response.content
    return ExportTraceServiceResponse.FromString(response.content)


@pytest.mark.django_db
def test_json_text_nested_too_deep_rejects_only_its_span_and_names_the_attribute(
    client: Client, tenant: Tenant
) -> None:
    deep_text = "[" * 50_000 + "]" * 50_000  # past Python's recursion limit
    trace_id = ob.new_trace_id()
    tool_call = {"role": "assistant", "parts": [{"type": "tool_call", "name": "f", "arguments": deep_text}]}
    spans = [
        ob.span(trace_id, name="fine", attributes={"gen_ai.input.messages": json.dumps(nested(60))}),
        ob.span(trace_id, name="messages", attributes={"gen_ai.input.messages": deep_text}),
        ob.span(
            trace_id,
            name="tool",
            attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.call.arguments": json.dumps(nested(65))},
        ),
        ob.span(trace_id, name="tags", attributes={"langfuse.trace.tags": deep_text}),
        ob.span(trace_id, name="nested-in-message", attributes={"gen_ai.input.messages": json.dumps([tool_call])}),
    ]
    partial = otlp_post(client, tenant, spans).partial_success
    assert partial.rejected_spans == 4
    for name, key in [("messages", "gen_ai.input.messages"), ("tool", "gen_ai.tool.call.arguments"),
                      ("tags", "langfuse.trace.tags"), ("nested-in-message", "gen_ai.input.messages")]:  # fmt: skip
        assert f"span {name!r}: attribute {key!r}: JSON text nests deeper than 64 levels" in partial.error_message
    assert list(Span.objects.values_list("name", flat=True)) == ["fine"]


@pytest.mark.django_db
def test_attribute_values_nested_too_deep_are_rejected_per_span(client: Client, tenant: Tenant) -> None:
    def kvlist(depth: int) -> Any:
        value: Any = "leaf"
        for _ in range(depth):
            value = {"k": value}
        return value

    with override_settings(INGEST_MAX_JSON_DEPTH=8):
        partial = otlp_post(client, tenant, [ob.span(ob.new_trace_id(), name="ok", attributes={"a": kvlist(8)}),
                                             ob.span(ob.new_trace_id(), name="deep", attributes={"a": kvlist(9)})],
                            ).partial_success  # fmt: skip
    assert partial.rejected_spans == 1
    assert "span 'deep': attribute 'a' nests deeper than 8 levels (SRE4AI_INGEST_MAX_JSON_DEPTH) at k.k.k" in (
        partial.error_message
    )
    assert list(Span.objects.values_list("name", flat=True)) == ["ok"]


@pytest.mark.django_db
def test_json_bodies_nested_too_deep_are_a_400_that_says_where(client: Client, tenant: Tenant) -> None:
    def post(path: str, body: str) -> Any:
        return client.post(path, data=body, content_type="application/json", headers=tenant.bearer)

    # Past Python's recursion limit: a 400 in the endpoint's own format, not a 500 page.
    response = post("/v1/traces", '{"resourceSpans": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert "nests JSON deeper than 272 levels" in response.json()["message"]
    response = post("/api/v1/traces", '{"traces": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert response.status_code == 400
    assert "nests JSON deeper than 272 levels" in response.json()["error"]
    # Within Python's limit but past the body's: the path is named.
    response = post("/api/v1/traces", json.dumps({"traces": [{"service": "s", "spans": nested(400)}]}))
    assert response.status_code == 400
    assert "nests JSON deeper than 272 levels at traces[0].spans[0][0]" in response.json()["error"]
    assert not Trace.objects.exists()


@pytest.mark.django_db
def test_native_values_and_span_trees_nested_too_deep_reject_their_trace(client: Client, tenant: Tenant) -> None:
    start = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()

    def trace(**span: Any) -> dict[str, Any]:
        return {"service": "s", "spans": [{"name": "root", "start_time": start, **span}]}

    children: dict[str, Any] = {"name": "leaf", "start_time": start}
    for _ in range(70):
        children = {"name": "level", "start_time": start, "children": [children]}
    batch = {"traces": [trace(input=nested(10)), trace(input=nested(70)), trace(tool={"name": "t", "arguments": nested(70)}),
                        trace(attributes={"deep": nested(70)}), {"service": "s", "spans": [children]}]}  # fmt: skip
    response = client.post("/api/v1/traces", data=json.dumps(batch), content_type="application/json",
                           headers=tenant.bearer)  # fmt: skip
    assert response.status_code == 200, response.content
    errors = {e["index"]: e["error"] for e in response.json()["rejected"]}
    assert set(errors) == {1, 2, 3, 4}
    assert "spans.0: input nests deeper than 64 levels (SRE4AI_INGEST_MAX_JSON_DEPTH)" in errors[1]
    assert "tool.arguments nests deeper than 64 levels" in errors[2]
    assert "attribute 'deep' nests deeper than 64 levels" in errors[3]
    assert "spans nest children deeper than 64 levels" in errors[4]
    assert Trace.objects.count() == 1


@pytest.mark.django_db
def test_log_records_with_json_nested_too_deep_are_rejected(client: Client, tenant: Tenant) -> None:
    trace_id, span_id = ob.new_trace_id(), ob.new_span_id()
    records = [
        LogRecord(trace_id=bytes.fromhex(trace_id), span_id=bytes.fromhex(span_id), event_name=name,
                  body=AnyValue(string_value=json.dumps({"content": content})))
        for name, content in [("gen_ai.user.message", "hi"), ("gen_ai.choice", "[" * 50_000 + "]" * 50_000)]
    ]  # fmt: skip
    body = ExportLogsServiceRequest(resource_logs=[ResourceLogs(scope_logs=[ScopeLogs(log_records=records)])])
    response = client.post("/v1/logs", data=body.SerializeToString(), content_type=PROTO, headers=tenant.bearer)
    assert response.status_code == 200, response.content
    partial = ExportLogsServiceResponse.FromString(response.content).partial_success
    assert partial.rejected_log_records == 1
    assert "log record 'gen_ai.choice': JSON text nests deeper than 64 levels" in partial.error_message
    # The span, arriving after its logs, is stored with the message that was kept.
    otlp_post(client, tenant, [ob.span(trace_id, span_id, name="chat", attributes={"gen_ai.operation.name": "chat"})])
    assert Span.objects.get().input == [{"role": "user", "content": "hi"}]


# --- times and attribute keys ---------------------------------------------------------------------------------


def to_ns(moment: datetime) -> int:
    return int(moment.timestamp()) * 10**9


def keep_longer_than_the_window(tenant: Tenant) -> None:
    """Raw retention past SRE4AI_INGEST_MAX_SPAN_AGE_DAYS: the window alone decides (tests/accounts/test_retention.py has
    the refusals of spans older than a shorter retention)."""
    project_retention_set(project=tenant.project, raw_days=400, aggregate_days=400)


@pytest.mark.django_db
def test_span_times_outside_the_window_and_long_keys_are_rejected_with_reasons(client: Client, tenant: Tenant) -> None:
    keep_longer_than_the_window(tenant)
    now = datetime.now(UTC)
    trace_id = ob.new_trace_id()
    reversed_span = ob.span(trace_id, name="reversed", start_ns=to_ns(now))
    reversed_span.end_time_unix_nano = to_ns(now - timedelta(seconds=5))
    spans = [
        ob.span(trace_id, name="fine", start_ns=to_ns(now - timedelta(days=300))),
        ob.span(trace_id, name="future", start_ns=to_ns(datetime(2325, 1, 1, tzinfo=UTC))),
        ob.span(trace_id, name="ancient", start_ns=to_ns(datetime(1970, 1, 2, tzinfo=UTC))),
        reversed_span,
        ob.span(trace_id, name="long-key", attributes={"k" * 1_000_000: "v"}),
        ob.span(trace_id, name="long-event-key", events=[("exception", {"x" * 257: "v"})]),
    ]
    partial = otlp_post(client, tenant, spans).partial_success
    assert partial.rejected_spans == 5
    message = partial.error_message
    assert "span 'future': end_time 2325-01-01T00:00:00.010000+00:00 is more than 86400 s in the future" in message
    assert "span 'ancient': start_time 1970-01-02T00:00:00+00:00 is more than 365 days in the past" in message
    assert "span 'reversed': end_time is before start_time" in message
    assert "span 'long-key': attribute key 'kkkk" in message
    assert "is 1000000 bytes, over the limit of 256 (SRE4AI_INGEST_MAX_ATTRIBUTE_KEY_BYTES)" in message
    assert "span 'long-event-key': event 'exception' attribute key" in message
    assert list(Span.objects.values_list("name", flat=True)) == ["fine"]

    with override_settings(INGEST_MAX_SPAN_AGE_DAYS=30, INGEST_MAX_FUTURE_SECONDS=60):
        partial = otlp_post(client, tenant, [ob.span(trace_id, name="old", start_ns=to_ns(now - timedelta(days=31))),
                                             ob.span(trace_id, name="soon", start_ns=to_ns(now + timedelta(minutes=2)))],
                            ).partial_success  # fmt: skip
    assert partial.rejected_spans == 2
    assert "more than 30 days in the past (SRE4AI_INGEST_MAX_SPAN_AGE_DAYS)" in partial.error_message
    assert "more than 60 s in the future (SRE4AI_INGEST_MAX_FUTURE_SECONDS)" in partial.error_message


@pytest.mark.django_db
def test_native_span_times_and_keys_are_checked_per_trace(client: Client, tenant: Tenant) -> None:
    keep_longer_than_the_window(tenant)
    now = datetime.now(UTC)

    def trace(start: datetime, **span: Any) -> dict[str, Any]:
        return {"service": "s", "spans": [{"name": "root", "start_time": start.isoformat(), **span}]}

    batch = {"traces": [trace(now), trace(datetime(1, 1, 1, tzinfo=UTC)), trace(datetime(2325, 1, 1, tzinfo=UTC)),
                        trace(now, attributes={"k" * 300: 1})]}  # fmt: skip
    response = client.post("/api/v1/traces", data=json.dumps(batch), content_type="application/json",
                           headers=tenant.bearer)  # fmt: skip
    assert response.status_code == 200, response.content
    errors = {e["index"]: e["error"] for e in response.json()["rejected"]}
    assert "start_time 0001-01-01T00:00:00+00:00 is more than 365 days in the past" in errors[1]
    assert "end_time 2325-01-01T00:00:00+00:00 is more than 86400 s in the future" in errors[2]
    assert "is 300 bytes, over the limit of 256 (SRE4AI_INGEST_MAX_ATTRIBUTE_KEY_BYTES)" in errors[3]
    assert Trace.objects.count() == 1


# --- rate limits ----------------------------------------------------------------------------------------------


@pytest.fixture
def fresh_rate_counts() -> Iterator[None]:
    """Empty counters, and a test that does not straddle the start of a new one-minute window."""
    if time.time() % 60 > 50:
        time.sleep(61 - time.time() % 60)
    caches["ingest_rate"].clear()  # counts of an earlier run may share this minute's keys
    yield
    caches["ingest_rate"].clear()


@pytest.mark.django_db
@override_settings(INGEST_KEY_SPANS_PER_MINUTE=5, INGEST_PROJECT_SPANS_PER_MINUTE=0)
def test_an_api_key_past_its_rate_gets_429_with_retry_after(client: Client, tenant: Tenant, fresh_rate_counts) -> None:
    def otlp(count: int) -> Any:
        return client.post("/v1/traces", data=otlp_body([ob.span(ob.new_trace_id()) for _ in range(count)]),
                           content_type=PROTO, headers=tenant.bearer)  # fmt: skip

    assert otlp(3).status_code == 200
    refused = otlp(3)  # 6 > 5: refused whole, and not counted
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert b"this API key (5 spans per minute, SRE4AI_INGEST_KEY_SPANS_PER_MINUTE)" in refused.content
    assert otlp(2).status_code == 200  # exactly the limit
    native = client.post("/api/v1/traces", data=native_body([ob.new_trace_id()]), content_type="application/json",
                         headers=tenant.bearer)  # fmt: skip
    assert native.status_code == 429
    assert 1 <= int(native["Retry-After"]) <= 60
    assert "SRE4AI_INGEST_KEY_SPANS_PER_MINUTE" in native.json()["error"]
    logs_body = ExportLogsServiceRequest(resource_logs=[ResourceLogs()]).SerializeToString()
    logs = client.post("/v1/logs", data=logs_body, content_type=PROTO, headers=tenant.bearer)
    assert logs.status_code == 429
    assert Trace.objects.count() == 5


@pytest.mark.django_db
@override_settings(INGEST_KEY_SPANS_PER_MINUTE=0, INGEST_PROJECT_SPANS_PER_MINUTE=4)
def test_a_project_past_its_rate_gets_429_for_every_key(client: Client, tenant: Tenant, other_tenant: Tenant,
                                                        fresh_rate_counts) -> None:  # fmt: skip
    second_key = api_key_issue(project=tenant.project, name="second").secret_key

    def native(secret: str, count: int) -> Any:
        return client.post("/api/v1/traces", data=native_body([ob.new_trace_id() for _ in range(count)]),
                           content_type="application/json", headers={"Authorization": f"Bearer {secret}"})  # fmt: skip

    assert native(tenant.secret, 4).status_code == 200
    refused = native(second_key, 1)
    assert refused.status_code == 429
    assert "this project (4 spans per minute, SRE4AI_INGEST_PROJECT_SPANS_PER_MINUTE)" in refused.json()["error"]
    otlp = client.post("/v1/traces", data=otlp_body([ob.span(ob.new_trace_id())]), content_type=PROTO,
                       headers={"Authorization": f"Bearer {second_key}"})  # fmt: skip
    assert otlp.status_code == 429
    assert int(otlp["Retry-After"]) >= 1
    # Another project is not affected.
    assert native(other_tenant.secret, 4).status_code == 200


@pytest.mark.django_db
@override_settings(INGEST_KEY_SPANS_PER_MINUTE=0, INGEST_PROJECT_SPANS_PER_MINUTE=1500)
def test_settings_page_shows_the_rate_limits_and_this_minutes_use(
    client: Client, tenant: Tenant, fresh_rate_counts
) -> None:
    spans = [ob.span(ob.new_trace_id()) for _ in range(3)]
    assert (
        client.post("/v1/traces", data=otlp_body(spans), content_type=PROTO, headers=tenant.bearer).status_code == 200
    )
    assert client.login(username="alice", password=PASSWORD)
    html = client.get(reverse("project_settings", args=["acme"])).content.decode()
    assert "none per key" in html
    assert "1,500 per minute for the project (3 used this minute)" in html
