"""Build OTLP trace requests for tests from plain dicts (the wire encoding lives in traces.ingest.otlp)."""

from __future__ import annotations

import secrets
import time
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span, Status

from traces.ingest.otlp import to_key_values


def new_trace_id() -> str:
    return secrets.token_hex(16)


def new_span_id() -> str:
    return secrets.token_hex(8)


def span(
    trace_id: str,
    span_id: str | None = None,
    parent: str = "",
    name: str = "span",
    start_ns: int | None = None,
    duration_ms: float = 10.0,
    attributes: dict[str, Any] | None = None,
    error: str = "",
    events: list[tuple[str, dict[str, Any]]] | None = None,
) -> Span:
    start = start_ns if start_ns is not None else time.time_ns()
    result = Span(
        trace_id=bytes.fromhex(trace_id),
        span_id=bytes.fromhex(span_id or new_span_id()),
        parent_span_id=bytes.fromhex(parent) if parent else b"",
        name=name,
        start_time_unix_nano=start,
        end_time_unix_nano=start + int(duration_ms * 1e6),
        attributes=to_key_values(attributes or {}),
        status=Status(code=Status.STATUS_CODE_ERROR, message=error) if error else Status(),
    )
    for event_name, event_attrs in events or []:
        result.events.add(name=event_name, time_unix_nano=start, attributes=to_key_values(event_attrs))
    return result


def request(spans: list[Span], resource: dict[str, Any] | None = None) -> ExportTraceServiceRequest:
    message = ExportTraceServiceRequest()
    resource_spans = ResourceSpans()
    resource_spans.resource.attributes.extend(to_key_values(resource or {"service.name": "test-svc"}))
    scope = resource_spans.scope_spans.add()
    scope.scope.name = "tests"
    scope.spans.extend(spans)
    message.resource_spans.append(resource_spans)
    return message
