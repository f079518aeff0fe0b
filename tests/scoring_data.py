"""Traces with known answers for scoring tests: grounded, invented, leaking, looping; and ``send``, which posts
spans to ``/v1/traces`` with the test client and returns the stored trace."""

from __future__ import annotations

import json
import time

from django.test import Client

from tests import otlp_build as ob
from tests.conftest import Tenant
from traces.models import Trace

CONTEXT = "Refunds are issued within 14 days of receiving the returned item."


def rag_spans(answer: str, question: str = "How long do refunds take?", start: int | None = None) -> list:
    trace_id = ob.new_trace_id()
    start = start or time.time_ns()
    root, retrieval, llm = ob.new_span_id(), ob.new_span_id(), ob.new_span_id()
    return [
        ob.span(trace_id, root, name="answer", start_ns=start, duration_ms=900,
                attributes={"openinference.span.kind": "CHAIN", "input.value": question, "output.value": answer}),
        ob.span(trace_id, retrieval, parent=root, name="retrieve", start_ns=start + 10**6, duration_ms=40,
                attributes={"openinference.span.kind": "RETRIEVER", "retrieval.documents.0.document.id": "kb-101",
                            "retrieval.documents.0.document.content": CONTEXT}),
        ob.span(trace_id, llm, parent=root, name="chat", start_ns=start + 50 * 10**6, duration_ms=800,
                attributes={"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini",
                            "gen_ai.usage.input_tokens": 300, "gen_ai.usage.output_tokens": 20,
                            "gen_ai.output.messages": json.dumps(
                                [{"role": "assistant", "parts": [{"type": "text", "content": answer}]}])}),
    ]  # fmt: skip


GROUNDED = "Refunds are issued within 14 days of receiving the returned item."
INVENTED = "Refunds are issued within 3 days, and we add a $10 goodwill credit."
LEAKY = "Sure! Contact our agent at jane.doe@example.org or call +1 415 555 0134."


def send(client: Client, tenant: Tenant, spans: list, service: str = "support-bot") -> Trace:
    body = ob.request(spans, resource={"service.name": service}).SerializeToString()
    response = client.post("/v1/traces", data=body, content_type="application/x-protobuf", headers=tenant.bearer)
    assert response.status_code == 200
    return Trace.objects.get(project=tenant.project, trace_id=spans[0].trace_id.hex())
