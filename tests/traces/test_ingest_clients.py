"""Real client libraries against a live server: what they send arrives mapped into Trace / Span / RetrievedDocument.

Each test drives a real SDK (OpenTelemetry with the OTLP/HTTP protobuf exporter, the official OTLP/JSON encoder,
the OpenTelemetry logs SDK, the Langfuse SDK, OpenInference attribute names) against ``live_server`` and then
reads the stored rows. Prices are genai-prices' (gpt-4o-mini: $0.15 / M input, $0.075 / M cached input,
$0.60 / M output), so 1000 input tokens of which 400 cached plus 200 output cost $0.00024.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

import httpx
import pytest
from google.rpc.status_pb2 import Status as RpcStatus
from langfuse import Langfuse, propagate_attributes
from openinference.semconv.trace import (
    DocumentAttributes,
    MessageAttributes,
    OpenInferenceMimeTypeValues,
    OpenInferenceSpanKindValues,
    SpanAttributes,
    ToolCallAttributes,
)
from opentelemetry.exporter.otlp.json.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.json.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Tracer

from accounts.models import Project
from tests.conftest import Tenant
from tests.otel_sdk import RecordingLogExporter, RecordingSpanExporter, hex_span_id, hex_trace_id, tracer_provider
from tests.otlp_build import new_trace_id, request, span
from traces.models import PendingLogEvent, RetrievedDocument, Span, Trace

COST_1000_IN_400_CACHED_200_OUT = Decimal("0.00024")


@pytest.fixture
def server(transactional_db: Any, live_server: Any) -> str:
    """The live server's base URL; the database is really committed so the server thread sees it."""
    return str(live_server.url)


# --- client plumbing ------------------------------------------------------------------------------


@contextmanager
def otel_tracer(
    url: str, secret: str, resource: dict[str, Any], compression: Compression = Compression.NoCompression
) -> Iterator[tuple[Tracer, RecordingSpanExporter]]:
    """A tracer whose spans are exported (in one batch) when the block ends."""
    provider, exporter = tracer_provider(url, secret, resource, compression)
    try:
        yield provider.get_tracer("sre4ai-tests"), exporter
    finally:
        provider.shutdown()


def stored(project: Project, trace_id: str) -> tuple[Trace, dict[str, Span]]:
    trace = Trace.objects.get(project=project, trace_id=trace_id)
    spans = {s.name: s for s in trace.spans.all()}
    assert len(spans) == trace.spans.count(), "span names are unique in these tests"
    return trace, spans


def documents(span: Span) -> list[tuple[int, str, float | None, str]]:
    return [
        (d.position, d.document_id, d.score, d.content)
        for d in RetrievedDocument.objects.filter(span=span).order_by("position")
    ]


# --- a/b: OpenTelemetry GenAI conventions, protobuf and JSON --------------------------------------------

KB_DOCUMENTS = [
    {"id": "kb-12", "score": 0.91, "content": "Refunds are processed within 5 business days."},
    {"id": "kb-7", "score": 0.42, "content": "Shipping is free over $50."},
]
GENAI_CHAT: dict[str, Any] = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
    "gen_ai.request.temperature": 0.2,
    "gen_ai.usage.input_tokens": 1000,
    "gen_ai.usage.output_tokens": 200,
    "gen_ai.usage.cache_read.input_tokens": 400,
    "gen_ai.response.finish_reasons": ("tool_call",),
    "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "You are a support agent."}]),
    "gen_ai.input.messages": json.dumps(
        [{"role": "user", "parts": [{"type": "text", "content": "How long do refunds take?"}]}]
    ),
    "gen_ai.output.messages": json.dumps(
        [
            {
                "role": "assistant",
                "parts": [
                    {"type": "text", "content": "Refunds take 5 business days."},
                    {"type": "tool_call", "id": "call_1", "name": "get_order_status", "arguments": {"order_id": "A-1"}},
                ],
                "finish_reason": "tool_call",
            }
        ]
    ),
}
GENAI_CHAT_INPUT = [
    {"role": "system", "content": "You are a support agent."},
    {"role": "user", "content": "How long do refunds take?"},
]
GENAI_CHAT_OUTPUT = [
    {
        "role": "assistant",
        "content": "Refunds take 5 business days.",
        "tool_calls": [{"id": "call_1", "name": "get_order_status", "arguments": {"order_id": "A-1"}}],
        "finish_reason": "tool_call",
    }
]
GENAI_RESOURCE = {
    "service.name": "support-bot",
    "service.version": "2.1.0",
    "deployment.environment.name": "Production",
}


def emit_genai_trace(tracer: Tracer) -> tuple[str, str]:
    """An agent turn in GenAI conventions: retrieval, chat, tool call, and a failed chat. Returns (trace, root) ids."""
    root_attributes = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "support",
        "gen_ai.conversation.id": "conv-42",
        "user.id": "user-7",
    }
    with tracer.start_as_current_span("invoke_agent support", attributes=root_attributes) as root:
        retrieval = {
            "gen_ai.operation.name": "retrieval",
            "gen_ai.data_source.id": "kb",
            "gen_ai.retrieval.query.text": "How long do refunds take?",
            "gen_ai.retrieval.documents": json.dumps(KB_DOCUMENTS),
        }
        with tracer.start_as_current_span("retrieval kb", kind=SpanKind.CLIENT, attributes=retrieval):
            pass
        with tracer.start_as_current_span("chat gpt-4o-mini", kind=SpanKind.CLIENT, attributes=GENAI_CHAT):
            pass
        tool = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": "get_order_status",
            "gen_ai.tool.type": "function",
            "gen_ai.tool.call.id": "call_1",
            "gen_ai.tool.call.arguments": json.dumps({"order_id": "A-1"}),
            "gen_ai.tool.call.result": json.dumps({"status": "shipped"}),
        }
        with tracer.start_as_current_span("execute_tool get_order_status", attributes=tool):
            pass
        failing = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "error.type": "RateLimitError",
        }
        with (
            pytest.raises(RuntimeError),
            tracer.start_as_current_span("chat gpt-4o-mini retry", kind=SpanKind.CLIENT, attributes=failing),
        ):
            raise RuntimeError("429 Too Many Requests")
    context = root.get_span_context()
    return hex_trace_id(context.trace_id), hex_span_id(context.span_id)


def assert_genai_trace(project: Project, trace_id: str, root_id: str) -> None:
    trace, spans = stored(project, trace_id)
    assert set(spans) == {
        "invoke_agent support",
        "retrieval kb",
        "chat gpt-4o-mini",
        "execute_tool get_order_status",
        "chat gpt-4o-mini retry",
    }
    root = spans["invoke_agent support"]
    assert (root.span_id, root.parent_span_id, root.kind) == (root_id, "", "agent")
    assert {s.parent_span_id for name, s in spans.items() if s is not root} == {root_id}

    retrieval = spans["retrieval kb"]
    assert (retrieval.kind, retrieval.input) == ("retriever", "How long do refunds take?")
    assert documents(retrieval) == [(i, d["id"], d["score"], d["content"]) for i, d in enumerate(KB_DOCUMENTS)]

    chat = spans["chat gpt-4o-mini"]
    assert (chat.kind, chat.model, chat.request_model, chat.provider) == (
        "llm",
        "gpt-4o-mini-2024-07-18",
        "gpt-4o-mini",
        "openai",
    )
    assert (chat.input_tokens, chat.output_tokens, chat.total_tokens, chat.cache_read_tokens) == (1000, 200, 1200, 400)
    assert (chat.cost, chat.cost_source) == (COST_1000_IN_400_CACHED_200_OUT, "computed")
    assert (chat.input, chat.output) == (GENAI_CHAT_INPUT, GENAI_CHAT_OUTPUT)
    assert (chat.input_preview, chat.output_preview) == ("How long do refunds take?", "Refunds take 5 business days.")
    assert (chat.finish_reason, chat.model_parameters, chat.otlp_kind) == ("tool_call", {"temperature": 0.2}, 3)
    assert chat.attributes["gen_ai.usage.input_tokens"] == 1000  # raw attributes kept, int64 decoded

    tool = spans["execute_tool get_order_status"]
    assert (tool.kind, tool.tool_name, tool.tool_args, tool.tool_result) == (
        "tool",
        "get_order_status",
        {"order_id": "A-1"},
        {"status": "shipped"},
    )

    failed = spans["chat gpt-4o-mini retry"]
    assert (failed.status, failed.status_message) == ("error", "RuntimeError: 429 Too Many Requests")
    assert [e["name"] for e in failed.events] == ["exception"]
    assert (failed.cost, failed.cost_source, failed.input_tokens) == (None, "", None)
    assert all(s.status == "ok" and s.status_message == "" for s in spans.values() if s is not failed)

    for s in spans.values():  # trace-level fields sit on the resource and the root; each span keeps its own
        assert (s.service, s.environment, s.release) == ("support-bot", "production", "2.1.0")
    assert (trace.service, trace.environment, trace.release, trace.session_id, trace.user_id) == (
        "support-bot",
        "production",
        "2.1.0",
        "conv-42",
        "user-7",
    )
    assert (trace.name, trace.root_span_id, trace.status, trace.span_count, trace.error_count) == (
        "invoke_agent support",
        root_id,
        "error",
        5,
        1,
    )
    assert trace.model_names == ["gpt-4o-mini", "gpt-4o-mini-2024-07-18"]
    assert (trace.input_tokens, trace.output_tokens, trace.total_tokens) == (1000, 200, 1200)
    assert (trace.cost, trace.has_unpriced) == (COST_1000_IN_400_CACHED_200_OUT, False)
    assert (trace.input_preview, trace.output_preview) == ("How long do refunds take?", "Refunds take 5 business days.")


def test_otel_sdk_protobuf_genai_conventions(server: str, tenant: Tenant) -> None:
    with otel_tracer(server, tenant.secret, GENAI_RESOURCE) as (tracer, exporter):
        trace_id, root_id = emit_genai_trace(tracer)
    assert exporter.results == [SpanExportResult.SUCCESS]
    assert_genai_trace(tenant.project, trace_id, root_id)


def test_otlp_json_from_the_official_encoder(server: str, tenant: Tenant) -> None:
    """OTLP/JSON as opentelemetry-exporter-otlp-json-http sends it: the body is its encoder's to_json()."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create(GENAI_RESOURCE))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    trace_id, root_id = emit_genai_trace(provider.get_tracer("sre4ai-tests"))
    sdk_spans = memory.get_finished_spans()
    body = encode_spans(sdk_spans).to_json()
    wire = json.loads(body)["resourceSpans"][0]["scopeSpans"][0]["spans"]
    # OTLP/JSON, not proto3 JSON: hex ids and int64 as decimal strings
    assert {s["traceId"] for s in wire} == {trace_id}
    assert all(isinstance(s["startTimeUnixNano"], str) for s in wire)

    headers = {"Content-Type": "application/json", **tenant.bearer}
    response = httpx.post(f"{server}/v1/traces", content=body, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert "partialSuccess" not in response.json()

    # The ids are the SDK's, not the 24 bytes a base64 reading of the hex would give.
    _, spans = stored(tenant.project, trace_id)
    assert {(s.span_id, s.parent_span_id) for s in spans.values()} == {
        (hex_span_id(s.context.span_id), hex_span_id(s.parent.span_id) if s.parent else "") for s in sdk_spans
    }
    assert_genai_trace(tenant.project, trace_id, root_id)

    # Re-sent with one span whose id is not hex: that one is rejected in partial_success, the rest updated.
    document = json.loads(body)
    spans_json = document["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans_json.append({**spans_json[0], "spanId": base64.b64encode(b"12345678").decode(), "name": "base64 id"})
    response = httpx.post(
        f"{server}/v1/traces",
        content=json.dumps(document),
        headers={**headers, "Content-Type": "application/json; charset=utf-8"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    partial = response.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "1"  # int64 → string in OTLP/JSON
    assert "base64 id" in partial["errorMessage"]
    assert Span.objects.filter(trace__project=tenant.project).count() == 5  # idempotent: no duplicates
    assert_genai_trace(tenant.project, trace_id, root_id)


# --- c: prompt and completion in log events (/v1/logs) ------------------------------------------------------

LOG_EVENTS: list[tuple[str, dict[str, Any]]] = [
    ("gen_ai.system.message", {"content": "You are terse."}),
    ("gen_ai.user.message", {"content": "Capital of France?"}),
    (
        "gen_ai.assistant.message",
        {
            "tool_calls": [
                {"id": "call_c", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "France"}'}}
            ]
        },
    ),
    ("gen_ai.tool.message", {"content": "Paris is the capital.", "id": "call_c"}),
    ("gen_ai.choice", {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Paris."}}),
]
LOG_INPUT = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Capital of France?"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"id": "call_c", "name": "lookup", "arguments": {"q": "France"}}],
    },
    {"role": "tool", "content": "Paris is the capital.", "tool_call_id": "call_c"},
]
LOG_OUTPUT = [{"role": "assistant", "content": "Paris.", "finish_reason": "stop"}]


class JsonLogExporter(LogRecordExporter):
    """What opentelemetry-exporter-otlp-json-http's log exporter does: the official encoder's to_json(), POSTed."""

    def __init__(self, endpoint: str, headers: dict[str, str]) -> None:
        self.endpoint, self.headers = endpoint, {"Content-Type": "application/json", **headers}

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        body = encode_logs(batch).to_json()
        response = httpx.post(self.endpoint, content=body, headers=self.headers, timeout=30)
        ok = response.status_code == 200 and "partialSuccess" not in response.json()
        return LogRecordExportResult.SUCCESS if ok else LogRecordExportResult.FAILURE

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


@pytest.mark.parametrize("wire", ["protobuf", "json"])
@pytest.mark.parametrize("logs_first", [True, False], ids=["logs-before-span", "logs-after-span"])
def test_genai_log_events_attach_to_their_span(server: str, tenant: Tenant, logs_first: bool, wire: str) -> None:
    """Older GenAI instrumentations (openai-v2 2.1b0) log prompt and completion as events tied to the span."""
    provider, span_exporter = tracer_provider(server, tenant.secret, {"service.name": "legacy-app"})
    auth = {"Authorization": f"Bearer {tenant.secret}"}
    inner: LogRecordExporter = (
        OTLPLogExporter(endpoint=f"{server}/v1/logs", headers=auth)
        if wire == "protobuf"
        else JsonLogExporter(f"{server}/v1/logs", auth)
    )
    log_exporter = RecordingLogExporter(inner)
    logger_provider = LoggerProvider(resource=Resource.create({"service.name": "legacy-app"}))
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(log_exporter, schedule_delay_millis=60_000))
    logger = logger_provider.get_logger("opentelemetry.instrumentation.openai_v2")
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": 1000,
        "gen_ai.usage.output_tokens": 200,
    }
    try:
        with provider.get_tracer("opentelemetry.instrumentation.openai_v2").start_as_current_span(
            "chat gpt-4o-mini", kind=SpanKind.CLIENT, attributes=attributes
        ) as sdk_span:
            for name, body in LOG_EVENTS:
                logger.emit(event_name=name, body=body, attributes={"gen_ai.system": "openai"})
        trace_id = hex_trace_id(sdk_span.get_span_context().trace_id)
        pending = PendingLogEvent.objects.filter(project=tenant.project, trace_id=trace_id)
        if logs_first:
            assert logger_provider.force_flush()
            assert pending.count() == len(LOG_EVENTS)
            assert not Trace.objects.filter(trace_id=trace_id).exists()  # kept until the span arrives
            assert provider.force_flush()
        else:
            assert provider.force_flush()
            _, spans = stored(tenant.project, trace_id)
            assert spans["chat gpt-4o-mini"].input is None
            assert logger_provider.force_flush()
    finally:
        provider.shutdown()
        logger_provider.shutdown()
    assert span_exporter.results == [SpanExportResult.SUCCESS]
    assert log_exporter.results == [LogRecordExportResult.SUCCESS]

    trace, spans = stored(tenant.project, trace_id)
    chat = spans["chat gpt-4o-mini"]
    assert (chat.input, chat.output, chat.finish_reason) == (LOG_INPUT, LOG_OUTPUT, "stop")
    assert (chat.kind, chat.model, chat.provider, chat.cost, chat.cost_source) == (
        "llm",
        "gpt-4o-mini",
        "openai",
        Decimal("0.00027"),
        "computed",
    )
    assert chat.events == []  # log records stay log records, not span events
    assert (trace.input_preview, trace.output_preview) == ("Capital of France?", "Paris.")
    assert "Capital of France?" in trace.search_text


# --- d: the Langfuse SDK -----------------------------------------------------------------------------------


class RecordingProxy:
    """An HTTP proxy in front of the live server that records what a client calls: (method, path, status)."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.calls: list[tuple[str, str, int]] = []
        self.url = ""
        self._server: ThreadingHTTPServer | None = None

    def __enter__(self) -> RecordingProxy:
        target, calls = self.target, self.calls

        class Handler(BaseHTTPRequestHandler):
            def forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                upstream = httpx.request(self.command, target + self.path, content=body, headers=headers, timeout=30)
                calls.append((self.command, self.path.split("?")[0], upstream.status_code))
                self.send_response(upstream.status_code)
                for key, value in upstream.headers.items():
                    if key.lower() not in ("content-length", "content-encoding", "transfer-encoding", "connection"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(upstream.content)))
                self.end_headers()
                self.wfile.write(upstream.content)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = forward

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()


def test_langfuse_sdk(server: str, tenant: Tenant, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "lf-support")
    first_token = datetime(2026, 3, 1, 9, 30, 0, 250000, tzinfo=UTC)
    kb = [
        {"id": "faq-3", "score": 0.88, "content": "Refunds are issued to the original card."},
        {"id": "faq-9", "score": 0.35, "content": "Gift cards cannot be refunded."},
    ]
    question = [{"role": "user", "content": "How are refunds paid?"}]
    with RecordingProxy(server) as proxy:
        langfuse = Langfuse(
            public_key=tenant.api_key.public_key,
            secret_key=tenant.secret,
            host=proxy.url,
            environment="staging",
            release="lf-2.0",
        )
        try:
            with langfuse.start_as_current_observation(
                as_type="agent", name="answer-question", input={"question": "How are refunds paid?"}
            ) as root:
                with propagate_attributes(
                    session_id="lf-session",
                    user_id="lf-user",
                    tags=["rag", "beta"],
                    trace_name="support-rag",
                    metadata={"tier": "gold"},
                ):
                    with langfuse.start_as_current_observation(
                        as_type="retriever", name="kb-search", input="refunds payment method", output=kb
                    ):
                        pass
                    with langfuse.start_as_current_observation(
                        as_type="generation",
                        name="llm-answer",
                        model="gpt-4o-mini",
                        input=question,
                        output="To the original card.",
                        usage_details={"input": 600, "input_cached_tokens": 400, "output": 200},
                        model_parameters={"temperature": 0.1},
                        completion_start_time=first_token,
                    ):
                        pass
                    # langfuse.openai passes OpenAI's usage object through as usage_details
                    openai_usage = {
                        "prompt_tokens": 1000,
                        "completion_tokens": 200,
                        "total_tokens": 1200,
                        "prompt_tokens_details": {"cached_tokens": 400},
                    }
                    with langfuse.start_as_current_observation(
                        as_type="generation",
                        name="llm-openai-usage",
                        model="gpt-4o-mini",
                        usage_details=cast(dict[str, int], openai_usage),
                    ):
                        pass
                    with langfuse.start_as_current_observation(
                        as_type="generation",
                        name="llm-private",
                        model="acme-private-llm",
                        usage_details={"input": 50, "output": 5},
                    ):
                        pass
                    with langfuse.start_as_current_observation(
                        as_type="generation",
                        name="llm-reported",
                        model="gpt-4o",
                        usage_details={"input": 10, "output": 2},
                        cost_details={"input": 0.001, "output": 0.002},
                    ):
                        pass
                    with langfuse.start_as_current_observation(
                        as_type="tool", name="lookup-order", input={"order_id": "A-1"}, output={"status": "shipped"}
                    ):
                        pass
                    with langfuse.start_as_current_observation(
                        as_type="span", name="validate", level="ERROR", status_message="schema mismatch"
                    ):
                        pass
                root.update(output="To the original card.")
            trace_id, root_id = root.trace_id, root.id
            langfuse.flush()
        finally:
            langfuse.shutdown()

    # The SDK only calls the OTLP endpoint (no auth check, no ingestion API) and every call succeeded.
    assert proxy.calls
    assert set(proxy.calls) == {("POST", "/api/public/otel/v1/traces", 200)}

    trace, spans = stored(tenant.project, trace_id)
    assert set(spans) == {
        "answer-question",
        "kb-search",
        "llm-answer",
        "llm-openai-usage",
        "llm-private",
        "llm-reported",
        "lookup-order",
        "validate",
    }
    root_span = spans["answer-question"]
    assert (root_span.span_id, root_span.kind, root_span.input, root_span.output) == (
        root_id,
        "agent",
        {"question": "How are refunds paid?"},
        "To the original card.",  # a plain str is sent unquoted
    )

    retriever = spans["kb-search"]
    assert (retriever.kind, retriever.input) == ("retriever", "refunds payment method")
    assert documents(retriever) == [(i, d["id"], d["score"], d["content"]) for i, d in enumerate(kb)]

    answer = spans["llm-answer"]
    assert (answer.kind, answer.model, answer.input, answer.output) == (
        "llm",
        "gpt-4o-mini",
        question,
        "To the original card.",
    )
    # usage_details 'input' excludes cached tokens: 600 + 400 cached
    assert (answer.input_tokens, answer.cache_read_tokens, answer.output_tokens, answer.total_tokens) == (
        1000,
        400,
        200,
        1200,
    )
    assert (answer.cost, answer.cost_source) == (COST_1000_IN_400_CACHED_200_OUT, "computed")
    assert (answer.model_parameters, answer.completion_start_time) == ({"temperature": 0.1}, first_token)

    openai_shaped = spans["llm-openai-usage"]
    assert (openai_shaped.input_tokens, openai_shaped.cache_read_tokens, openai_shaped.output_tokens) == (
        1000,
        400,
        200,
    )
    assert (openai_shaped.cost, openai_shaped.cost_source) == (COST_1000_IN_400_CACHED_200_OUT, "computed")

    private = spans["llm-private"]
    assert (private.input_tokens, private.output_tokens, private.cost, private.cost_source) == (50, 5, None, "unpriced")
    reported = spans["llm-reported"]
    assert (reported.cost, reported.cost_source) == (Decimal("0.003"), "reported")

    tool = spans["lookup-order"]
    assert (tool.kind, tool.tool_name, tool.tool_args, tool.tool_result) == (
        "tool",
        "lookup-order",
        {"order_id": "A-1"},
        {"status": "shipped"},
    )
    validate = spans["validate"]
    assert (validate.kind, validate.status, validate.status_message) == ("span", "error", "schema mismatch")

    assert (trace.service, trace.environment, trace.release) == ("lf-support", "staging", "lf-2.0")
    assert (trace.name, trace.session_id, trace.user_id, trace.tags) == (
        "support-rag",
        "lf-session",
        "lf-user",
        ["beta", "rag"],
    )
    assert (trace.status, trace.error_count, trace.span_count, trace.root_span_id) == ("error", 1, 8, root_id)
    assert trace.model_names == ["acme-private-llm", "gpt-4o", "gpt-4o-mini"]
    assert (trace.input_tokens, trace.output_tokens) == (1000 + 1000 + 50 + 10, 200 + 200 + 5 + 2)
    assert (trace.cost, trace.has_unpriced) == (2 * COST_1000_IN_400_CACHED_200_OUT + Decimal("0.003"), True)
    assert (trace.input_preview, trace.output_preview) == ("How are refunds paid?", "To the original card.")


# --- e: OpenInference attributes through the OpenTelemetry SDK ----------------------------------------------


def _oi_message(prefix: str, index: int, key: str) -> str:
    return f"{prefix}.{index}.{key}"


def test_openinference_attributes(server: str, tenant: Tenant) -> None:
    S, M, T, D = SpanAttributes, MessageAttributes, ToolCallAttributes, DocumentAttributes
    kind = SpanAttributes.OPENINFERENCE_SPAN_KIND
    json_mime, text_mime = OpenInferenceMimeTypeValues.JSON.value, OpenInferenceMimeTypeValues.TEXT.value
    weather_docs = [
        ("w-1", 0.8, "Paris forecast: 18°C, sunny.", {"source": "meteo"}),
        ("w-2", 0.3, "Lyon forecast: 20°C, cloudy.", {"source": "meteo"}),
    ]
    retriever_attributes: dict[str, Any] = {
        kind: OpenInferenceSpanKindValues.RETRIEVER.value,
        S.INPUT_VALUE: "paris weather",
    }
    for i, (doc_id, score, content, metadata) in enumerate(weather_docs):
        prefix = f"{S.RETRIEVAL_DOCUMENTS}.{i}"
        retriever_attributes |= {
            f"{prefix}.{D.DOCUMENT_ID}": doc_id,
            f"{prefix}.{D.DOCUMENT_SCORE}": score,
            f"{prefix}.{D.DOCUMENT_CONTENT}": content,
            f"{prefix}.{D.DOCUMENT_METADATA}": json.dumps(metadata),
        }
    inp, out = S.LLM_INPUT_MESSAGES, S.LLM_OUTPUT_MESSAGES
    call = f"{out}.0.{M.MESSAGE_TOOL_CALLS}.0"
    llm_attributes: dict[str, Any] = {
        kind: OpenInferenceSpanKindValues.LLM.value,
        # OpenInference puts session / user / tags only on the spans its instrumentors create: trace-level anyway
        S.SESSION_ID: "oi-session",
        S.USER_ID: "oi-user",
        S.TAG_TAGS: ["weather", "oi"],
        S.LLM_MODEL_NAME: "gpt-4o-mini",
        S.LLM_PROVIDER: "openai",
        S.LLM_SYSTEM: "openai",
        S.LLM_INVOCATION_PARAMETERS: json.dumps({"model": "gpt-4o-mini", "temperature": 0}),
        _oi_message(inp, 0, M.MESSAGE_ROLE): "system",
        _oi_message(inp, 0, M.MESSAGE_CONTENT): "Use tools for live data.",
        _oi_message(inp, 1, M.MESSAGE_ROLE): "user",
        _oi_message(inp, 1, M.MESSAGE_CONTENT): "What's the weather in Paris?",
        _oi_message(out, 0, M.MESSAGE_ROLE): "assistant",
        f"{call}.{T.TOOL_CALL_ID}": "call_w",
        f"{call}.{T.TOOL_CALL_FUNCTION_NAME}": "get_weather",
        f"{call}.{T.TOOL_CALL_FUNCTION_ARGUMENTS_JSON}": json.dumps({"city": "Paris"}),
        S.LLM_TOKEN_COUNT_PROMPT: 1000,
        S.LLM_TOKEN_COUNT_COMPLETION: 200,
        S.LLM_TOKEN_COUNT_TOTAL: 1200,
        S.LLM_TOKEN_COUNT_PROMPT_DETAILS_CACHE_READ: 400,
        S.INPUT_VALUE: json.dumps({"model": "gpt-4o-mini", "messages": ["..."]}),
        S.INPUT_MIME_TYPE: json_mime,
        S.OUTPUT_VALUE: json.dumps({"id": "chatcmpl-1"}),
        S.OUTPUT_MIME_TYPE: json_mime,
    }
    tool_attributes = {
        kind: OpenInferenceSpanKindValues.TOOL.value,
        S.TOOL_NAME: "get_weather",
        S.INPUT_VALUE: json.dumps({"city": "Paris"}),
        S.INPUT_MIME_TYPE: json_mime,
        S.OUTPUT_VALUE: "18°C and sunny",
        S.OUTPUT_MIME_TYPE: text_mime,
    }
    root_attributes = {
        kind: OpenInferenceSpanKindValues.AGENT.value,
        S.METADATA: json.dumps({"team": "search"}),
        S.INPUT_VALUE: "What's the weather in Paris?",
        S.INPUT_MIME_TYPE: text_mime,
        S.OUTPUT_VALUE: "It is 18°C and sunny in Paris.",
    }
    resource = {
        "service.name": "oi-agent",
        "openinference.project.name": "weather",
        "deployment.environment.name": "dev",
    }
    with otel_tracer(server, tenant.secret, resource, compression=Compression.Gzip) as (tracer, exporter):
        with tracer.start_as_current_span("agent", attributes=root_attributes) as root:
            with tracer.start_as_current_span("retrieve", attributes=retriever_attributes):
                pass
            with tracer.start_as_current_span("ChatCompletion", kind=SpanKind.CLIENT, attributes=llm_attributes):
                pass
            with tracer.start_as_current_span("get_weather call", attributes=tool_attributes):
                pass
        trace_id = hex_trace_id(root.get_span_context().trace_id)
    assert exporter.results == [SpanExportResult.SUCCESS]

    trace, spans = stored(tenant.project, trace_id)
    llm = spans["ChatCompletion"]
    assert (llm.kind, llm.model, llm.request_model, llm.provider) == ("llm", "gpt-4o-mini", "gpt-4o-mini", "openai")
    assert (llm.input_tokens, llm.output_tokens, llm.total_tokens, llm.cache_read_tokens) == (1000, 200, 1200, 400)
    assert (llm.cost, llm.cost_source) == (COST_1000_IN_400_CACHED_200_OUT, "computed")
    assert llm.input == [
        {"role": "system", "content": "Use tools for live data."},
        {"role": "user", "content": "What's the weather in Paris?"},
    ]
    assert llm.output == [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"id": "call_w", "name": "get_weather", "arguments": {"city": "Paris"}}],
        }
    ]
    assert (llm.output_preview, llm.model_parameters) == (
        "tool calls: get_weather",
        {"model": "gpt-4o-mini", "temperature": 0},
    )

    retriever = spans["retrieve"]
    assert (retriever.kind, retriever.input) == ("retriever", "paris weather")
    assert documents(retriever) == [(i, d[0], d[1], d[2]) for i, d in enumerate(weather_docs)]
    assert [d.metadata for d in RetrievedDocument.objects.filter(span=retriever).order_by("position")] == [
        {"source": "meteo"},
        {"source": "meteo"},
    ]

    tool = spans["get_weather call"]
    assert (tool.kind, tool.tool_name, tool.tool_args, tool.tool_result) == (
        "tool",
        "get_weather",
        {"city": "Paris"},
        "18°C and sunny",
    )
    assert (tool.input, tool.output) == ({"city": "Paris"}, "18°C and sunny")

    agent = spans["agent"]
    assert (agent.kind, agent.input, agent.output) == (
        "agent",
        "What's the weather in Paris?",
        "It is 18°C and sunny in Paris.",
    )
    assert (trace.service, trace.environment, trace.session_id, trace.user_id, trace.tags) == (
        "oi-agent",
        "dev",
        "oi-session",
        "oi-user",
        ["oi", "weather"],
    )
    assert (trace.status, trace.span_count, trace.cost) == ("ok", 4, COST_1000_IN_400_CACHED_200_OUT)
    assert (trace.input_preview, trace.output_preview) == (
        "What's the weather in Paris?",
        "It is 18°C and sunny in Paris.",
    )


# --- keys ---------------------------------------------------------------------------------------------------


def test_wrong_key_is_401_and_a_key_writes_only_to_its_project(
    server: str, tenant: Tenant, other_tenant: Tenant
) -> None:
    body = request([span(new_trace_id(), name="probe")]).SerializeToString()
    protobuf = {"Content-Type": "application/x-protobuf"}
    for authorization in (
        "Bearer sk-wrong",
        "Basic " + base64.b64encode(f"{tenant.api_key.public_key}:sk-wrong".encode()).decode(),
        # the right secret under another project's public key is not accepted either
        "Basic " + base64.b64encode(f"{other_tenant.api_key.public_key}:{tenant.secret}".encode()).decode(),
    ):
        for path in ("/v1/traces", "/api/public/otel/v1/traces"):
            response = httpx.post(
                server + path, content=body, headers={**protobuf, "Authorization": authorization}, timeout=30
            )
            assert response.status_code == 401, (path, authorization)
            status = RpcStatus()
            status.ParseFromString(response.content)
            assert "API key" in status.message
    response = httpx.post(f"{server}/v1/traces", content=body, headers=protobuf, timeout=30)
    assert response.status_code == 401

    # The real exporter with a wrong key: export fails, nothing stored anywhere.
    with (
        otel_tracer(server, "sk-wrong", {"service.name": "intruder"}) as (tracer, exporter),
        tracer.start_as_current_span("rejected"),
    ):
        pass
    assert exporter.results == [SpanExportResult.FAILURE]
    assert not Trace.objects.exists()

    # Each key writes into its own project, whatever else it sends.
    with (
        otel_tracer(server, other_tenant.secret, {"service.name": "globex-app"}) as (tracer, exporter),
        tracer.start_as_current_span("globex work") as sdk_span,
    ):
        pass
    assert exporter.results == [SpanExportResult.SUCCESS]
    trace_id = hex_trace_id(sdk_span.get_span_context().trace_id)
    assert list(Trace.objects.values_list("project__slug", "trace_id", "service")) == [
        (other_tenant.project.slug, trace_id, "globex-app")
    ]
    assert not Span.objects.filter(project=tenant.project).exists()


GPT4O_MINI_USAGE: dict[str, Any] = {
    "gen_ai.operation.name": "chat",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.usage.input_tokens": 1000,
    "gen_ai.usage.output_tokens": 200,
}


def test_values_postgresql_cannot_store_do_not_fail_the_batch(server: str, tenant: Tenant) -> None:
    """NaN / Infinity have no jsonb form and PostgreSQL stores no NUL: such values are kept as text, not a 500."""
    odd: dict[str, Any] = {
        "gen_ai.request.temperature": float("nan"),
        "custom.ratio": float("-inf"),
        "custom.text": "a\x00b",
        "langfuse.observation.output": '{"score": NaN, "text": "x\\u0000y"}',  # Python's json.dumps writes NaN
    }
    with otel_tracer(server, tenant.secret, {"service.name": "odd\x00svc"}) as (tracer, exporter):
        with tracer.start_as_current_span("odd\x00values", attributes=odd) as root:
            with tracer.start_as_current_span("normal child"):
                pass
            # numbers the price table or the columns cannot take: ignored, not a failed batch
            with tracer.start_as_current_span(
                "negative usage", attributes={**GPT4O_MINI_USAGE, "gen_ai.usage.input_tokens": -5}
            ):
                pass
            with tracer.start_as_current_span(
                "absurd usage", attributes={**GPT4O_MINI_USAGE, "gen_ai.usage.input_tokens": 2**62}
            ):
                pass
            with tracer.start_as_current_span(
                "absurd cost", attributes={**GPT4O_MINI_USAGE, "gen_ai.usage.cost": 1e12}
            ):
                pass
        trace_id = hex_trace_id(root.get_span_context().trace_id)
    assert exporter.results == [SpanExportResult.SUCCESS]
    trace, spans = stored(tenant.project, trace_id)
    assert set(spans) == {"odd\ufffdvalues", "normal child", "negative usage", "absurd usage", "absurd cost"}
    stored_odd = spans["odd\ufffdvalues"]
    assert {k: stored_odd.attributes[k] for k in ("gen_ai.request.temperature", "custom.ratio", "custom.text")} == {
        "gen_ai.request.temperature": "NaN",
        "custom.ratio": "-Infinity",
        "custom.text": "a\ufffdb",
    }
    assert stored_odd.output == {"score": "NaN", "text": "x\ufffdy"}
    assert (stored_odd.model_parameters, trace.service) == ({"temperature": "NaN"}, "odd\ufffdsvc")
    usage = {
        name: (spans[name].input_tokens, spans[name].output_tokens, spans[name].cost, spans[name].cost_source)
        for name in ("negative usage", "absurd usage", "absurd cost")
    }
    assert usage == {
        "negative usage": (None, 200, Decimal("0.00012"), "computed"),
        "absurd usage": (None, 200, Decimal("0.00012"), "computed"),
        "absurd cost": (1000, 200, Decimal("0.00027"), "computed"),
    }
