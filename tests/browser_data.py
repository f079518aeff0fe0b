"""Traces for the browser tests, sent through the real OTLP/HTTP endpoint of a live server: a RAG answer, agent
runs, one full of XSS payloads, fillers for paging (the ``sent`` fixture sends them all), and conversation turns."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from rollups.services import dirty_process
from tests.conftest import Tenant
from tests.otlp_build import new_span_id, new_trace_id, request, span

SCRIPT_XSS = "<script>window.__xss=1</script>"
IMG_XSS = '<img src=x onerror="window.__xss=2">'
FILLER_TRACES = 55  # more than one page (50 rows)
SECOND_NS = 1_000_000_000
MINUTE_NS = 60 * SECOND_NS


@dataclass
class Sent:
    """Trace ids of the traces sent for one tenant, by role in the tests."""

    rag: str = ""
    agent: str = ""
    failed: str = ""
    xss: str = ""
    fillers: list[str] = field(default_factory=list)


def post_otlp(live_server: Any, secret: str, spans: list[Any], service: str) -> httpx.Response:
    body = request(spans, {"service.name": service, "deployment.environment.name": "production"})
    return httpx.post(
        live_server.url + "/v1/traces",
        content=body.SerializeToString(),
        headers={"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {secret}"},
        timeout=10,
    )


def send(live_server: Any, secret: str, spans: list[Any], service: str) -> None:
    response = post_otlp(live_server, secret, spans, service)
    assert response.status_code == 200, response.content[:300]


def messages(*pairs: tuple[str, str]) -> str:
    return json.dumps([{"role": role, "parts": [{"type": "text", "content": text}]} for role, text in pairs])


def rag_trace(start: int, question: str, answer: str, doc: str = "Refunds are issued within 14 days.") -> list[Any]:
    trace_id, root_id = new_trace_id(), new_span_id()
    root = span(
        trace_id,
        root_id,
        name="answer_question",
        start_ns=start,
        duration_ms=900,
        attributes={"openinference.span.kind": "CHAIN", "input.value": question, "output.value": answer},
    )
    retrieval = span(
        trace_id,
        parent=root_id,
        name="retrieve_kb",
        start_ns=start + 5_000_000,
        duration_ms=60,
        attributes={
            "openinference.span.kind": "RETRIEVER",
            "input.value": question,
            "retrieval.documents.0.document.id": "kb-101",
            "retrieval.documents.0.document.content": doc,
            "retrieval.documents.0.document.score": 0.912,
            "retrieval.documents.1.document.id": "kb-105",
            "retrieval.documents.1.document.content": "Orders can be cancelled until they ship.",
            "retrieval.documents.1.document.score": 0.634,
        },
    )
    llm = span(
        trace_id,
        parent=root_id,
        name="chat gpt-4o-mini",
        start_ns=start + 80_000_000,
        duration_ms=800,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.response.model": "gpt-4o-mini",
            "gen_ai.input.messages": messages(("system", "Answer only from the context.\n" + doc), ("user", question)),
            "gen_ai.output.messages": messages(("assistant", answer)),
            "gen_ai.usage.input_tokens": 1200,
            "gen_ai.usage.output_tokens": 345,
        },
    )
    return [root, retrieval, llm]


def agent_trace(start: int, hotel_error: str = "") -> list[Any]:
    trace_id, root_id = new_trace_id(), new_span_id()
    ask = "Plan a weekend in Oslo: weather and a hotel under $200."
    call = {
        "role": "assistant",
        "parts": [{"type": "tool_call", "id": "call_1", "name": "get_weather", "arguments": {"city": "Oslo"}}],
    }
    return [
        span(
            trace_id,
            root_id,
            name="invoke_agent trip-planner",
            start_ns=start,
            duration_ms=2500,
            attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "trip-planner"},
        ),
        span(
            trace_id,
            parent=root_id,
            name="chat gpt-4.1-mini",
            start_ns=start + 10_000_000,
            duration_ms=1100,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4.1-mini",
                "gen_ai.input.messages": messages(("user", ask)),
                "gen_ai.output.messages": json.dumps([call]),
                "gen_ai.usage.input_tokens": 420,
                "gen_ai.usage.output_tokens": 31,
            },
        ),
        span(
            trace_id,
            parent=root_id,
            name="execute_tool get_weather",
            start_ns=start + 1_200_000_000,
            duration_ms=150,
            attributes={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "get_weather",
                "gen_ai.tool.call.id": "call_1",
                "gen_ai.tool.call.arguments": json.dumps({"city": "Oslo"}),
                "gen_ai.tool.call.result": json.dumps({"city": "Oslo", "forecast": "drizzle", "celsius": 11}),
            },
        ),
        span(
            trace_id,
            parent=root_id,
            name="execute_tool search_hotels",
            start_ns=start + 1_400_000_000,
            duration_ms=300,
            attributes={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "search_hotels",
                "gen_ai.tool.call.arguments": json.dumps({"city": "Oslo", "max_price": 200}),
            },
            error=hotel_error,
        ),
    ]


def xss_trace(start: int) -> list[Any]:
    trace_id, root_id = new_trace_id(), new_span_id()
    evil = f"Ignore this {SCRIPT_XSS} and {IMG_XSS}"
    return [
        span(
            trace_id,
            root_id,
            name=f"evil {IMG_XSS}",
            start_ns=start,
            duration_ms=400,
            attributes={
                "openinference.span.kind": "CHAIN",
                "input.value": f"question {SCRIPT_XSS}",
                "output.value": evil,
            },
            error=f"boom {SCRIPT_XSS}",
        ),
        span(
            trace_id,
            parent=root_id,
            name="retrieve_evil",
            start_ns=start + 1_000_000,
            duration_ms=50,
            attributes={
                "openinference.span.kind": "RETRIEVER",
                "retrieval.documents.0.document.id": f"doc {IMG_XSS}",
                "retrieval.documents.0.document.content": evil,
                "retrieval.documents.0.document.score": 0.5,
            },
        ),
        span(
            trace_id,
            parent=root_id,
            name="chat gpt-4o-mini",
            start_ns=start + 60_000_000,
            duration_ms=300,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.input.messages": messages(("user", f"question {SCRIPT_XSS}")),
                "gen_ai.output.messages": messages(("assistant", evil)),
                "gen_ai.usage.input_tokens": 10,
                "gen_ai.usage.output_tokens": 20,
            },
        ),
        span(
            trace_id,
            parent=root_id,
            name="execute_tool evil",
            start_ns=start + 370_000_000,
            duration_ms=20,
            attributes={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": f"evil {IMG_XSS}",
                "gen_ai.tool.call.arguments": json.dumps({"html": SCRIPT_XSS}),
                "gen_ai.tool.call.result": json.dumps({"html": IMG_XSS}),
            },
        ),
    ]


def filler_trace(start: int, n: int) -> list[Any]:
    trace_id = new_trace_id()
    return [
        span(
            trace_id,
            name="summarise",
            start_ns=start,
            duration_ms=700 + n,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "anthropic",
                "gen_ai.request.model": "claude-3-5-haiku-20241022",
                "gen_ai.input.messages": messages(("user", f"Summarise article number {n}.")),
                "gen_ai.output.messages": messages(("assistant", f"Summary of article {n}.")),
                "gen_ai.usage.input_tokens": 100 + n,
                "gen_ai.usage.output_tokens": 20,
            },
        )
    ]


def trace_id_of(spans: list[Any]) -> str:
    return spans[0].trace_id.hex()


@pytest.fixture
def sent(live_server: Any, tenant: Tenant) -> Sent:
    """Traces for 'acme', newest first: XSS, failed agent run, agent run, RAG answer, then 55 summaries."""
    now = time.time_ns()
    fillers = [filler_trace(now - (10 + n) * MINUTE_NS, n) for n in range(FILLER_TRACES)]
    rag = rag_trace(now - 4 * MINUTE_NS, "How long do refunds take?", "Refunds are issued within 14 days.")
    agent = agent_trace(now - 3 * MINUTE_NS)
    failed = agent_trace(now - 2 * MINUTE_NS, hotel_error="HTTP 502 from hotels API")
    xss = xss_trace(now - 1 * MINUTE_NS)
    send(live_server, tenant.secret, [s for spans in fillers for s in spans], "summariser")
    send(live_server, tenant.secret, rag, "support-bot")
    send(live_server, tenant.secret, agent + failed, "travel-agent")
    send(live_server, tenant.secret, xss, "support-bot")
    dirty_process()  # the beat task's job: the filter drop-downs and the overview read the rollups
    return Sent(
        rag=trace_id_of(rag),
        agent=trace_id_of(agent),
        failed=trace_id_of(failed),
        xss=trace_id_of(xss),
        fillers=[trace_id_of(f) for f in fillers],
    )


def turn(start_ns: int, question: str, answer: str, ms: float, session: str = "", user: str = "") -> list[Any]:
    """A chain root (question, answer, session and user) over one priced LLM call."""
    trace_id, root = new_trace_id(), new_span_id()
    ids = {k: v for k, v in (("session.id", session), ("user.id", user)) if v}
    return [
        span(trace_id, root, name="answer_question", start_ns=start_ns, duration_ms=ms,
                attributes={"openinference.span.kind": "CHAIN", "input.value": question, "output.value": answer,
                            **ids}),
        span(trace_id, parent=root, name="chat gpt-4o-mini", start_ns=start_ns + 10**6, duration_ms=ms - 5,
                attributes={"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini",
                            "gen_ai.usage.input_tokens": int(ms), "gen_ai.usage.output_tokens": 40}),
    ]  # fmt: skip
